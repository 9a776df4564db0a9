//! HTTP/1.1 + HTTP/2 + TLS server for WSGI (PEP 3333) and ASGI 3 apps, embedding CPython.
//!
//! One process, no fork: hyper/tokio do the I/O, a small pool of Python threads that stay attached
//! to the interpreter run the app. The enclave runtime builds a [`ServerConfig`] and calls
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
    Bind, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS, DEFAULT_THREADS, Interface, ServerConfig, Tls,
};
pub use error::Error;
pub use python::{check_libpython, initialize as initialize_python};
pub use sched::{batch_current_thread, runtime};
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
}
