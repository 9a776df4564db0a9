//! A mock AMD Key Distribution Service on loopback: the same URL shapes as AMD's KDS
//! (`https://kdsintf.amd.com`) for the VCEK and the certificate chain, serving the mock PKI.
//!
//! - `GET /vcek/v1/{product}/cert_chain` → PEM ASK ‖ ARK
//! - `GET /vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=` → the VCEK (DER), only
//!   for the sim chip's hwID at the sim TCB (anything else: 404, as the KDS answers an unknown
//!   chip or TCB)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::pki::{SIM_SNP_PRODUCT, SimAmdPki};
use crate::SimError;

struct Kds {
    chain_pem: String,
    vcek_der: Vec<u8>,
    hwid: String,
    spls: [(&'static str, u8); 4],
}

/// The KDS routes for `pki`, to mount in any axum server.
pub fn kds_router(pki: &SimAmdPki) -> Router {
    let kds = Kds {
        chain_pem: pki.cert_chain_pem(),
        vcek_der: pki.vcek_der.clone(),
        hwid: hex::encode(pki.chip_id),
        spls: [
            ("blSPL", pki.tcb.bootloader),
            ("teeSPL", pki.tcb.tee),
            ("snpSPL", pki.tcb.snp),
            ("ucodeSPL", pki.tcb.microcode),
        ],
    };
    Router::new()
        .route("/vcek/v1/{product}/{item}", get(vcek_or_chain))
        .with_state(Arc::new(kds))
}

async fn vcek_or_chain(
    Path((product, item)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    State(kds): State<Arc<Kds>>,
) -> Response {
    if product != SIM_SNP_PRODUCT {
        return StatusCode::NOT_FOUND.into_response();
    }
    if item == "cert_chain" {
        return (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            kds.chain_pem.clone(),
        )
            .into_response();
    }
    let tcb_matches = kds
        .spls
        .iter()
        .all(|(name, spl)| query.get(*name).and_then(|v| v.parse::<u8>().ok()) == Some(*spl));
    if !item.eq_ignore_ascii_case(&kds.hwid) || !tcb_matches {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/pkix-cert")],
        kds.vcek_der.clone(),
    )
        .into_response()
}

/// A mock KDS on its own thread and runtime, bound to 127.0.0.1 on a free port. Dropping it
/// stops the server and joins the thread.
pub struct MockKds {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockKds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKds").field("addr", &self.addr).finish()
    }
}

impl MockKds {
    /// Start serving `pki`'s certificates.
    pub fn start(pki: &SimAmdPki) -> Result<MockKds, SimError> {
        let app = kds_router(pki);
        let err = |reason: String| SimError::Kds {
            addr: "127.0.0.1:0".to_owned(),
            reason,
        };
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("bind: {e}")))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| err(format!("nonblocking: {e}")))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| err(format!("local_addr: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(format!("runtime: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-kds".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let server = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = rx.await;
                    });
                    if let Err(e) = server.await {
                        tracing::warn!("mock KDS stopped: {e}");
                    }
                });
            })
            .map_err(|e| err(format!("thread: {e}")))?;
        Ok(MockKds {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give KDS clients (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockKds {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
