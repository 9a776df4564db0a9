//! HTTPS to an enclave through the node's router: TLS with the app's domain as SNI, trusting
//! exactly one certificate (the one whose evidence was verified), so the key and secrets can
//! only reach the attested enclave.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mse_attest::ratls::PinnedCertVerifier;
use rustls::pki_types::ServerName;

/// Largest answer read from an enclave.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// An answer: status and body as text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One HTTP/1.1 request to `addr` (host:port) over TLS with SNI `sni`, accepting only the
/// server certificate `pinned_der`.
pub fn pinned_request(
    addr: &str,
    sni: &str,
    pinned_der: &[u8],
    method: hyper::Method,
    path: &str,
    json_body: Option<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<Answer> {
    let work = async {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(pinned_der.to_vec())))
        .with_no_client_auth();
        let name = ServerName::try_from(sni.to_owned())
            .with_context(|| format!("{sni:?} is not a valid server name"))?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake (the server must present the verified certificate)")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake")?;
        let driver = tokio::spawn(conn);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, sni);
        let body = match json_body {
            Some(b) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = builder.body(body).context("building the request")?;
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        driver.abort();
        anyhow::Ok(Answer {
            status,
            body: String::from_utf8_lossy(&bytes).trim().to_owned(),
        })
    };
    runtime()?
        .block_on(async {
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| anyhow::anyhow!("timed out after {} s", timeout.as_secs()))?
        })
        .with_context(|| format!("https://{sni} (via {addr})"))
}
