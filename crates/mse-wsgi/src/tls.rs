//! TLS acceptor from PEM files or a caller-supplied rustls config; ALPN offers h2 and http/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;
use crate::error::Error;

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn load_pem(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, Error> {
    let file_err = |what: &'static str, path: &Path, reason: String| Error::TlsFile {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("certificate", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("certificate", cert, "no CERTIFICATE block".into()));
    }
    // The key's content never appears in errors: only the file name and the kind of failure.
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err("private key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            Error::Tls(format!(
                "certificate and key do not match or are unsupported: {e}"
            ))
        })?;
    config.alpn_protocols = alpn();
    Ok(config)
}

pub fn acceptor(tls: &Tls) -> Result<Option<tokio_rustls::TlsAcceptor>, Error> {
    let config = match tls {
        Tls::None => return Ok(None),
        Tls::Pem { cert, key } => Arc::new(load_pem(cert, key)?),
        Tls::Config(c) if c.alpn_protocols.is_empty() => {
            let mut c = (**c).clone();
            c.alpn_protocols = alpn();
            Arc::new(c)
        }
        Tls::Config(c) => c.clone(),
    };
    Ok(Some(tokio_rustls::TlsAcceptor::from(config)))
}
