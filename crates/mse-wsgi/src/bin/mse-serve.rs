//! `mse-serve`: development server for benchmarks and tests.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use mse_wsgi::{Bind, Interface, Server, ServerConfig, Tls};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Serve a WSGI or ASGI app (module:variable) with mse-wsgi"
)]
struct Args {
    /// The application, as module:variable.
    app: String,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// Directory holding the app's module (put first on sys.path).
    #[arg(long, default_value = ".")]
    app_dir: PathBuf,
    /// The app's virtualenv [default: $VIRTUAL_ENV, else the build interpreter].
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Python threads running the app.
    #[arg(long, default_value_t = mse_wsgi::DEFAULT_THREADS)]
    threads: usize,
    /// PEM certificate chain (enables TLS with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Maximum request body in bytes.
    #[arg(long, default_value_t = mse_wsgi::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Simultaneous connections (more wait in the listen backlog).
    #[arg(long, default_value_t = mse_wsgi::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// auto, wsgi or asgi.
    #[arg(long, default_value = "auto")]
    interface: Interface,
    /// Seconds an HTTP/1 client gets to send a request head (from the connection's opening or
    /// its previous response: idle keep-alive connections close then too).
    #[arg(long, default_value = "30", value_parser = seconds)]
    header_timeout: std::time::Duration,
    /// Do not write the access log line per request.
    #[arg(long)]
    no_access_log: bool,
    /// Run the I/O threads under SCHED_BATCH: a busy Python thread finishes its time slice before
    /// they handle finished responses (fewer context switches when the server has its CPUs to
    /// itself; slower when other processes compete for them).
    #[arg(long)]
    batch_io: bool,
}

fn main() {
    let args = Args::parse();
    let default_filter = if args.no_access_log {
        "info,mse_wsgi::access=off"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    if let Err(e) = run(args) {
        eprintln!("mse-serve: error: {e}");
        std::process::exit(1);
    }
}

/// A positive number of seconds, fractions allowed.
fn seconds(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .and_then(|v| std::time::Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

fn run(args: Args) -> Result<(), mse_wsgi::Error> {
    let venv = args
        .venv
        .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Tls::Pem { cert, key },
        _ => Tls::None,
    };
    let config = ServerConfig::new(Bind::Addr(args.bind), args.app)
        .app_dir(args.app_dir)
        .venv(venv)
        .threads(args.threads)
        .tls(tls.clone())
        .max_body(args.max_body)
        .max_connections(args.max_connections)
        .header_timeout(args.header_timeout)
        .interface(args.interface);
    let server = Server::new(config)?;
    let scheme = if matches!(tls, Tls::None) {
        "http"
    } else {
        "https"
    };
    println!(
        "mse-serve listening on {scheme}://{} ({:?})",
        server.local_addr(),
        server.interface()
    );
    let runtime = mse_wsgi::runtime(args.batch_io).map_err(mse_wsgi::Error::Listener)?;
    runtime.block_on(server.serve(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    }))
}
