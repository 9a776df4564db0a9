//! rustls verifiers that trust a server by its attested key, not by a CA, and fetching a
//! server's certificate over TLS (with SNI) for `mse verify`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};

use super::{RaTlsCert, RaTlsError, verify_certificate};
use crate::{Collateral, Policy, Report, TrustAnchors};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms(provider: &CryptoProvider) -> WebPkiSupportedAlgorithms {
    provider.signature_verification_algorithms
}

/// Handshake signature checks shared by every verifier here: the server must prove it holds
/// the private key of the certificate it presented.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms(&self.provider))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms(&self.provider))
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms(&self.provider).supported_schemes()
        }
    };
}

/// A server accepted by [`RaTlsVerifier`]: its certificate and the verification report.
#[derive(Debug, Clone)]
pub struct VerifiedServer {
    /// The server's RA-TLS certificate.
    pub cert: RaTlsCert,
    /// The verification report of its evidence.
    pub report: Report,
}

/// Accepts a server only if its RA-TLS certificate's evidence passes the policy.
pub struct RaTlsVerifier {
    anchors: TrustAnchors,
    policy: Policy,
    collateral: Collateral,
    provider: Arc<CryptoProvider>,
    last: Mutex<Option<VerifiedServer>>,
}

impl std::fmt::Debug for RaTlsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaTlsVerifier").finish_non_exhaustive()
    }
}

impl RaTlsVerifier {
    /// Verify servers with `collateral` (fetched beforehand) under `policy`.
    pub fn new(anchors: TrustAnchors, policy: Policy, collateral: Collateral) -> RaTlsVerifier {
        RaTlsVerifier {
            anchors,
            policy,
            collateral,
            provider: provider(),
            last: Mutex::new(None),
        }
    }

    /// The last server this verifier accepted.
    pub fn last_verified(&self) -> Option<VerifiedServer> {
        self.last.lock().ok().and_then(|g| g.clone())
    }
}

impl ServerCertVerifier for RaTlsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // rustls prints OtherError with Debug: carry our message as text so it stays readable.
        let other = |e: RaTlsError| {
            TlsError::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                std::io::Error::other(e.to_string()),
            ))))
        };
        let now = self
            .policy
            .now
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now.as_secs(), |d| d.as_secs());
        let (cert, report) =
            verify_certificate(end_entity, &self.collateral, &self.anchors, &self.policy)
                .map_err(other)?;
        if !report.trusted() {
            let reason = report
                .error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "untrusted".into());
            return Err(TlsError::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(std::io::Error::other(reason))),
            )));
        }
        cert.check_validity(i64::try_from(now).unwrap_or(i64::MAX))
            .map_err(other)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(VerifiedServer { cert, report });
        }
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Accepts exactly one certificate (the one verified earlier): deploy pins the attested key.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    der: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    /// Accept only the certificate `cert_der` (DER).
    pub fn new(cert_der: Vec<u8>) -> PinnedCertVerifier {
        PinnedCertVerifier {
            der: cert_der,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(TlsError::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    handshake_signatures!();
}

/// Records the server's certificate without judging it (the evidence is judged afterwards),
/// while still checking the handshake signatures so the server proves it holds the key.
#[derive(Debug)]
pub struct CaptureVerifier {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl Default for CaptureVerifier {
    fn default() -> Self {
        CaptureVerifier {
            provider: provider(),
            seen: Mutex::new(None),
        }
    }
}

impl CaptureVerifier {
    /// The certificate the server presented.
    pub fn captured(&self) -> Option<Vec<u8>> {
        self.seen.lock().ok().and_then(|g| g.clone())
    }
}

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Connect to `host:port` with SNI `sni`, complete the handshake (the server proves possession
/// of its key) and return the certificate it presented, DER. Bounded by `timeout`.
pub async fn fetch_server_certificate(
    host: &str,
    port: u16,
    sni: &str,
    timeout: Duration,
) -> Result<Vec<u8>, RaTlsError> {
    let addr = format!("{host}:{port}");
    let err = |reason: String| RaTlsError::Connect {
        addr: addr.clone(),
        reason,
    };
    let capture = Arc::new(CaptureVerifier::default());
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| err(format!("server name {sni:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| err(e.to_string()))?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| err(format!("TLS handshake: {e}")))
    };
    let mut stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| err(format!("timed out after {}s", timeout.as_secs())))??;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    capture
        .captured()
        .ok_or_else(|| err("the server presented no certificate".into()))
}
