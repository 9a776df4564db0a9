//! Typed errors. None carries key material or app data.

use std::path::PathBuf;

/// What failed while entering, locking down or stopping the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `--size` out of range.
    #[error("enclave size must be between {min} and {max} MB, got {got} MB")]
    Size {
        /// The size asked for, in MB.
        got: u64,
        /// Smallest size accepted.
        min: u64,
        /// Largest size accepted.
        max: u64,
    },
    /// Entered too late: other threads exist.
    #[error(
        "the sandbox must be entered before any other thread exists, but this process has {threads} threads"
    )]
    NotSingleThreaded {
        /// How many threads the process has.
        threads: u64,
    },
    /// /proc/self/status has no thread count.
    #[error(
        "cannot tell how many threads this process has (no Threads: line in /proc/self/status): the sandbox needs /proc"
    )]
    ThreadCountUnknown,
    /// The state directory cannot be created or opened.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The state directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The app's `$HOME` could not be prepared, mounted or torn down.
    #[error("sealed $HOME: {0}")]
    Home(#[from] crate::home::HomeError),
    /// Namespaces or in-memory directories.
    #[error(transparent)]
    Ns(#[from] crate::ns::NsError),
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A mount could not be undone.
    #[error("cannot unmount {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A fallback directory could not be removed.
    #[error("cannot remove {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A path the runtime needs could not be kept visible.
    #[error("cannot keep {path} visible (read-only bind mount): {source}")]
    Keep {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `RLIMIT_DATA` could not be set.
    #[error("cannot set the memory rlimit to {bytes} bytes: {source}")]
    Rlimit {
        /// The limit.
        bytes: u64,
        /// The error.
        source: std::io::Error,
    },
    /// The per-app cgroup could not be released.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// The cgroup file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The seccomp filter could not be compiled.
    #[error("cannot build the seccomp filter: {0}")]
    SeccompBuild(seccompiler::BackendError),
    /// The seccomp filter could not be installed.
    #[error("cannot install the seccomp filter on all threads: {0}")]
    SeccompInstall(seccompiler::Error),
}
