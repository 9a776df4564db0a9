//! Collateral: what a verifier needs besides the evidence. For SGX/TDX the Intel-signed TCB
//! info, QE identity, CRLs and issuer chains (dcap-qvl's `QuoteCollateralV3`), fetched from a
//! PCCS (API v4) or read from a JSON file; for SEV-SNP the certificate of the key that signed
//! the report (VCEK or VLEK), optionally followed by its issuer chain (ASK or ASVK, ARK), read
//! from a file or fetched from AMD's Key Distribution Service (KDS).
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
    /// SGX/TDX: Intel's signed TCB info, QE identity, CRLs and issuer chains.
    Dcap(QuoteCollateralV3),
    /// SEV-SNP: the VCEK or VLEK certificate, and the issuer certificates that came with it
    /// (ASK or ASVK, ARK; may be empty). The ARK is never trusted from here: AMD's are pinned,
    /// a simulation ARK comes from [`crate::TrustAnchors`].
    SevSnp {
        /// The VCEK or VLEK certificate (DER).
        vek_der: Vec<u8>,
        /// Issuer certificates given with it (DER), in the order given.
        chain_der: Vec<Vec<u8>>,
    },
    /// None could be had (why, in one line): the checks that need collateral are reported as
    /// "not evaluated", those that read the evidence alone (debug, report_data binding,
    /// measurement, signer) are still evaluated.
    Unavailable(String),
}

/// Why collateral could not be read or fetched.
#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    /// The collateral file could not be read.
    #[error("cannot read collateral file {path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// The collateral file is too large.
    #[error("collateral file is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The bytes are neither DCAP JSON nor a certificate.
    #[error("collateral is neither DCAP collateral JSON nor a VCEK certificate (PEM or DER)")]
    UnknownFormat,
    /// The DCAP collateral JSON is invalid.
    #[error("invalid DCAP collateral JSON: {0}")]
    Json(String),
    /// The VCEK/VLEK certificate is invalid.
    #[error("invalid VCEK certificate: {0}")]
    Certificate(String),
    /// The evidence whose collateral is wanted does not parse.
    #[error("cannot parse the quote to fetch its collateral: {0}")]
    Evidence(#[from] EvidenceError),
    #[error(
        "SEV-SNP collateral is the VCEK certificate, which a PCCS does not serve; pass it as a file"
    )]
    /// A PCCS was asked for SEV-SNP collateral.
    SevSnpFromPccs,
    /// A KDS was asked for collateral of non-SNP evidence.
    #[error("only SEV-SNP reports have a VCEK to fetch from a KDS; this is {0} evidence")]
    NotSevSnp(crate::evidence::EvidenceKind),
    #[error(
        "the report is signed by a {0}, which AMD's KDS does not serve (the host provides VLEKs); pass it as a file"
    )]
    /// The report is signed by a key the KDS does not serve.
    NotKdsKey(crate::evidence::SnpSigningKey),
    /// The report's product line is unknown and none was given.
    #[error("cannot tell the AMD product line of this report (no CPUID before report version 3)")]
    UnknownProduct,
    /// A KDS request failed.
    #[error("KDS request {url} failed: {msg}")]
    KdsTransport {
        /// The URL.
        url: String,
        /// What went wrong.
        msg: String,
    },
    /// A KDS request returned an HTTP error.
    #[error("KDS request {url} returned HTTP {status}")]
    KdsHttp {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    #[error(
        "the quote carries no PCK certificate chain (certification data type {cert_type}); fetching the PCK certificate by encrypted PPID is not supported"
    )]
    /// The quote carries no PCK certificate chain.
    NoPckChain {
        /// The certification data type.
        cert_type: u16,
    },
    /// The PCK certificate is unreadable.
    #[error("cannot read the PCK certificate: {0}")]
    Pck(String),
    /// A PCCS request failed.
    #[error("PCCS request {url} failed: {msg}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        msg: String,
    },
    /// A PCCS request returned an HTTP error.
    #[error("PCCS request {url} returned HTTP {status}")]
    Http {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A PCCS response lacks a required header.
    #[error("PCCS response from {url} lacks the {header} header")]
    MissingHeader {
        /// The URL.
        url: String,
        /// The header.
        header: &'static str,
    },
    /// A PCCS response is malformed.
    #[error("PCCS response from {url} is invalid: {msg}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What went wrong.
        msg: String,
    },
}

