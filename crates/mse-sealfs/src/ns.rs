//! The private mount namespace and the in-memory directories ($TMP_PATH, $MODULE_PATH).
//!
//! Call [`isolate`] first thing in `main`, before any other thread exists: `unshare(CLONE_NEWNS)`
//! only moves the calling thread. Without the privilege to create a mount namespace, the runtime
//! falls back to plain per-app directories and logs that it did.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::NsError;

/// Where the app's directories live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// A private mount namespace: tmpfs and FUSE mounts are invisible to the host.
    PrivateNamespace,
    /// No namespace privileges: plain directories on the host filesystem.
    PlainDirectories { reason: String },
}

/// Size of $TMP_PATH for an app given `memory_bytes`: a quarter of it (the seeds' promise).
pub fn tmp_size_for_memory(memory_bytes: u64) -> u64 {
    memory_bytes / 4
}

/// Enters a private mount namespace (mount events do not propagate to or from the host).
pub fn enter_private_mount_namespace() -> Result<(), NsError> {
    // SAFETY: CLONE_NEWNS only changes this thread's mount namespace (and implies CLONE_FS, which
    // unshares cwd/root/umask). The caller runs this before other threads exist, so no other
    // thread observes a different filesystem view than this one.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| NsError::Unshare { source: e.into() })?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| NsError::Propagation { source: e.into() })
}

/// Tries to enter a private mount namespace; on failure returns the fallback and logs it.
pub fn isolate() -> Isolation {
    match enter_private_mount_namespace() {
        Ok(()) => Isolation::PrivateNamespace,
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(
                "no mount-namespace privileges ({reason}): $TMP_PATH and $MODULE_PATH fall back \
                 to plain per-app directories (not in memory, not size-limited) and mounts are \
                 visible to the host"
            );
            Isolation::PlainDirectories { reason }
        }
    }
}

fn create_dir(path: &Path, mode: u32) -> Result<(), NsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| NsError::CreateDir {
            path: path.to_path_buf(),
            source,
        })
}

/// Mounts a tmpfs of `size_bytes` on `path` (created if missing). Writes beyond get ENOSPC.
pub fn mount_tmpfs(path: &Path, size_bytes: u64, mode: u32) -> Result<(), NsError> {
    create_dir(path, 0o700)?;
    let data = format!("size={},mode={:o}", size_bytes.max(4096), mode & 0o7777);
    let data = std::ffi::CString::new(data).expect("no NUL in formatted options");
    rustix::mount::mount(
        "tmpfs",
        path,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| NsError::Tmpfs {
        path: path.to_path_buf(),
        size: size_bytes,
        source: e.into(),
    })
}

/// Prepares an in-memory directory: a tmpfs in the namespace, else a plain directory.
pub fn prepare_memory_dir(
    isolation: &Isolation,
    path: &Path,
    size_bytes: u64,
    mode: u32,
) -> Result<(), NsError> {
    match isolation {
        Isolation::PrivateNamespace => mount_tmpfs(path, size_bytes, mode),
        Isolation::PlainDirectories { .. } => create_dir(path, mode & 0o7777),
    }
}

/// Removes an in-memory directory at stop: unmounts the tmpfs (its content is gone with it),
/// or deletes the plain directory's content.
pub fn release_memory_dir(isolation: &Isolation, path: &Path) -> Result<(), NsError> {
    if *isolation == Isolation::PrivateNamespace {
        rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(|e| NsError::Unmount {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NsError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}
