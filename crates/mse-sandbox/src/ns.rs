//! Where the app's directories live: a private mount namespace (the seeds' real paths), else a
//! user namespace owning a mount namespace (per-app directories, still in memory and invisible to
//! the host), else plain per-app directories on the host. And the in-memory directories
//! themselves (tmpfs mounts).

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

use crate::error::SandboxError;

/// How the app's directories are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// A private mount namespace: the seeds' real paths (`/root`, `/tmp`, `/mse-app`, `/key`).
    PrivateNamespace,
    /// No privilege for a mount namespace of our own, but a user namespace owning one:
    /// per-app directories under the state directory, with `$TMP_PATH`, `$MODULE_PATH` and
    /// `$KEY_PATH` in memory (tmpfs) and every mount invisible to the host.
    UserNamespace {
        /// Why no private mount namespace could be created.
        reason: String,
    },
    /// No namespace at all: plain per-app directories on the host.
    PlainDirectories {
        /// Why neither kind of namespace could be created.
        reason: String,
    },
}

impl Isolation {
    /// Whether the app's directories are tmpfs mounts (else plain host directories).
    pub fn in_memory(&self) -> bool {
        !matches!(self, Self::PlainDirectories { .. })
    }
}

/// What failed while isolating or mounting the in-memory directories.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// unshare(CLONE_NEWNS) failed (no CAP_SYS_ADMIN).
    #[error("cannot create a private mount namespace: {source}")]
    Unshare {
        /// The system call's error.
        source: std::io::Error,
    },
    /// Making every mount private in the new namespace failed.
    #[error("cannot make mounts private in the new namespace: {source}")]
    Propagation {
        /// The system call's error.
        source: std::io::Error,
    },
    /// A user namespace was created but could not be set up (no way back from there).
    #[error("user namespace: cannot write {value:?} to {file}: {source}")]
    IdMap {
        /// The /proc file written.
        file: &'static str,
        /// What was written.
        value: String,
        /// The write's error.
        source: std::io::Error,
    },
    /// A mount point could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// mount(2) of a tmpfs failed.
    #[error("cannot mount tmpfs of {size} bytes on {path}: {source}")]
    Tmpfs {
        /// The mount point.
        path: PathBuf,
        /// The requested size.
        size: u64,
        /// The system call's error.
        source: std::io::Error,
    },
}

/// Size of `$TMP_PATH` for an app given `memory_bytes`: a quarter of it (the seeds' promise).
pub fn tmp_size_for_memory(memory_bytes: u64) -> u64 {
    memory_bytes / 4
}

/// Enters a private mount namespace (mount events do not propagate to or from the host).
/// Must run while the process has a single thread.
pub fn enter_private_mount_namespace() -> Result<(), NsError> {
    // SAFETY: CLONE_NEWNS only changes this thread's mount namespace (and implies CLONE_FS, which
    // unshares cwd/root/umask). The caller runs this before other threads exist, so no other
    // thread observes a different filesystem view than this one.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| NsError::Unshare { source: e.into() })?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| NsError::Propagation { source: e.into() })
}

/// Mounts a tmpfs of `size_bytes` on `path` (created if missing, mode 0700 on the host).
/// Writes beyond the size get ENOSPC.
pub fn mount_tmpfs(path: &Path, size_bytes: u64, mode: u32) -> Result<(), NsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| NsError::CreateDir {
            path: path.to_path_buf(),
            source,
        })?;
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

/// Enters the best isolation available. Must run while the process has a single thread.
pub fn isolate() -> Result<Isolation, SandboxError> {
    let reason = match enter_private_mount_namespace() {
        Ok(()) => return Ok(Isolation::PrivateNamespace),
        Err(e) => e.to_string(),
    };
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // SAFETY: the caller runs this while the process has a single thread (unshare of a user
    // namespace fails otherwise, and no other thread may observe credentials changing).
    if let Err(e) =
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }
    {
        let reason = format!("{reason}; cannot create a user namespace either: {e}");
        tracing::warn!(
            "sandbox: no namespace privileges ({reason}): the app's directories fall back to \
             plain per-app directories (not in memory, not size-limited, visible to the host)"
        );
        return Ok(Isolation::PlainDirectories { reason });
    }
    // Past this point there is no way back: a failure is fatal, not a fallback. The identity
    // mapping keeps the app's uid and gid what they were outside.
    let write = |file: &'static str, value: String| {
        fs::write(file, &value).map_err(|source| NsError::IdMap {
            file,
            value,
            source,
        })
    };
    write("/proc/self/setgroups", "deny".to_string())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| NsError::Propagation { source: e.into() })?;
    Ok(Isolation::UserNamespace { reason })
}
