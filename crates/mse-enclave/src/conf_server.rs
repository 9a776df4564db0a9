//! The configuration server: HTTPS over the RA-TLS certificate on the app's port, any path.
//!
//! `GET` (or `HEAD`) → 200 with `Mse-Status: Waiting`; `POST` with the JSON payload → 200 once
//! everything checked out and was stored (the connection then closes, the server stops and the
//! listener goes to the app), else 401 with a one-line reason and nothing written, and the server
//! keeps waiting. Bodies are limited to [`MAX_PAYLOAD_BYTES`]; each connection gets
//! [`CONNECTION_TIMEOUT`] in all.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::provision::{MAX_PAYLOAD_BYTES, ProvisionError, Provisioned, Provisioner};

/// Everything one connection may take: handshake, request(s) and provisioning.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Body of the waiting answer (the original's text).
pub const WAITING_BODY: &str = "Waiting for code secret key and/or ssl private key...";
/// The header that tells a configuration server from the app.
pub const STATUS_HEADER: &str = "Mse-Status";

/// Why the server stopped without a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfServerError {
    /// `--timeout` passed.
    #[error("no valid configuration received within {0} s: stopping")]
    Timeout(u64),
    /// A signal.
    #[error("stopped by {0} before the configuration arrived")]
    Interrupted(&'static str),
    /// The listener failed.
    #[error("configuration server listener: {0}")]
    Listener(#[source] std::io::Error),
}

struct State {
    provisioner: Provisioner,
    /// Serialises POSTs; true once provisioned.
    configured: tokio::sync::Mutex<bool>,
    done: watch::Sender<bool>,
    provisioned: Mutex<Option<Provisioned>>,
}

/// Serve until a payload provisions the enclave; returns the listener (for the app) and the
/// provisioning result. `stop` ends the wait early (a signal): its value names the cause.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    provisioner: Provisioner,
    timeout: Option<Duration>,
    stop: impl Future<Output = &'static str>,
) -> Result<(std::net::TcpListener, Provisioned), ConfServerError> {
    listener
        .set_nonblocking(true)
        .map_err(ConfServerError::Listener)?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(ConfServerError::Listener)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (done_tx, mut done_rx) = watch::channel(false);
    let state = Arc::new(State {
        provisioner,
        configured: tokio::sync::Mutex::new(false),
        done: done_tx,
        provisioned: Mutex::new(None),
    });
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = done_rx.changed() => break,
            cause = &mut stop => return Err(ConfServerError::Interrupted(cause)),
            () = &mut deadline => {
                return Err(ConfServerError::Timeout(timeout.map_or(0, |t| t.as_secs())));
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("configuration server: accept: {e}");
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                let mut done = state.done.subscribe();
                tokio::spawn(async move {
                    let work = async {
                        let tls = match acceptor.accept(tcp).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!("configuration server: TLS handshake with {peer}: {e}");
                                return;
                            }
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(req, &state).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service);
                        tokio::pin!(conn);
                        // Once configured, kept-alive connections finish their request and
                        // close: the next request reaches the app, never a stale "Waiting".
                        let result = tokio::select! {
                            r = conn.as_mut() => r,
                            () = async { drop(done.wait_for(|d| *d).await) } => {
                                conn.as_mut().graceful_shutdown();
                                conn.as_mut().await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!("configuration server: connection from {peer}: {e}");
                        }
                    };
                    if tokio::time::timeout(CONNECTION_TIMEOUT, work).await.is_err() {
                        tracing::debug!("configuration server: connection from {peer} timed out");
                    }
                });
            }
        }
    }
    let provisioned = state
        .provisioned
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .ok_or_else(|| ConfServerError::Listener(std::io::Error::other("no result recorded")))?;
    let listener = listener.into_std().map_err(ConfServerError::Listener)?;
    Ok((listener, provisioned))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(req: Request<Incoming>, state: &Arc<State>) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::GET | Method::HEAD => {
            let mut resp = text(StatusCode::OK, WAITING_BODY);
            resp.headers_mut()
                .insert(STATUS_HEADER, HeaderValue::from_static("Waiting"));
            resp
        }
        Method::POST => post(req, state).await,
        _ => {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and POST are served before the configuration\n",
            );
            resp.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST"),
            );
            resp
        }
    }
}

fn refuse(reason: &str) -> Response<Full<Bytes>> {
    tracing::warn!("configuration refused: {reason}");
    text(StatusCode::UNAUTHORIZED, format!("{reason}\n"))
}

async fn post(req: Request<Incoming>, state: &Arc<State>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_PAYLOAD_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return if e.is::<http_body_util::LengthLimitError>() {
                refuse(&format!(
                    "payload is over the {} MiB limit",
                    MAX_PAYLOAD_BYTES >> 20
                ))
            } else {
                refuse(&format!("cannot read the payload: {e}"))
            };
        }
    };
    let mut configured = state.configured.lock().await;
    if *configured {
        return refuse(&ProvisionError::AlreadyConfigured.to_string());
    }
    let state2 = state.clone();
    let outcome = tokio::task::spawn_blocking(move || state2.provisioner.provision(&body)).await;
    match outcome {
        Ok(Ok(provisioned)) => {
            *configured = true;
            if let Ok(mut slot) = state.provisioned.lock() {
                *slot = Some(provisioned);
            }
            let _ = state.done.send(true);
            tracing::info!("configuration received: secrets stored, code decrypted");
            let mut resp = text(
                StatusCode::OK,
                "Configuration received; the app is starting\n",
            );
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Ok(Err(e)) => refuse(&e.to_string()),
        Err(e) => refuse(&format!("internal error while provisioning: {e}")),
    }
}
