//! A mock AMD Key Distribution Service on loopback: the same URL shapes as AMD's KDS
//! (`https://kdsintf.amd.com`) for the VCEK and the certificate chain, serving the mock PKI.
//!
//! - `GET /vcek/v1/{product}/cert_chain` → PEM ASK ‖ ARK
//! - `GET /vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=` → the VCEK (DER), only
//!   for the sim chip's hwID at the sim TCB (anything else: 404, as the KDS answers an unknown
//!   chip or TCB)

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::pki::{SIM_SNP_PRODUCT, SimAmdPki};
use crate::{MockServer, SimError};

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

/// The mock KDS: [`MockKds::start`] gives a [`MockServer`] whose `url()` is the base URL to
/// give KDS clients.
#[derive(Debug)]
pub struct MockKds;

impl MockKds {
    /// Start serving `pki`'s certificates.
    pub fn start(pki: &SimAmdPki) -> Result<MockServer, SimError> {
        let app = kds_router(pki);
        MockServer::start("mock-kds", app).map_err(|e| SimError::Kds {
            addr: "127.0.0.1:0".to_owned(),
            reason: e.to_string(),
        })
    }
}
