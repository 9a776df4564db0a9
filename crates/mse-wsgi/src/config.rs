//! Server configuration, built by the enclave runtime or by `mse-serve`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default maximum request body: 2 GiB, as the original.
pub const DEFAULT_MAX_BODY: u64 = 2 * 1024 * 1024 * 1024;
/// Default cap on simultaneous connections (accepting pauses at the cap).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default number of Python threads: enough to overlap I/O waits, few enough to avoid GIL thrash.
pub const DEFAULT_THREADS: usize = 4;
/// How long a client gets to send a request head (as hyper's default).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to listen.
#[derive(Debug)]
pub enum Bind {
    Addr(SocketAddr),
    /// An already-bound listener (e.g. handed over by the enclave runtime).
    Listener(TcpListener),
}

/// TLS settings.
#[derive(Clone, Default)]
pub enum Tls {
    #[default]
    None,
    /// PEM certificate chain and private key files.
    Pem { cert: PathBuf, key: PathBuf },
    /// A caller-built rustls config (e.g. with the RA-TLS certificate). If it sets no ALPN
    /// protocols, `h2` and `http/1.1` are offered.
    Config(Arc<rustls::ServerConfig>),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tls::None => f.write_str("None"),
            Tls::Pem { cert, key } => write!(f, "Pem {{ cert: {cert:?}, key: {key:?} }}"),
            Tls::Config(_) => f.write_str("Config(..)"),
        }
    }
}

/// Which calling convention the app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// Detect as Hypercorn does: a coroutine function (or object whose `__call__` is one) is ASGI.
    #[default]
    Auto,
    Wsgi,
    Asgi,
}

/// A calling convention [`Interface`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interface {0:?} (auto, wsgi, asgi)")]
pub struct UnknownInterface(pub String);

impl std::str::FromStr for Interface {
    type Err = UnknownInterface;
    fn from_str(s: &str) -> Result<Self, UnknownInterface> {
        match s {
            "auto" => Ok(Self::Auto),
            "wsgi" => Ok(Self::Wsgi),
            "asgi" => Ok(Self::Asgi),
            other => Err(UnknownInterface(other.to_owned())),
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug)]
pub struct ServerConfig {
    pub bind: Bind,
    /// `module:variable`.
    pub app: String,
    /// Directory put first on `sys.path` (the decrypted code, `$MODULE_PATH`).
    pub app_dir: PathBuf,
    /// The app's virtualenv; None = the interpreter mse-wsgi was built against.
    pub venv: Option<PathBuf>,
    pub threads: usize,
    pub tls: Tls,
    pub max_body: u64,
    /// Simultaneous connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    pub interface: Interface,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// How long an HTTP/1 connection may take to send a request head, counted from its opening
    /// or the end of its previous response (idle keep-alive included); then it is closed.
    pub header_timeout: Duration,
    /// Python source run once after the interpreter starts and before the app is imported
    /// (the enclave's audit hook), in its own namespace.
    pub startup_code: Option<String>,
}

impl ServerConfig {
    pub fn new(bind: Bind, app: impl Into<String>) -> Self {
        Self {
            bind,
            app: app.into(),
            app_dir: PathBuf::from("."),
            venv: None,
            threads: DEFAULT_THREADS,
            tls: Tls::None,
            max_body: DEFAULT_MAX_BODY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            interface: Interface::Auto,
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            startup_code: None,
        }
    }
    pub fn app_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.app_dir = dir.into();
        self
    }
    pub fn venv(mut self, venv: Option<PathBuf>) -> Self {
        self.venv = venv;
        self
    }
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    pub fn interface(mut self, interface: Interface) -> Self {
        self.interface = interface;
        self
    }
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }
    pub fn header_timeout(mut self, t: Duration) -> Self {
        self.header_timeout = t;
        self
    }
    pub fn startup_code(mut self, code: Option<String>) -> Self {
        self.startup_code = code;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_interface_is_refused_in_one_line() {
        assert_eq!("asgi".parse::<Interface>(), Ok(Interface::Asgi));
        assert_eq!(
            "cgi".parse::<Interface>().unwrap_err().to_string(),
            "unknown interface \"cgi\" (auto, wsgi, asgi)"
        );
    }
}
