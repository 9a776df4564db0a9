//! Typed errors. None of them carries key material or plaintext.

use std::path::PathBuf;

/// What is wrong with bytes read from the backing store (or with a key given by the caller).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    #[error("sealing key must be 32 bytes, got {got}")]
    KeyLength { got: usize },
    #[error("file header is {got} bytes, expected {want}")]
    HeaderLength { got: usize, want: usize },
    #[error("file header has unsupported version {got}")]
    HeaderVersion { got: u16 },
    #[error(
        "file header failed authentication (wrong key, tampered header or file moved on the host)"
    )]
    HeaderAuth,
    #[error("backing file length {got} is not a valid sealed-file length (truncated?)")]
    BackingLength { got: u64 },
    #[error("sealed block {block} has invalid length {got}")]
    BlockLength { block: u64, got: usize },
    #[error("sealed block {block} failed authentication (wrong key, tampered, moved or truncated)")]
    BlockAuth { block: u64 },
    #[error("file name is {got} bytes, the limit is {max}")]
    NameLength { got: usize, max: usize },
    #[error("stored file name is not valid base64url")]
    NameEncoding,
    #[error("stored file name failed authentication (wrong key, tampered or moved name)")]
    NameAuth,
    #[error("symbolic link target failed authentication")]
    LinkAuth,
    #[error("directory id file is {got} bytes, expected 44")]
    DirIdLength { got: usize },
    #[error("directory id failed authentication (wrong key or tampered store)")]
    DirIdAuth,
    #[error("encryption failed")]
    Seal,
    #[error("OS random source failed: {0}")]
    Random(String),
}

/// Errors of mounting, unmounting and wiping a sealed filesystem.
#[derive(Debug, thiserror::Error)]
pub enum SealFsError {
    #[error("cannot prepare backing directory {path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "backing directory {path} is not empty and has no sealfs directory id (not a sealfs store?)"
    )]
    NotAStore { path: PathBuf },
    #[error("backing directory {path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error("cannot mount sealfs on {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot unmount sealfs from {path}: {source}")]
    Unmount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wipe backing directory {path}: {source}")]
    Wipe {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Errors of the mount-namespace and tmpfs helpers.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("cannot create a private mount namespace: {source}")]
    Unshare { source: std::io::Error },
    #[error("cannot make mounts private in the new namespace: {source}")]
    Propagation { source: std::io::Error },
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount tmpfs of {size} bytes on {path}: {source}")]
    Tmpfs {
        path: PathBuf,
        size: u64,
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
}
