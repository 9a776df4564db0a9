//! Development binary: mount a sealed filesystem from the command line (benchmarks, manual
//! checks) and exercise the namespace/tmpfs helpers in a fresh single-threaded process.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mse_sealfs::ns::{
    Isolation, isolate, prepare_memory_dir, release_memory_dir, tmp_size_for_memory,
};
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
    /// Enter a private mount namespace, mount DIR as a tmpfs of memory/4, fill it until it is
    /// full, report, and remove it. Must run as a fresh process (no other threads).
    MemdirCheck {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        memory: u64,
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

fn memdir_check(dir: &Path, memory: u64) -> Result<(), String> {
    let isolation = isolate();
    let size = tmp_size_for_memory(memory);
    prepare_memory_dir(&isolation, dir, size, 0o1777).map_err(|e| e.to_string())?;
    let mode = match &isolation {
        Isolation::PrivateNamespace => "namespace",
        Isolation::PlainDirectories { .. } => "plain",
    };
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| e.to_string())?
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap_or("")));
    let mut written: u64 = 0;
    let mut error = "none".to_string();
    if matches!(isolation, Isolation::PrivateNamespace) {
        let mut f = std::fs::File::create(dir.join("fill")).map_err(|e| e.to_string())?;
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
    }
    println!("isolation={mode} size={size} mounted={mounted} written={written} error={error}");
    release_memory_dir(&isolation, dir).map_err(|e| e.to_string())
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
        Cmd::MemdirCheck { dir, memory } => memdir_check(&dir, memory),
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