impl Collateral {
    /// Read collateral from a file: DCAP collateral JSON, or a VCEK/VLEK certificate (DER, or
    /// PEM optionally followed by its ASK/ASVK and ARK).
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
        let mut certs = if text.starts_with(b"-----BEGIN") {
            let (_, pem) = x509_parser::pem::parse_x509_pem(text)
                .map_err(|e| CollateralError::Certificate(e.to_string()))?;
            let mut all = vec![pem.contents];
            all.extend(crate::verify::pem_certificates(text).into_iter().skip(1));
            all
        } else if bytes.first() == Some(&0x30) {
            vec![bytes.to_vec()]
        } else {
            return Err(CollateralError::UnknownFormat);
        };
        for der in &certs {
            x509_parser::parse_x509_certificate(der)
                .map_err(|e| CollateralError::Certificate(e.to_string()))?;
        }
        let vek_der = certs.remove(0);
        Ok(Collateral::SevSnp {
            vek_der,
            chain_der: certs,
        })
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

/// The AMD product line of an SEV-SNP report, as KDS URLs name it, from its CPUID (report
/// version 3 and later): family 19h models 0h–Fh Milan, 10h–1Fh and A0h–AFh Genoa, family 1Ah
/// Turin.
pub fn snp_product(report: &crate::SnpReport) -> Option<&'static str> {
    match report.cpuid? {
        (0x19, 0x00..=0x0F, _) => Some("Milan"),
        (0x19, 0x10..=0x1F | 0xA0..=0xAF, _) => Some("Genoa"),
        (0x1A, _, _) => Some("Turin"),
        _ => None,
    }
}

/// The KDS path (after the base URL) of the VCEK that signs `report` as `product`:
/// `/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` (Turin: 8-byte hwid
/// and `fmcSPL` first), as AMD's KDS serves it.
pub fn kds_vcek_path(product: &str, report: &crate::SnpReport) -> String {
    let tcb = report.reported_tcb;
    let (hwid, fmc) = match tcb.fmc {
        Some(fmc) => (&report.chip_id[..8], format!("fmcSPL={fmc}&")),
        None => (&report.chip_id[..], String::new()),
    };
    format!(
        "/vcek/v1/{product}/{}?{fmc}blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        hex::encode(hwid),
        tcb.bootloader,
        tcb.tee,
        tcb.snp,
        tcb.microcode
    )
}

/// Fetch the SEV-SNP collateral of a VCEK-signed report from a KDS (AMD's is
/// `https://kdsintf.amd.com`): the VCEK for its chip and reported TCB, and the product's
/// `cert_chain` (ASK, ARK). `product` overrides the product line told by the report's CPUID.
pub fn fetch_snp_collateral_blocking(
    kds_url: &str,
    evidence: &[u8],
    product: Option<&str>,
) -> Result<Collateral, CollateralError> {
    let report = match Evidence::parse(evidence)? {
        Evidence::SevSnp(r) => r,
        other => return Err(CollateralError::NotSevSnp(other.kind())),
    };
    let key = report.signing_key();
    if key != crate::evidence::SnpSigningKey::Vcek {
        return Err(CollateralError::NotKdsKey(key));
    }
    let product = product
        .or_else(|| snp_product(&report))
        .ok_or(CollateralError::UnknownProduct)?;
    let base = kds_url.trim_end_matches('/');
    let kds = Pccs::new();
    let get = |url: &str| {
        kds.get(url).map(|r| r.body).map_err(|e| match e {
            CollateralError::Transport { url, msg } => CollateralError::KdsTransport { url, msg },
            CollateralError::Http { url, status } => CollateralError::KdsHttp { url, status },
            other => other,
        })
    };
    let url = format!("{base}{}", kds_vcek_path(product, &report));
    let vek_der = get(&url)?;
    x509_parser::parse_x509_certificate(&vek_der).map_err(|e| CollateralError::BadResponse {
        url: url.clone(),
        msg: format!("not a DER certificate: {e}"),
    })?;
    let url = format!("{base}/vcek/v1/{product}/cert_chain");
    let chain_der = crate::verify::pem_certificates(&get(&url)?);
    if chain_der.is_empty() {
        return Err(CollateralError::BadResponse {
            url,
            msg: "no PEM certificate in the cert_chain".into(),
        });
    }
    Ok(Collateral::SevSnp { vek_der, chain_der })
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
