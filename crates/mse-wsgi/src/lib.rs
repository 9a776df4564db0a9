//! HTTP/1.1 + HTTP/2 + TLS server for WSGI (PEP 3333) and ASGI 3 apps, embedding CPython.
//!
//! One process, no fork: hyper/tokio do the I/O; a WSGI app runs on a small pool of Python threads
//! that stay attached to the interpreter, an ASGI app on one event-loop thread (uvloop when the
//! app's venv has it) that takes requests straight from the I/O threads. The enclave runtime builds a [`ServerConfig`] and calls
//! [`Server::new`] then [`Server::serve`] with a shutdown future.
//!
//! The libpython loaded at run time must be the one pyo3 built against: this crate's build script
//! sets an rpath for its own binaries and tests; a dependent binary adds the same rpath from its
//! build script with `DEP_MSE_WSGI_PYTHON_LIBDIR`, and [`check_libpython`] (run by `Server::new`)
//! refuses a mismatch with a clear error instead of running on the wrong library.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mse_wsgi::{Bind, Server, ServerConfig, Tls};
//!
//! # fn demo(tls: Arc<rustls::ServerConfig>) -> Result<(), mse_wsgi::Error> {
//! let listener = std::net::TcpListener::bind("0.0.0.0:443").expect("bind");
//! let config = ServerConfig::new(Bind::Listener(listener), "app:app")
//!     .app_dir("/mse-app")
//!     .venv(Some("/mse-app/.venv".into()))
//!     .tls(Tls::Config(tls));
//! // Python is initialised (once per process) and the app imported here, before serving.
//! let server = Server::new(config)?;
//! let runtime = mse_wsgi::runtime(false).expect("runtime");
//! runtime.block_on(server.serve(async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }))
//! # }
//! ```

mod asgi;
mod config;
mod conn_io;
mod deadline;
mod error;
mod pool;
mod python;
mod request;
mod response;
mod sched;
mod server;
mod tls;
mod wsgi;

pub use config::{
    Bind, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS, DEFAULT_THREADS,
    Interface, ServerConfig, Tls,
};
pub use error::Error;
pub use python::{check_libpython, initialize as initialize_python};
pub use sched::{batch_current_thread, park_hook, runtime};
pub use server::{Server, serve};

/// Entry points for `fuzz/fuzz_targets/wsgi_request.rs`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the Rust-side request → environ/scope conversions (Host / :authority parsing, CGI
    /// header names, PATH_INFO decoding) on arbitrary bytes; must never panic.
    pub fn request_parts(host: &[u8], header_name: &[u8], target: &[u8]) {
        let mut headers = hyper::HeaderMap::new();
        if let Ok(v) = hyper::header::HeaderValue::from_bytes(host) {
            headers.insert(hyper::header::HOST, v);
        }
        let uri = hyper::Uri::try_from(target).unwrap_or_default();
        let info = crate::request::RequestInfo {
            method: hyper::Method::GET,
            uri,
            version: hyper::Version::HTTP_11,
            headers,
            remote: ([127, 0, 0, 1], 1).into(),
            local: ([127, 0, 0, 1], 2).into(),
            tls: false,
            conn: Default::default(),
        };
        let _ = info.server_name_port();
        let _ = info.protocol();
        if let Ok(name) = hyper::header::HeaderName::from_bytes(header_name) {
            let _ = crate::wsgi::cgi_header_name(&name);
        }
        let decoded: Vec<u8> =
            percent_encoding::percent_decode(info.uri.path().as_bytes()).collect();
        let _ = crate::wsgi::latin1_string(&decoded);
    }

    /// Runs the HTTP/1 guard (`conn_io`) over `data` split at `split`.
    pub fn h1_guard(data: &mut [u8], split: usize) {
        crate::conn_io::guard_scan(data, split);
    }

    /// Serves `data` as one HTTP/1 connection (hyper behind the guard) with a service that applies
    /// the server's own checks (Host, CONNECT, chunked read-ahead, forbidden trailers) and reads
    /// every body; returns what the server wrote. Must never panic or hang.
    pub fn http1_exchange(data: &[u8]) -> Vec<u8> {
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        thread_local! {
            static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
        }
        let svc =
            hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let (parts, mut body) = req.into_parts();
                if let Some(refusal) = crate::server::refuse(&parts) {
                    return Ok::<_, std::convert::Infallible>(refusal(None));
                }
                let early = crate::request::prefetch(&mut body, 1024).await;
                let mut status = if early.failed() { 400 } else { 200 };
                while status == 200 {
                    match body.frame().await {
                        None => break,
                        Some(Err(_)) => status = 400,
                        Some(Ok(f)) => {
                            if f.trailers_ref()
                                .and_then(crate::request::forbidden_trailer)
                                .is_some()
                            {
                                status = 400;
                            }
                        }
                    }
                }
                let text = if status == 200 { "ok" } else { "bad" };
                Ok(crate::server::plain(status, text, None))
            });
        RT.with(|rt| {
            rt.block_on(async {
                let (mut client, server) = tokio::io::duplex(1 << 16);
                let io = hyper_util::rt::TokioIo::new(crate::conn_io::ConnIo::new(
                    server,
                    bytes::Bytes::new(),
                    true,
                ));
                let conn = hyper::server::conn::http1::Builder::new()
                    .half_close(true)
                    .serve_connection(io, svc);
                let (mut rx, mut tx) = tokio::io::split(&mut client);
                let mut out = Vec::new();
                let write = async {
                    let _ = tx.write_all(data).await;
                    let _ = tx.shutdown().await;
                };
                let read = rx.read_to_end(&mut out);
                let (_, (), _) = tokio::join!(conn, write, read);
                out
            })
        })
    }
}
