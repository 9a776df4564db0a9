//! Collateral: what a verifier needs besides the evidence. For SGX/TDX the Intel-signed TCB
//! info, QE identity, CRLs and issuer chains (dcap-qvl's `QuoteCollateralV3`), fetched from a
//! PCCS (API v4) or read from a JSON file; for SEV-SNP the chip's VCEK certificate.
//!
//! Intel signs the exact bytes of `tcbInfo` / `enclaveIdentity`, so the PCCS client keeps
//! them as received (`serde_json::value::RawValue`) and never re-serializes them.

use std::path::Path;
use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::evidence::{Evidence, EvidenceError};

/// PCCS requests give up after this long (the original used 30 s too).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest PCCS response body we read (real ones are tens of KiB).
const MAX_BODY: u64 = 4 << 20;
/// Largest collateral file we read.
const MAX_FILE: u64 = 16 << 20;

/// Collateral for one piece of evidence.
// Built once per verification and rarely moved: boxing would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collateral {
    Dcap(QuoteCollateralV3),
    SevSnp {
        vcek_der: Vec<u8>,
    },
    /// None could be had (why, in one line): the checks that need collateral are reported as
    /// "not evaluated", those that read the evidence alone (debug, report_data binding,
    /// measurement, signer) are still evaluated.
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    #[error("cannot read collateral file {path}: {msg}")]
    Io { path: String, msg: String },
    #[error("collateral file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("collateral is neither DCAP collateral JSON nor a VCEK certificate (PEM or DER)")]
    UnknownFormat,
    #[error("invalid DCAP collateral JSON: {0}")]
    Json(String),
    #[error("invalid VCEK certificate: {0}")]
    Certificate(String),
    #[error("cannot parse the quote to fetch its collateral: {0}")]
    Evidence(#[from] EvidenceError),
    #[error(
        "SEV-SNP collateral is the VCEK certificate, which a PCCS does not serve; pass it as a file"
    )]
    SevSnpFromPccs,
    #[error(
        "the quote carries no PCK certificate chain (certification data type {cert_type}); fetching the PCK certificate by encrypted PPID is not supported"
    )]
    NoPckChain { cert_type: u16 },
    #[error("cannot read the PCK certificate: {0}")]
    Pck(String),
    #[error("PCCS request {url} failed: {msg}")]
    Transport { url: String, msg: String },
    #[error("PCCS request {url} returned HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("PCCS response from {url} lacks the {header} header")]
    MissingHeader { url: String, header: &'static str },
    #[error("PCCS response from {url} is invalid: {msg}")]
    BadResponse { url: String, msg: String },
}

impl Collateral {
    /// Read collateral from a file: DCAP collateral JSON, or a VCEK certificate (PEM/DER).
    pub fn from_file(path: &Path) -> Result<Self, CollateralError> {
        use std::io::Read;
        let io = |e: std::io::Error| CollateralError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(CollateralError::TooLarge { limit: MAX_FILE });
        }
        Self::from_bytes(&bytes)
    }

    /// Detect and parse collateral bytes (see [`Collateral::from_file`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CollateralError> {
        let text = bytes.trim_ascii();
        if text.starts_with(b"{") {
            return serde_json::from_slice(text)
                .map(Collateral::Dcap)
                .map_err(|e| CollateralError::Json(e.to_string()));
        }
        let der = if text.starts_with(b"-----BEGIN") {
            let (_, pem) = x509_parser::pem::parse_x509_pem(text)
                .map_err(|e| CollateralError::Certificate(e.to_string()))?;
            pem.contents
        } else if bytes.first() == Some(&0x30) {
            bytes.to_vec()
        } else {
            return Err(CollateralError::UnknownFormat);
        };
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CollateralError::Certificate(e.to_string()))?;
        Ok(Collateral::SevSnp { vcek_der: der })
    }

    /// The JSON form of DCAP collateral (what `--collateral FILE` reads back).
    pub fn to_json(&self) -> Option<String> {
        match self {
            Collateral::Dcap(c) => serde_json::to_string_pretty(c).ok(),
            Collateral::SevSnp { .. } | Collateral::Unavailable(_) => None,
        }
    }
}

/// Fetch the DCAP collateral of an SGX/TDX quote (binary or hex) from a PCCS (API v4).
///
/// Runs the blocking HTTP client on tokio's blocking pool when called inside a tokio runtime.
pub async fn fetch_collateral(pccs_url: &str, quote: &[u8]) -> Result<Collateral, CollateralError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            let (url, quote) = (pccs_url.to_string(), quote.to_vec());
            handle
                .spawn_blocking(move || fetch_collateral_blocking(&url, &quote))
                .await
                .map_err(|e| CollateralError::Transport {
                    url: pccs_url.to_string(),
                    msg: format!("fetch task failed: {e}"),
                })?
        }
        Err(_) => fetch_collateral_blocking(pccs_url, quote),
    }
}

