//! The owner's TLS certificate (`[cloud.ssl] certificate`): what the configuration checks of it.

use std::path::Path;

use chrono::{DateTime, Utc};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Why a certificate file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file could not be read (or is over [`crate::bounded::MAX_CERT_FILE`]).
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The file holds no `CERTIFICATE` PEM block.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// The PEM encoding is broken (parser message).
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The PEM block's DER is not an X.509 certificate (parser message).
    #[error("invalid X.509 certificate: {0}")]
    X509(String),
}

/// What the configuration checks of the leaf certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// DNS names of the subjectAltName extension, as written (may hold `*.` wildcards).
    pub dns_names: Vec<String>,
    /// Start of validity (UTC, whole seconds).
    pub not_before: DateTime<Utc>,
    /// End of validity (UTC, whole seconds).
    pub not_after: DateTime<Utc>,
}

impl CertInfo {
    /// Whether `domain`, or its wildcard (`*.` + the domain without its first label), is
    /// among the certificate's SAN DNS names.
    pub fn covers(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let wildcard = domain.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        self.dns_names.iter().any(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            n == domain || wildcard.as_deref() == Some(n.as_str())
        })
    }
}

/// Reads the first certificate of a PEM file (a full chain starts with the leaf).
pub fn read_certificate(path: &Path) -> Result<CertInfo, CertError> {
    let data = crate::bounded::read_bounded(path, crate::bounded::MAX_CERT_FILE)
        .map_err(|e| CertError::Read(e.into()))?;
    let pem = Pem::iter_from_buffer(&data)
        .find(|p| p.as_ref().map_or(true, |p| p.label == "CERTIFICATE"))
        .ok_or(CertError::NoCertificate)?
        .map_err(|e| CertError::Pem(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| CertError::X509(e.to_string()))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push((*n).to_string());
            }
        }
    }
    let ts = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    Ok(CertInfo {
        dns_names,
        not_before: ts(cert.validity().not_before),
        not_after: ts(cert.validity().not_after),
    })
}
