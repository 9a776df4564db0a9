//! Where the app's `$HOME` lives, behind one small trait: today a sealed FUSE filesystem over a
//! host directory ([`SealFsHome`]); next, e.g., sealfs on an ext4 disk or a dm-crypt volume
//! inside a confidential VM. The sandbox only asks a [`HomeStorage`] to prepare `$HOME` from a
//! backing location and a key source and mount it at a path, and the [`MountedHome`] it gets
//! back to tear it down (unmount and erase) at stop.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use mse_sealfs::{MountedSealFs, SealFsError, SealFsOptions, SealKey};
use rustix::fs::{Mode, OFlags};
use zeroize::Zeroizing;

/// Where the 32-byte key of `$HOME` comes from (the runtime derives it from the platform's
/// sealing key and the measurement; a VM could ask its TEE). Asked once, at mount.
pub trait KeySource {
    /// The key. It is wiped from memory once the storage is keyed.
    fn home_key(&self) -> Result<Zeroizing<[u8; 32]>, HomeError>;
}

/// A key already at hand.
impl KeySource for [u8; 32] {
    fn home_key(&self) -> Result<Zeroizing<[u8; 32]>, HomeError> {
        Ok(Zeroizing::new(*self))
    }
}

/// A kind of storage for the app's `$HOME`.
pub trait HomeStorage {
    /// What `$HOME` is, for the start-up log line (e.g. `sealed, quota 10 GiB`).
    fn describe(&self) -> String;

    /// Prepares `$HOME` from `backing` (created if new; refused with a clear error if it holds
    /// a store that `key` does not open) and mounts it at `mountpoint`.
    fn mount(
        &self,
        backing: &Path,
        key: &dyn KeySource,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountedHome>, HomeError>;
}

/// A mounted `$HOME`.
pub trait MountedHome: Send {
    /// Where it is mounted.
    fn mountpoint(&self) -> &Path;

    /// Unmounts it (aborting whatever still holds it busy: the app is done) and erases its
    /// content. Reports the first error and still does the rest.
    fn tear_down(self: Box<Self>) -> Result<(), HomeError>;
}

/// What failed while preparing, mounting or tearing down `$HOME`.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// The key source failed.
    #[error("cannot get the key of $HOME: {0}")]
    Key(String),
    /// The sealed filesystem failed (its message names the backing directory or mount point).
    #[error(transparent)]
    SealFs(#[from] SealFsError),
    /// The backing location could not be opened.
    #[error("cannot open {path}: {source}")]
    Backing {
        /// The backing location.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Unmounting failed.
    #[error("cannot unmount {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// `$HOME` as an mse-sealfs filesystem (AES-256-GCM per 4 KiB block, names sealed, integrity
/// checked) over a host directory, served by FUSE threads of this process.
#[derive(Debug, Clone, Default)]
pub struct SealFsHome {
    /// Mount options (quota, threads, ...).
    pub options: SealFsOptions,
}

impl HomeStorage for SealFsHome {
    fn describe(&self) -> String {
        format!(
            "sealed, quota {} GiB",
            self.options.quota_bytes / (1024 * 1024 * 1024)
        )
    }

    fn mount(
        &self,
        backing: &Path,
        key: &dyn KeySource,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountedHome>, HomeError> {
        let key = SealKey::from_bytes(*key.home_key()?);
        mse_sealfs::check_key(backing, &key)?;
        // The backing's parent, by descriptor: mounts made later (a tmpfs on /tmp) may hide
        // its path, and it must still be wiped at stop.
        let parent = backing.parent().unwrap_or(Path::new("/"));
        let parent_fd = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| HomeError::Backing {
            path: parent.to_path_buf(),
            source: e.into(),
        })?;
        let name = backing
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| HomeError::Backing {
                path: backing.to_path_buf(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        let mounted = mse_sealfs::mount(backing, mountpoint, &key, &self.options)?;
        Ok(Box::new(MountedSealFsHome {
            mounted,
            parent_fd,
            name,
        }))
    }
}

struct MountedSealFsHome {
    mounted: MountedSealFs,
    parent_fd: OwnedFd,
    name: PathBuf,
}

impl MountedHome for MountedSealFsHome {
    fn mountpoint(&self) -> &Path {
        self.mounted.mountpoint()
    }

    fn tear_down(self: Box<Self>) -> Result<(), HomeError> {
        let Self {
            mounted,
            parent_fd,
            name,
        } = *self;
        let mountpoint = mounted.mountpoint().to_path_buf();
        let mut first = None;
        match mounted.unmount() {
            Ok(()) => {}
            Err(SealFsError::Unmount { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                // Still busy (a mapping or working directory of the app): abort the connection
                // (a forced FUSE unmount does) so that nothing waits on a filesystem no longer
                // served, then detach it. Its content is wiped next.
                let _ = rustix::mount::unmount(&mountpoint, rustix::mount::UnmountFlags::FORCE);
                match rustix::mount::unmount(&mountpoint, rustix::mount::UnmountFlags::DETACH) {
                    Ok(()) => tracing::warn!(
                        "sandbox: $HOME was still in use by the app (a mapping or working \
                         directory): connection aborted and detached"
                    ),
                    Err(e) => {
                        first = Some(HomeError::Unmount {
                            path: mountpoint,
                            source: e.into(),
                        })
                    }
                }
            }
            Err(e) => first = Some(e.into()),
        }
        let backing = PathBuf::from(format!("/proc/self/fd/{}", parent_fd.as_raw_fd())).join(&name);
        let wiped = mse_sealfs::wipe_backing(&backing).map_err(HomeError::from);
        match first {
            Some(e) => {
                if let Err(w) = wiped {
                    tracing::warn!("sandbox stop: {w}");
                }
                Err(e)
            }
            None => wiped,
        }
    }
}
