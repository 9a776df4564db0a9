//! Test harness: enters the sandbox, copies an app into `$MODULE_PATH` (standing in for the
//! configuration server's provisioning), locks down, and serves the app with mse-wsgi and the
//! audit hook until SIGTERM/SIGINT, then stops the sandbox.
//!
//! Prints `serving on http://ADDR` on stdout once ready and `stopped` after a clean stop.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use clap::Parser;
use mse_sandbox::{Sandbox, SandboxConfig};
use mse_wsgi::{Bind, Server, ServerConfig};

#[derive(Parser)]
#[command(about = "Serve a Python web app inside the mse sandbox (test harness)")]
struct Args {
    /// Enclave size in MiB.
    #[arg(long)]
    size: u64,
    /// Per-app state directory (sealed $HOME backing, fallback directories).
    #[arg(long)]
    state_dir: PathBuf,
    /// The app's source directory, copied into $MODULE_PATH.
    #[arg(long)]
    app_dir: PathBuf,
    /// `module:variable`.
    #[arg(long)]
    application: String,
    /// A secrets.json to put at $SECRETS_PATH.
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// The app's virtualenv.
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Sealing key of $HOME, 64 hex digits.
    #[arg(
        long,
        default_value = "0000000000000000000000000000000000000000000000000000000000000000"
    )]
    home_key: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn parse_key(hex: &str) -> Result<[u8; 32], BoxError> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("--home-key must be 64 hex digits, got {}", bytes.len()).into());
    }
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| "--home-key is not hex")?;
        key[i] = u8::from_str_radix(s, 16).map_err(|_| "--home-key is not hex")?;
    }
    Ok(key)
}

/// Reads a directory tree into memory (before `enter`: the mounts may hide its path).
fn read_tree(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            read_tree(&entry.path(), &rel, out)?;
        } else {
            out.push((rel, std::fs::read(entry.path())?));
        }
    }
    Ok(())
}

/// What the configuration server would provision: the code and the secrets.
struct Provision {
    files: Vec<(PathBuf, Vec<u8>)>,
    secrets: Option<Vec<u8>>,
}

fn write_provision(p: Provision, paths: &mse_sandbox::AppPaths) -> std::io::Result<()> {
    for (rel, bytes) in p.files {
        let target = paths.module_path.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, bytes)?;
    }
    if let Some(secrets) = p.secrets {
        std::fs::write(&paths.secrets_path, secrets)?;
    }
    Ok(())
}

fn run(args: Args, provision: Provision, sandbox: &Sandbox) -> Result<(), BoxError> {
    let paths = sandbox.paths();
    write_provision(provision, paths).map_err(|e| format!("cannot provision the app: {e}"))?;
    let listener =
        TcpListener::bind(&args.bind).map_err(|e| format!("cannot bind {}: {e}", args.bind))?;
    sandbox.lock_down()?;
    let config = ServerConfig::new(Bind::Listener(listener), args.application)
        .app_dir(paths.module_path.clone())
        .venv(args.venv.map(|v| sandbox.runtime_path(&v)))
        .threads(2)
        .startup_code(Some(Sandbox::python_startup_code().to_string()));
    let server = Server::new(config)?;
    let addr = server.local_addr();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        println!(
            "serving on http://{addr} (effective memory {} MiB)",
            sandbox.effective_memory_mb()
        );
        std::io::stdout().flush()?;
        server
            .serve(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .await?;
        Ok::<(), BoxError>(())
    })
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let result = (|| -> Result<(), BoxError> {
        let cfg = SandboxConfig {
            size_mb: args.size,
            home_key: parse_key(&args.home_key)?,
            state_dir: args.state_dir.clone(),
        };
        let mut files = Vec::new();
        read_tree(&args.app_dir, Path::new(""), &mut files)
            .map_err(|e| format!("cannot read {}: {e}", args.app_dir.display()))?;
        let secrets = match &args.secrets {
            Some(p) => {
                Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?)
            }
            None => None,
        };
        let keep: Vec<PathBuf> = args.venv.iter().cloned().collect();
        let sandbox = mse_sandbox::enter_with(&cfg, &keep)?;
        let served = run(args, Provision { files, secrets }, &sandbox);
        let stopped = sandbox.stop();
        served?;
        stopped?;
        println!("stopped");
        Ok(())
    })();
    if let Err(e) = result {
        // Every error's message already includes its causes (as mse-serve prints them).
        eprintln!("mse-sandbox-demo: error: {e}");
        std::process::exit(1);
    }
}
