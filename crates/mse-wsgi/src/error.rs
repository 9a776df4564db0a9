//! Typed errors of the server library.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What failed while setting up or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "libpython mismatch: loaded {loaded}, but mse-wsgi was built against {expected} (set an rpath to the build interpreter's lib directory)"
    )]
    LibpythonMismatch { loaded: String, expected: String },
    #[error("virtualenv {path}: {reason}")]
    Venv { path: PathBuf, reason: String },
    #[error(
        "the Python interpreter is already initialised with venv {existing:?}, cannot switch to {requested:?}"
    )]
    AlreadyInitialised {
        existing: Option<PathBuf>,
        requested: Option<PathBuf>,
    },
    #[error("Python initialisation failed: {0}")]
    PythonInit(String),
    #[error("startup code failed: {0}")]
    StartupCode(String),
    #[error("invalid application spec {0:?}: expected module:variable")]
    AppSpec(String),
    #[error("application directory {path}: {reason}")]
    AppDir { path: PathBuf, reason: String },
    #[error("cannot load application {spec}: {reason}")]
    AppImport { spec: String, reason: String },
    #[error("Python helper failed: {0}")]
    Helper(String),
    #[error("ASGI lifespan startup failed: {0}")]
    LifespanStartup(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("TLS {what} file {path}: {reason}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("thread count must be between 1 and 256, got {0}")]
    Threads(usize),
    #[error("cannot start Python thread: {0}")]
    Thread(std::io::Error),
}
