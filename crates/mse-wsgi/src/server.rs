//! The accept loop: hyper 1 (HTTP/1.1 keep-alive + pipelining, HTTP/2 by ALPN or prior knowledge),
//! optional TLS, requests dispatched to the Python pool, graceful shutdown with a bounded drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::asgi::{self, AsgiApp};
use crate::config::{Bind, Interface, ServerConfig};
use crate::conn_io::{ConnIo, H2_BAD_PREFACE_REPLY, H2_PREFACE};
use crate::deadline::Deadlines;
use crate::error::Error;
use crate::pool::PythonPool;
use crate::python;
use crate::request::{BodyReader, RequestInfo};
use crate::response::{AccessLog, BodyFlags, First, RespBody, Sink};
use crate::tls;
use crate::wsgi::{self, ConnStrings, WsgiApp};

/// Largest request head (request line + headers) hyper buffers; beyond it the request is refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Data a chunked request body may have read ahead of the app (see `request::prefetch`).
const PREFETCH_BYTES: usize = 64 * 1024;

enum App {
    Wsgi(WsgiApp),
    Asgi(AsgiApp),
}

struct Shared {
    app: App,
    pool: PythonPool,
    max_body: u64,
    handle: tokio::runtime::Handle,
}

/// A server whose interpreter, app and listener are ready; `serve` runs it.
pub struct Server {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    app: App,
    interface: Interface,
}

