//! Test harness for the namespace and tmpfs helpers, which must run in a fresh single-threaded
//! process: enters the best isolation (as the sandbox does), mounts `--dir` as a tmpfs of a
//! quarter of `--memory` when that isolation is in memory (else makes a plain directory), fills
//! it until it is full, reports one line, and removes it.
//!
//! Output: `isolation=<namespace|user-namespace|plain> size=N mounted=BOOL written=N error=E`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mse_sandbox::{Isolation, SandboxError, isolate, mount_tmpfs, tmp_size_for_memory};

#[derive(Parser)]
#[command(about = "Check the sandbox's in-memory directory helpers (test harness)")]
struct Args {
    /// Directory to mount (created).
    #[arg(long)]
    dir: PathBuf,
    /// Memory of the app, in bytes: the tmpfs gets a quarter.
    #[arg(long)]
    memory: u64,
}

type BoxError = Box<dyn std::error::Error>;

fn check(dir: &Path, memory: u64) -> Result<(), BoxError> {
    let isolation = isolate()?;
    let size = tmp_size_for_memory(memory);
    let mode = match &isolation {
        Isolation::PrivateNamespace => "namespace",
        Isolation::UserNamespace { .. } => "user-namespace",
        Isolation::PlainDirectories { .. } => "plain",
    };
    if isolation.in_memory() {
        mount_tmpfs(dir, size, 0o1777).map_err(SandboxError::from)?;
    } else {
        std::fs::create_dir_all(dir)?;
    }
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap_or("")));
    let mut written: u64 = 0;
    let mut error = "none".to_string();
    if isolation.in_memory() {
        let mut f = std::fs::File::create(dir.join("fill"))?;
        let chunk = vec![0xA5u8; 64 * 1024];
        // Bounded: at most size + 1 MiB worth of chunks.
        for _ in 0..(size / chunk.len() as u64 + 16) {
            match f.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) => {
                    error = if e.raw_os_error() == Some(libc::ENOSPC) {
                        "ENOSPC".into()
                    } else {
                        e.to_string()
                    };
                    break;
                }
            }
        }
        rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH)?;
    }
    println!("isolation={mode} size={size} mounted={mounted} written={written} error={error}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    match check(&args.dir, args.memory) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mse-sandbox-memdir: error: {e}");
            ExitCode::FAILURE
        }
    }
}
