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

mod asgi;
mod config;
mod error;
mod pool;
mod python;
mod request;
mod response;
mod server;
mod tls;
mod wsgi;

pub use config::{Bind, DEFAULT_MAX_BODY, DEFAULT_THREADS, Interface, ServerConfig, Tls};
pub use error::Error;
pub use python::check_libpython;
pub use server::{Server, serve};