impl Server {
    /// Initialises Python (once per process), imports the app, detects its interface, runs ASGI
    /// lifespan startup, and binds the listener. This blocks (app import, lifespan startup): call
    /// it before entering the runtime or from `spawn_blocking`.
    pub fn new(mut config: ServerConfig) -> Result<Self, Error> {
        if !(1..=256).contains(&config.threads) {
            return Err(Error::Threads(config.threads));
        }
        python::initialize(config.venv.as_deref())?;
        let (app, interface) = Python::attach(|py| -> Result<(App, Interface), Error> {
            if let Some(code) = &config.startup_code {
                python::run_startup_code(py, code)?;
            }
            let obj = python::load_app(py, &config.app, &config.app_dir)?;
            let asgi = match config.interface {
                Interface::Auto => asgi::is_asgi(py, &obj)?,
                Interface::Asgi => true,
                Interface::Wsgi => false,
            };
            if asgi {
                let io_threads = config.threads.max(2) * 4;
                Ok((
                    App::Asgi(AsgiApp::start(py, obj, io_threads)?),
                    Interface::Asgi,
                ))
            } else {
                let app = WsgiApp::new(py, obj, config.threads)
                    .map_err(|e| Error::Helper(python::format_exception(py, &e)))?;
                Ok((App::Wsgi(app), Interface::Wsgi))
            }
        })?;
        let bind = std::mem::replace(&mut config.bind, Bind::Addr(([0, 0, 0, 0], 0).into()));
        let listener = match bind {
            Bind::Listener(l) => l,
            Bind::Addr(addr) => {
                std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?
            }
        };
        listener.set_nonblocking(true).map_err(Error::Listener)?;
        let local_addr = listener.local_addr().map_err(Error::Listener)?;
        Ok(Self {
            listener,
            local_addr,
            config,
            app,
            interface,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The interface in use (detected or forced).
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// Serves until `shutdown` completes, then stops accepting, drains in-flight requests for at
    /// most `shutdown_timeout`, runs ASGI lifespan shutdown and stops the Python threads.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let acceptor = tls::acceptor(&self.config.tls)?;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(Error::Listener)?;
        let pool = PythonPool::start(self.config.threads)?;
        if let App::Asgi(app) = &self.app {
            app.set_runtime(tokio::runtime::Handle::current());
        }
        let shared = Arc::new(Shared {
            app: self.app,
            pool,
            max_body: self.config.max_body,
            handle: tokio::runtime::Handle::current(),
        });
        let builders = Arc::new(Builders::new());
        let deadlines = Deadlines::new(self.config.header_timeout);
        let sweeper = tokio::spawn(deadlines.clone().run());
        let header_timeout = self.config.header_timeout;
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_connections.max(1),
        ));
        let mut conns = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, remote) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(self.local_addr);
            let watcher = graceful.watcher();
            let builders = builders.clone();
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            let deadlines = deadlines.clone();
            while conns.try_join_next().is_some() {}
            conns.spawn(async move {
                let _permit = permit;
                let tls = acceptor.is_some();
                let conn = Arc::new(ConnStrings::default());
                let watch = deadlines.watch();
                let svc_watch = watch.clone();
                let svc = service_fn(move |req| {
                    let in_flight = svc_watch.begin();
                    let resp = handle(shared.clone(), remote, local, tls, conn.clone(), req);
                    async move {
                        let mut resp = resp.await?;
                        resp.body_mut().hold(Some(in_flight));
                        Ok::<_, Infallible>(resp)
                    }
                });
                let result = match acceptor {
                    // Plain port: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
                    None => {
                        let io = TokioIo::new(
                            ConnIo::new(stream, Bytes::new(), true).with_deadline(watch),
                        );
                        let conn = builders.auto.serve_connection(io, svc);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let mut tls_stream = match tokio::time::timeout(
                            TLS_HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("{remote}: TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("{remote}: TLS handshake timed out");
                                return;
                            }
                        };
                        // ALPN decided the protocol: no sniffing after it (RFC 9113 §3.3).
                        if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                            watch.exempt();
                            let Some(preface) =
                                read_h2_preface(&mut tls_stream, remote, header_timeout).await
                            else {
                                return;
                            };
                            let io = TokioIo::new(ConnIo::new(tls_stream, preface, false));
                            let conn = builders.h2.serve_connection(io, svc);
                            watcher.watch(conn).await.map_err(Into::into)
                        } else {
                            let io = TokioIo::new(
                                ConnIo::new(tls_stream, Bytes::new(), true).with_deadline(watch),
                            );
                            let conn = builders.h1.serve_connection(io, svc);
                            watcher.watch(conn).await.map_err(Into::into)
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!("{remote}: connection error: {e}");
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: draining {} connection(s)", graceful.count());
        if tokio::time::timeout(self.config.shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "graceful shutdown timed out after {:?}; closing the remaining connections",
                self.config.shutdown_timeout
            );
        }
        conns.abort_all();
        sweeper.abort();
        while conns.join_next().await.is_some() {}
        // A Python thread stuck in the app cannot be killed: stop waiting after the same bound
        // (the threads die with the process).
        let shared2 = shared.clone();
        let stop = tokio::task::spawn_blocking(move || {
            shared2.pool.shutdown();
            if let App::Asgi(a) = &shared2.app {
                Python::attach(|py| a.stop(py));
            }
        });
        if tokio::time::timeout(self.config.shutdown_timeout, stop)
            .await
            .is_err()
        {
            tracing::warn!("Python threads still busy after shutdown; leaving them");
        }
        Ok(())
    }
}

/// One connection builder per protocol decision: ALPN `h2`, ALPN `http/1.1` (or none) on TLS,
/// and the sniffing one for plain ports (HTTP/1.1 or h2c prior knowledge).
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new() -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            // Pipelining works without `pipeline_flush`; with it, hyper 1.12 drops the automatic
            // 400 for an unparsable request before flushing it.
            .keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            // The head deadline is ours (`deadline`): hyper's costs a timer per request.
            .header_read_timeout(None);
        auto.http2().timer(TokioTimer::new());
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            .header_read_timeout(None);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        Self { auto, h1, h2 }
    }
}

/// Reads the client's HTTP/2 connection preface on a connection ALPN made HTTP/2. Anything else
/// is a connection error: the answer is SETTINGS + GOAWAY(PROTOCOL_ERROR), then the connection
/// closes (hyper's h2 would close without the GOAWAY). Returns the preface bytes to replay.
async fn read_h2_preface<S>(stream: &mut S, remote: SocketAddr, timeout: Duration) -> Option<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut got = [0u8; 24];
    let mut n = 0;
    let read = async {
        while n < got.len() {
            match stream.read(&mut got[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => {
                    if got[n..n + k] != H2_PREFACE[n..n + k] {
                        n += k;
                        return true;
                    }
                    n += k;
                }
            }
        }
        true
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(true) if got == *H2_PREFACE => Some(Bytes::copy_from_slice(&got)),
        Ok(true) => {
            tracing::debug!("{remote}: invalid HTTP/2 connection preface");
            let _ = stream.write_all(H2_BAD_PREFACE_REPLY).await;
            let _ = stream.shutdown().await;
            None
        }
        _ => None,
    }
}

/// Convenience: `Server::new(config)?.serve(shutdown)`.
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Server::new(config)?.serve(shutdown).await
}

