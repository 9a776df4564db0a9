//! Where the app's directories live: a private mount namespace (the seeds' real paths), else a
//! user namespace owning a mount namespace (per-app directories, still in memory and invisible to
//! the host), else plain per-app directories on the host.

use std::fs;

use rustix::thread::UnshareFlags;

use crate::error::SandboxError;

/// How the app's directories are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// A private mount namespace: the seeds' real paths (`/root`, `/tmp`, `/mse-app`, `/key`).
    PrivateNamespace,
    /// No privilege for a mount namespace of our own (`reason`), but a user namespace owning
    /// one: per-app directories under the state directory, with `$TMP_PATH`, `$MODULE_PATH` and
    /// `$KEY_PATH` in memory (tmpfs) and every mount invisible to the host.
    UserNamespace { reason: String },
    /// No namespace at all (`reason`): plain per-app directories on the host.
    PlainDirectories { reason: String },
}

impl Isolation {
    /// Whether the app's directories are tmpfs mounts (else plain host directories).
    pub fn in_memory(&self) -> bool {
        !matches!(self, Self::PlainDirectories { .. })
    }
}

/// Enters the best isolation available. Must run while the process has a single thread.
pub(crate) fn isolate() -> Result<Isolation, SandboxError> {
    let reason = match mse_sealfs::ns::enter_private_mount_namespace() {
        Ok(()) => return Ok(Isolation::PrivateNamespace),
        Err(e) => e.to_string(),
    };
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // SAFETY: `enter` checked that this process has a single thread (unshare of a user
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
    let write = |file: &str, value: String| {
        fs::write(file, &value).map_err(|e| {
            SandboxError::UserNamespace(format!("cannot write {value:?} to {file}: {e}"))
        })
    };
    write("/proc/self/setgroups", "deny".to_string())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| {
        SandboxError::UserNamespace(format!("cannot make mounts private in the namespace: {e}"))
    })?;
    Ok(Isolation::UserNamespace { reason })
}
