//! Status probes of an enclave over TLS. The node is not the verifier (the developer's `mse`
//! and end users verify the RA-TLS certificate), and the probe only learns whether the
//! configuration server or the app answers; so the certificate is not checked here, only the
//! handshake signature (so the peer holds the key of the certificate it shows).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The configuration server: 200 with `Mse-Status`.
    Waiting,
    /// An HTTP answer without `Mse-Status`, with this status code.
    App(u16),
    /// Anything else (connection refused, TLS error, timeout, other answer).
    Down,
}

#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> TlsConnector {
    static CONNECTOR: OnceLock<TlsConnector> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            TlsConnector::from(Arc::new(config))
        })
        .clone()
}

/// `GET path` on `addr` over TLS with SNI `host`, within `timeout`.
pub async fn probe(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Probe {
    tokio::time::timeout(timeout, probe_inner(addr, host, path))
        .await
        .unwrap_or(Probe::Down)
}

async fn probe_inner(addr: SocketAddr, host: &str, path: &str) -> Probe {
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Probe::Down;
    };
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return Probe::Down;
    };
    let Ok(tls) = connector().connect(name, tcp).await else {
        return Probe::Down;
    };
    let io = hyper_util::rt::TokioIo::new(tls);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return Probe::Down;
    };
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "mse-node-probe")
        .body(Empty::<Bytes>::new());
    let result = match request {
        Ok(req) => match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if resp.headers().contains_key("mse-status") {
                    if status == 200 {
                        Probe::Waiting
                    } else {
                        Probe::Down
                    }
                } else {
                    Probe::App(status)
                }
            }
            Err(_) => Probe::Down,
        },
        Err(_) => Probe::Down,
    };
    driver.abort();
    result
}
