//! Encrypted, integrity-protected FUSE filesystem for the app's `$HOME`. (The namespace and
//! tmpfs helpers for the other directories are in mse-sandbox, which mounts this filesystem
//! through its `HomeStorage` trait.)
//!
//! The app is unmodified Python (plus C extensions such as sqlite3), so sealing happens below the
//! VFS: [`mount`] serves a FUSE filesystem from threads of the calling process, storing every file
//! as an encrypted and authenticated file in a backing directory on the host.
//!
//! # Backing format (version 1)
//!
//! * Keys: the caller's 32-byte [`SealKey`] (the runtime derives it as HKDF(platform sealing key,
//!   measurement)) is expanded with HKDF-SHA256 into an AES-256-GCM content key and an AES-256-SIV
//!   name key.
//! * File = header ‖ blocks. Header (46 bytes) = version (u16 BE) ‖ random 16-byte file id ‖
//!   nonce ‖ GCM tag over the version, the file id and the file's binding = parent directory id ‖
//!   plaintext name (not stored; a rename re-seals the header for the new name). Each 4 KiB plaintext block is stored as
//!   random 12-byte nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag (4 124 bytes for a full block),
//!   with associated data = file id ‖ block number (u64 BE) ‖ "is last block" flag.
//!   The plaintext size follows from the backing size; holes are written as sealed zero blocks.
//! * Names: base64url(AES-SIV(name)) with the directory's random 16-byte id as SIV nonce; the
//!   id is stored, authenticated by a GCM tag, in `.mse-sealfs.dirid` in each backing directory.
//!   Names are limited to [`MAX_NAME_LEN`] (255) bytes, as on ext4 (ENAMETOOLONG beyond). An
//!   encrypted name longer than the host's 255 bytes (a plaintext name over 175 bytes) is stored
//!   under the alias `.mse-sealfs.long.` ‖ base64url(SHA-256(encrypted name)), and the encrypted
//!   name in the side file `<alias>.name` next to it (written before the object is created,
//!   removed after it is removed; an orphan side file is ignored and goes with its directory).
//!   A listing checks that the side file hashes to its alias and decrypts it like a short name.
//! * Paths: the plaintext path of an object may be as long as the kernel allows (PATH_MAX), and
//!   its backing path longer still (encrypted names are about 4/3 of the plaintext's): backing
//!   objects are reached relative to the backing root's descriptor when the path is short, else
//!   through descriptors of the directories on the way, a few KiB of path at a time.
//! * Symbolic link targets (up to PATH_MAX, as on ext4): base64url(nonce ‖ AES-GCM(target)),
//!   stored as the host link's target when that fits the host's 4 095 bytes (targets of up to
//!   3 043 bytes), else in a file of `.mse-sealfs.links/` in the backing root that the host
//!   link names (`.mse-sealfs.link.<random id>`), removed with the link. Hard links (EPERM), extended
//!   attributes (EOPNOTSUPP) and device/fifo/socket nodes (EPERM) are not supported: they would
//!   have to be stored in clear or are meaningless here.
//!
//! # What is detected (the read or lookup fails with EIO, never returns forged plaintext)
//!
//! * A wrong key: the root directory id fails authentication, so every lookup, listing, open and
//!   create fails with EIO ([`check_key`] reports it up front); every header, block, name and link
//!   target would fail authentication too.
//! * Any modified byte of a header, block, name or link target.
//! * Blocks swapped within a file, or copied from another file (file id and block number in AAD).
//! * Truncation: inside a block (the cut block fails), and at a block boundary (the new last block
//!   was not sealed as "last"); appended garbage likewise.
//! * A zeroed block (no sparse "hole" is ever trusted).
//! * A name moved to another directory (the directory id differs).
//! * Two files swapping names, or a file's sealed content put under another file's (valid)
//!   name, in the same or another directory (the header is bound to directory id and name).
//!
//! # What is NOT detected (documented limits of a per-block design)
//!
//! * Rollback of one block, or of a whole file, to an older version sealed with the same key
//!   (no Merkle tree or version counter; that needs trusted monotonic state).
//! * Two directories swapping names, or a whole directory swapped for an older copy (a
//!   directory's id is not bound to its name); a file deleted by the host (it just disappears).
//! * Leaked to the host: file sizes (to the byte), name lengths, the directory structure, times,
//!   modes and access patterns.
//!
//! In this product `$HOME` lives "until stop" and the backing directory is wiped at stop
//! ([`MountedSealFs::unmount_and_wipe`]), which bounds rollback to the life of one app instance.
//!
//! # Use from the runtime
//!
//! 1. [`mount`] the sealed `$HOME` (before any seccomp filter: without `CAP_SYS_ADMIN` the mount
//!    runs the setuid `fusermount3`). [`check_key`] gives a clear error up front for a store
//!    sealed under another key.
//! 2. At stop: [`MountedSealFs::unmount_and_wipe`] (or [`MountedSealFs::unmount`] then
//!    [`wipe_backing`]).
//!
//! mse-sandbox does this (its `SealFsHome`), inside the private mount namespace it enters.
//!
//! # Performance choices
//!
//! 1 MiB FUSE writes and (via the mount's BDI) 1 MiB readahead. AES-256-GCM is `ring`'s (its
//! VAES/VPCLMULQDQ code when the CPU has it: ~3.5x RustCrypto's AES-NI path on 4 KiB blocks).
//! A write seals all its blocks on the request's own thread (handing parts to other threads
//! cost more than it saved) into a reused buffer and issues one `pwrite`; full
//! blocks are never read back (no read-modify-write), only a partial first/last block is.
//! A write of 128 KiB or more is acknowledged once it is ordered and its quota reserved; a
//! failure after the acknowledgement is reported at the next write, flush (close) or fsync of
//! the file, as for page-cache write-back. Such a write at the end of the file (a stream, or
//! O_APPEND) is pipelined (`pipe.rs`): ordered under the file lock in microseconds (size,
//! quota, a ticket), acknowledged, sealed without any lock, and written to the backing file
//! in ticket order by whichever FUSE thread is free, so the application's next write does not
//! wait for the previous `pwrite`: one thread receives and seals while the other copies into
//! the backing file's page cache (the dominant cost, as for tmpfs itself). Every other access
//! to the file (read, stat, truncate, fsync, close, other writes) first waits for the appends
//! in flight to land, so it sees exactly what was acknowledged. The plaintext of each file's
//! last block is cached, so appends never read it back to re-seal it as "not last". Other
//! large writes seal their state-independent blocks before taking the file lock. Metadata is
//! cached per inode with no file descriptor held (an open file holds two: one for the
//! pipeline). Write-only opens bypass the FUSE page cache (FOPEN_DIRECT_IO: one kernel copy less
//! per write). Kernel write-back caching is available ([`SealFsOptions::writeback_cache`]) but
//! off by default so that ENOSPC and EIO reach `write()` itself.
//!
//! # Quota
//!
//! The plaintext size of all files is accounted (default [`DEFAULT_QUOTA_BYTES`]); a write or
//! truncate that would exceed it fails with ENOSPC; one beyond [`MAX_FILE_SIZE`] with EFBIG.

#![warn(missing_docs)]

mod crypto;
mod error;
mod file;
mod fs;
mod meta;
mod mount;
mod ops;
mod pipe;
mod tree;

pub use crypto::{
    BLOCK_SIZE, CIPHER_BLOCK_SIZE, Ciphers, HEADER_LEN, MAX_FILE_SIZE, MAX_NAME_LEN, SealKey,
    backing_size, header_binding, plain_size,
};
pub use error::{FormatError, SealFsError};
pub use file::{FileError, Presealed, SealedFile};
pub use fs::DIR_ID_FILE;
#[doc(hidden)] // for fuzz/ (fuzz_targets/sealfs_read.rs)
pub use fs::read_dir_id_file;
pub use mount::{
    DEFAULT_QUOTA_BYTES, MountedSealFs, SealFsOptions, check_key, mount, wipe_backing,
};
