//! Typed errors. None carries key material or app data.

use std::path::PathBuf;

/// What failed while entering, locking down or stopping the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("enclave size must be between {min} and {max} MB, got {got} MB")]
    Size { got: u64, min: u64, max: u64 },
    #[error(
        "the sandbox must be entered before any other thread exists, but this process has {threads} threads"
    )]
    NotSingleThreaded { threads: u64 },
    #[error(
        "cannot tell how many threads this process has (no Threads: line in /proc/self/status): the sandbox needs /proc"
    )]
    ThreadCountUnknown,
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sealed $HOME: {0}")]
    SealFs(#[from] mse_sealfs::SealFsError),
    #[error("in-memory directory: {0}")]
    Ns(#[from] mse_sealfs::NsError),
    #[error("user namespace: {0}")]
    UserNamespace(String),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot unmount {path}: {source}")]
    Unmount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot keep {path} visible (read-only bind mount): {source}")]
    Keep {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set the memory rlimit to {bytes} bytes: {source}")]
    Rlimit { bytes: u64, source: std::io::Error },
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the seccomp filter: {0}")]
    SeccompBuild(String),
    #[error("cannot install the seccomp filter on all threads: {0}")]
    SeccompInstall(String),
}