/// Blocking form of [`fetch_collateral`].
pub fn fetch_collateral_blocking(
    pccs_url: &str,
    quote: &[u8],
) -> Result<Collateral, CollateralError> {
    let (tee, certification) = match Evidence::parse(quote)? {
        Evidence::Sgx(q) => ("sgx", q.qe.certification),
        Evidence::Tdx(q) => ("tdx", q.qe.certification),
        Evidence::SevSnp(_) => return Err(CollateralError::SevSnpFromPccs),
    };
    let chain = certification.pem_chain_der();
    let Some(leaf) = chain.first() else {
        return Err(CollateralError::NoPckChain {
            cert_type: certification.cert_type,
        });
    };
    let pck = dcap_qvl::intel::parse_pck_extension(leaf)
        .map_err(|e| CollateralError::Pck(format!("{e:#}")))?;
    let ca = dcap_qvl::intel::pck_ca(leaf)
        .map_err(|e| CollateralError::Pck(format!("{e:#}")))?
        .as_id_str();
    let fmspc = hex::encode_upper(pck.fmspc);
    let pck_chain_pem = String::from_utf8_lossy(&certification.data)
        .trim_end_matches('\0')
        .to_string();

    let base = pccs_url
        .trim_end_matches('/')
        .trim_end_matches("/sgx/certification/v4")
        .trim_end_matches("/tdx/certification/v4");
    let pccs = Pccs::new();

    let url = format!("{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der");
    let resp = pccs.get(&url)?;
    let pck_crl_issuer_chain = resp.header(&url, &["SGX-PCK-CRL-Issuer-Chain"])?;
    let pck_crl = maybe_hex(resp.body);

    let url = format!("{base}/{tee}/certification/v4/tcb?fmspc={fmspc}");
    let resp = pccs.get(&url)?;
    let tcb_info_issuer_chain = resp.header(
        &url,
        &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
    )?;
    let signed: SignedTcbInfo = parse_json(&url, &resp.body)?;
    let tcb_info = signed.tcb_info.get().to_string();
    let tcb_info_signature = parse_sig(&url, &signed.signature)?;

    let url = format!("{base}/{tee}/certification/v4/qe/identity");
    let resp = pccs.get(&url)?;
    let qe_identity_issuer_chain = resp.header(&url, &["SGX-Enclave-Identity-Issuer-Chain"])?;
    let signed: SignedQeIdentity = parse_json(&url, &resp.body)?;
    let qe_identity = signed.enclave_identity.get().to_string();
    let qe_identity_signature = parse_sig(&url, &signed.signature)?;

    // A PCCS serves the root CA CRL as hex text; Intel's PCS and CDN serve DER.
    let url = format!("{base}/sgx/certification/v4/rootcacrl");
    let root_ca_crl = maybe_hex(pccs.get(&url)?.body);

    Ok(Collateral::Dcap(QuoteCollateralV3 {
        pck_crl_issuer_chain,
        root_ca_crl,
        pck_crl,
        tcb_info_issuer_chain,
        tcb_info,
        tcb_info_signature,
        qe_identity_issuer_chain,
        qe_identity,
        qe_identity_signature,
        pck_certificate_chain: Some(pck_chain_pem),
    }))
}

#[derive(Deserialize)]
struct SignedTcbInfo<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct SignedQeIdentity<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a RawValue,
    signature: String,
}

fn parse_json<'a, T: Deserialize<'a>>(url: &str, body: &'a [u8]) -> Result<T, CollateralError> {
    serde_json::from_slice(body).map_err(|e| CollateralError::BadResponse {
        url: url.to_string(),
        msg: e.to_string(),
    })
}

fn parse_sig(url: &str, sig: &str) -> Result<Vec<u8>, CollateralError> {
    hex::decode(sig).map_err(|e| CollateralError::BadResponse {
        url: url.to_string(),
        msg: format!("signature is not hex: {e}"),
    })
}

/// Decode a body that may be hex text of DER, else return it unchanged.
fn maybe_hex(body: Vec<u8>) -> Vec<u8> {
    let text = body.trim_ascii();
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(der) = hex::decode(text) {
            return der;
        }
    }
    body
}

struct Pccs {
    agent: ureq::Agent,
}

struct PccsResponse {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl PccsResponse {
    /// The first present header among `names`, URL-decoded (issuer chains are URL-encoded PEM).
    fn header(&self, url: &str, names: &[&'static str]) -> Result<String, CollateralError> {
        for name in names {
            if let Some((_, v)) = self
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                return percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|e| CollateralError::BadResponse {
                        url: url.to_string(),
                        msg: format!("header {name} is not UTF-8: {e}"),
                    });
            }
        }
        Err(CollateralError::MissingHeader {
            url: url.to_string(),
            header: names[0],
        })
    }
}

impl Pccs {
    fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .build();
        Pccs {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn get(&self, url: &str) -> Result<PccsResponse, CollateralError> {
        let transport = |e: ureq::Error| CollateralError::Transport {
            url: url.to_string(),
            msg: e.to_string(),
        };
        let mut resp = self.agent.get(url).call().map_err(transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(CollateralError::Http {
                url: url.to_string(),
                status,
            });
        }
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(transport)?;
        Ok(PccsResponse { headers, body })
    }
}