pub(crate) fn plain(
    status: u16,
    text: &'static str,
    log: Option<Box<AccessLog>>,
) -> Response<RespBody> {
    let mut log = log;
    if let Some(l) = log.as_mut() {
        l.status = status;
    }
    let mut resp = Response::new(RespBody::full(Bytes::from_static(text.as_bytes()), log));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(
    shared: Arc<Shared>,
    remote: SocketAddr,
    local: SocketAddr,
    tls: bool,
    conn: Arc<ConnStrings>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let (parts, mut body) = req.into_parts();
    // Skip the bookkeeping entirely when the access log is filtered out (benchmarks).
    let log = tracing::enabled!(target: "mse_wsgi::access", tracing::Level::INFO).then(|| {
        Box::new(AccessLog {
            remote,
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            version: parts.version,
            status: 0,
            start: Instant::now(),
            bytes: AtomicU64::new(0),
        })
    });
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body) {
        return Ok(plain(413, "Request Entity Too Large\n", log));
    }
    if let Some(refusal) = refuse(&parts) {
        return Ok(refusal(log));
    }
    let early = if parts.version <= Version::HTTP_11
        && parts.headers.contains_key(hyper::header::TRANSFER_ENCODING)
        && !parts.headers.contains_key(hyper::header::EXPECT)
    {
        let early = crate::request::prefetch(&mut body, PREFETCH_BYTES).await;
        if early.failed() {
            return Ok(plain(400, "Bad Request\n", log));
        }
        early
    } else {
        Default::default()
    };
    let info = RequestInfo {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        remote,
        local,
        tls,
        conn,
    };
    let flags = Arc::new(BodyFlags::default());
    let reader = BodyReader::new(
        body,
        early,
        shared.max_body,
        flags.clone(),
        shared.handle.clone(),
    );
    let (tx, rx) = oneshot::channel::<First>();
    let sink = Sink::new(tx, flags);
    let submitted = match &shared.app {
        App::Asgi(app) => {
            app.dispatch(asgi::Job { info, reader, sink });
            true
        }
        App::Wsgi(_) => {
            let job_shared = shared.clone();
            shared.pool.submit(Box::new(move |py| {
                if let App::Wsgi(app) = &job_shared.app {
                    wsgi::run(py, app, &info, reader, sink);
                }
            }))
        }
    };
    if !submitted {
        return Ok(plain(503, "Service Unavailable\n", log));
    }
    let mut log = log;
    let resp = match rx.await {
        Ok(First::Head(status, headers, rx)) => {
            if let Some(l) = log.as_mut() {
                l.status = status;
            }
            let mut resp = Response::new(RespBody::stream(rx, log));
            apply(&mut resp, status, headers);
            resp
        }
        Ok(First::Full(status, headers, body)) => {
            if let Some(l) = log.as_mut() {
                l.status = status;
            }
            let mut resp = Response::new(RespBody::full(body, log));
            apply(&mut resp, status, headers);
            resp
        }
        Err(_) => plain(500, "Internal Server Error\n", log),
    };
    Ok(resp)
}

/// Builds a refusal response (with the access-log record, if any).
pub(crate) type Refusal = fn(Option<Box<AccessLog>>) -> Response<RespBody>;

/// Requests refused before the app sees them (RFC 9112 §3.2, RFC 9110 §9.3.6).
pub(crate) fn refuse(parts: &hyper::http::request::Parts) -> Option<Refusal> {
    if parts.method == Method::CONNECT {
        // An origin server, not a proxy: no tunnels.
        return Some(|log| {
            let mut r = plain(405, "Method Not Allowed\n", log);
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static(
                    "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
                ),
            );
            r
        });
    }
    if parts.version <= Version::HTTP_11 {
        // HTTP/1.1 requires exactly one Host field; HTTP/1.0 allows none, never two.
        let mut hosts = parts.headers.get_all(hyper::header::HOST).iter();
        let first = hosts.next();
        if hosts.next().is_some() || (first.is_none() && parts.version == Version::HTTP_11) {
            return Some(|log| plain(400, "Bad Request\n", log));
        }
    }
    None
}

fn apply(resp: &mut Response<RespBody>, status: u16, headers: crate::response::Headers) {
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = resp.headers_mut();
    map.reserve(headers.len());
    for (k, v) in headers {
        map.append(k, v);
    }
}
