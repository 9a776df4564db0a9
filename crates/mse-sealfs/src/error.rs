//! Typed errors. None of them carries key material or plaintext.

use std::path::PathBuf;

/// What is wrong with bytes read from the backing store (or with a key given by the caller).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// A key of the wrong length.
    #[error("sealing key must be 32 bytes, got {got}")]
    KeyLength {
        /// Its length.
        got: usize,
    },
    /// A file header of the wrong length.
    #[error("file header is {got} bytes, expected {want}")]
    HeaderLength {
        /// Its length.
        got: usize,
        /// The header length.
        want: usize,
    },
    /// A file header of another format version.
    #[error("file header has unsupported version {got}")]
    HeaderVersion {
        /// The version found.
        got: u16,
    },
    /// A file header that does not authenticate for this file's name and directory.
    #[error(
        "file header failed authentication (wrong key, tampered header or file moved on the host)"
    )]
    HeaderAuth,
    /// A backing file length no sealed file has.
    #[error("backing file length {got} is not a valid sealed-file length (truncated?)")]
    BackingLength {
        /// The backing length.
        got: u64,
    },
    /// A sealed block of an impossible length.
    #[error("sealed block {block} has invalid length {got}")]
    BlockLength {
        /// The block number.
        block: u64,
        /// Its length.
        got: usize,
    },
    /// A sealed block that does not authenticate.
    #[error("sealed block {block} failed authentication (wrong key, tampered, moved or truncated)")]
    BlockAuth {
        /// The block number.
        block: u64,
    },
    /// A name that is empty or longer than [`crate::MAX_NAME_LEN`] (ENAMETOOLONG).
    #[error("file name is {got} bytes, the limit is {max}")]
    NameLength {
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A stored name that is not base64url or too long.
    #[error("stored file name is not valid base64url")]
    NameEncoding,
    /// A stored name that does not authenticate in its directory.
    #[error("stored file name failed authentication (wrong key, tampered or moved name)")]
    NameAuth,
    /// A stored link target that does not authenticate.
    #[error("symbolic link target failed authentication")]
    LinkAuth,
    /// A directory id file of the wrong length.
    #[error("directory id file is {got} bytes, expected 44")]
    DirIdLength {
        /// Its length.
        got: usize,
    },
    /// A directory id that does not authenticate (at the root: a wrong key).
    #[error("directory id failed authentication (wrong key or tampered store)")]
    DirIdAuth,
    /// Encryption itself failed.
    #[error("encryption failed")]
    Seal,
    /// The operating system's random source failed.
    #[error("OS random source failed: {0}")]
    Random(String),
}

/// Errors of mounting, unmounting and wiping a sealed filesystem.
#[derive(Debug, thiserror::Error)]
pub enum SealFsError {
    /// The backing directory cannot be created or read.
    #[error("cannot prepare backing directory {path}: {source}")]
    Backing {
        /// The backing directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The backing directory holds something that is not a sealed store.
    #[error(
        "backing directory {path} is not empty and has no sealfs directory id (not a sealfs store?)"
    )]
    NotAStore {
        /// The backing directory.
        path: PathBuf,
    },
    /// The store does not open (a wrong key, or tampering).
    #[error("backing directory {path}: {source}")]
    Format {
        /// The backing directory.
        path: PathBuf,
        /// What failed.
        source: FormatError,
    },
    /// Mounting failed.
    #[error("cannot mount sealfs on {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Unmounting failed.
    #[error("cannot unmount sealfs from {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Deleting the backing directory failed.
    #[error("cannot wipe backing directory {path}: {source}")]
    Wipe {
        /// The backing directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
