//! A mock PCCS on loopback serving the sim collateral with the PCCS v4 (and v3) API paths and
//! the issuer-chain headers that dcap-qvl, Intel's QPL and PyPI intel-sgx-ra read.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::CollateralOptions;
use super::pki::{SIM_FMSPC, SimPki, pem_encode};
use crate::{MockServer, SimError};

/// Pre-rendered responses: the PCCS only ever serves these bytes.
struct Bodies {
    root_crl_hex: String,
    pck_crl_der: Vec<u8>,
    pck_crl_pem: String,
    pck_crl_chain: String,
    tcb_body: String,
    qe_body: String,
    tcb_chain: String,
}

fn encoded(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

/// The PCCS routes for `pki` and `opts`, to mount in any axum server (mse-node does).
pub fn router(pki: &SimPki, opts: &CollateralOptions) -> Result<Router, SimError> {
    let bodies = Bodies {
        root_crl_hex: hex::encode(&pki.root_crl_der),
        pck_crl_der: pki.pck_crl_der.clone(),
        pck_crl_pem: pem_encode("X509 CRL", &pki.pck_crl_der),
        pck_crl_chain: encoded(&pki.pck_crl_issuer_chain_pem()),
        tcb_body: pki.tcb_info(opts)?.pccs_body("tcbInfo"),
        qe_body: pki.qe_identity(opts)?.pccs_body("enclaveIdentity"),
        tcb_chain: encoded(&pki.tcb_issuer_chain_pem()),
    };
    Ok(Router::new()
        .route("/sgx/certification/{version}/rootcacrl", get(root_crl))
        .route("/sgx/certification/{version}/pckcrl", get(pck_crl))
        .route("/sgx/certification/{version}/tcb", get(tcb_info))
        .route("/sgx/certification/{version}/qe/identity", get(qe_identity))
        .with_state(Arc::new(bodies)))
}

fn known_version(version: &str) -> bool {
    version == "v3" || version == "v4"
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn with_headers(body: impl IntoResponse, headers: &[(&'static str, &str)]) -> Response {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    (map, body).into_response()
}

async fn root_crl(Path(version): Path<String>, State(b): State<Arc<Bodies>>) -> Response {
    if !known_version(&version) {
        return not_found();
    }
    with_headers(b.root_crl_hex.clone(), &[("content-type", "text/plain")])
}

#[derive(Deserialize)]
struct PckCrlQuery {
    ca: Option<String>,
    encoding: Option<String>,
}

async fn pck_crl(
    Path(version): Path<String>,
    Query(q): Query<PckCrlQuery>,
    State(b): State<Arc<Bodies>>,
) -> Response {
    if !known_version(&version) {
        return not_found();
    }
    match q.ca.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("platform") => {}
        Some(_) => return not_found(),
        None => return StatusCode::BAD_REQUEST.into_response(),
    }
    let chain = [("sgx-pck-crl-issuer-chain", b.pck_crl_chain.as_str())];
    if q.encoding
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("der"))
    {
        let mut resp = with_headers(b.pck_crl_der.clone(), &chain);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkix-crl"),
        );
        resp
    } else {
        with_headers(b.pck_crl_pem.clone(), &chain)
    }
}

#[derive(Deserialize)]
struct TcbQuery {
    fmspc: Option<String>,
}

async fn tcb_info(
    Path(version): Path<String>,
    Query(q): Query<TcbQuery>,
    State(b): State<Arc<Bodies>>,
) -> Response {
    if !known_version(&version) {
        return not_found();
    }
    match q.fmspc {
        Some(f) if f.eq_ignore_ascii_case(&hex::encode(SIM_FMSPC)) => {}
        Some(_) => return not_found(),
        None => return StatusCode::BAD_REQUEST.into_response(),
    }
    with_headers(
        b.tcb_body.clone(),
        &[
            ("content-type", "application/json"),
            ("tcb-info-issuer-chain", b.tcb_chain.as_str()),
            ("sgx-tcb-info-issuer-chain", b.tcb_chain.as_str()),
        ],
    )
}

async fn qe_identity(Path(version): Path<String>, State(b): State<Arc<Bodies>>) -> Response {
    if !known_version(&version) {
        return not_found();
    }
    with_headers(
        b.qe_body.clone(),
        &[
            ("content-type", "application/json"),
            ("sgx-enclave-identity-issuer-chain", b.tcb_chain.as_str()),
        ],
    )
}

/// The mock PCCS: [`MockPccs::start`] gives a [`MockServer`] whose `url()` is the base URL to
/// give PCCS clients.
#[derive(Debug)]
pub struct MockPccs;

impl MockPccs {
    /// Start serving `pki`'s collateral described by `opts`.
    pub fn start(pki: &SimPki, opts: &CollateralOptions) -> Result<MockServer, SimError> {
        let app = router(pki, opts)?;
        MockServer::start("mock-pccs", app).map_err(|e| SimError::Pccs {
            addr: "127.0.0.1:0".to_owned(),
            reason: e.to_string(),
        })
    }
}
