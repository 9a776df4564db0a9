//! Development binary: mount a sealed filesystem from the command line (benchmarks, manual
//! checks, POSIX suites).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mse_sealfs::{SealFsOptions, SealKey, mount};

#[derive(Parser)]
#[command(name = "mse-sealfs", about = "Sealed filesystem development tool")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount BACKING on MOUNTPOINT; unmounts when standard input reaches end of file.
    Mount {
        #[arg(long)]
        backing: PathBuf,
        #[arg(long)]
        mountpoint: PathBuf,
        /// File holding the 32-byte key (raw bytes, or 64 hex digits).
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long, default_value_t = mse_sealfs::DEFAULT_QUOTA_BYTES)]
        quota: u64,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Delete the backing directory after unmounting.
        #[arg(long)]
        wipe: bool,
        /// Enable kernel write-back caching.
        #[arg(long)]
        writeback_cache: bool,
        /// Let users other than the mounting one use the mount (FUSE `allow_other`; needs
        /// root): for multi-user POSIX suites such as pjdfstest.
        #[arg(long)]
        allow_other: bool,
    },
}

fn read_key(path: &Path) -> Result<SealKey, String> {
    let raw =
        std::fs::read(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let trimmed = raw.trim_ascii();
    if trimmed.len() == 64 && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let mut key = [0u8; 32];
        for (i, pair) in trimmed.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            key[i] = u8::from_str_radix(s, 16).map_err(|e| e.to_string())?;
        }
        return Ok(SealKey::from_bytes(key));
    }
    SealKey::from_slice(&raw).map_err(|e| format!("key file {}: {e}", path.display()))
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Mount {
            backing,
            mountpoint,
            key_file,
            quota,
            threads,
            wipe,
            writeback_cache,
            allow_other,
        } => {
            let key = read_key(&key_file)?;
            let opts = SealFsOptions {
                quota_bytes: quota,
                threads,
                writeback_cache,
                allow_other,
            };
            let mounted = mount(&backing, &mountpoint, &key, &opts).map_err(|e| e.to_string())?;
            println!("mounted {}", mountpoint.display());
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            if wipe {
                mounted.unmount_and_wipe()
            } else {
                mounted.unmount()
            }
            .map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mse-sealfs: {e}");
            ExitCode::FAILURE
        }
    }
}
