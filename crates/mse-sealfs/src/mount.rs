//! Mounting, unmounting and wiping a sealed filesystem.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::crypto::{BackingName, Ciphers, DIR_ID_LEN, SealKey, classify, plain_size};
use crate::error::FormatError;
use crate::error::SealFsError;
use crate::fs::{DIR_ID_FILE, Quota, SealFs, read_dir_id_file};
use crate::tree::Tree;

/// Default quota: 10 GiB of plaintext (the seeds promise the app "up to 10 GB").
pub const DEFAULT_QUOTA_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// How to mount.
#[derive(Debug, Clone)]
pub struct SealFsOptions {
    /// Plaintext bytes the files may hold in total; beyond, writes fail with ENOSPC.
    pub quota_bytes: u64,
    /// FUSE worker threads.
    pub threads: usize,
    /// Let users other than the mounting one use the mount (`allow_other`; needs root).
    pub allow_other: bool,
    /// Kernel write-back caching: write() returns once data is in the page cache and sealing
    /// happens at write-back. Faster for streams of small writes, but quota (ENOSPC) and I/O
    /// errors then surface at fsync/close instead of at write().
    pub writeback_cache: bool,
}

impl Default for SealFsOptions {
    fn default() -> Self {
        Self {
            quota_bytes: DEFAULT_QUOTA_BYTES,
            threads: 2,
            allow_other: false,
            writeback_cache: false,
        }
    }
}

/// A mounted sealed filesystem. Dropping it unmounts (errors ignored); prefer
/// [`MountedSealFs::unmount`] or [`MountedSealFs::unmount_and_wipe`] to see errors.
pub struct MountedSealFs {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

impl std::fmt::Debug for MountedSealFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedSealFs")
            .field("mountpoint", &self.mountpoint)
            .field("backing", &self.backing)
            .finish()
    }
}

impl MountedSealFs {
    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Its backing directory.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Unmounts and waits for the FUSE threads to finish.
    pub fn unmount(mut self) -> Result<(), SealFsError> {
        self.unmount_inner()
    }

    /// Unmounts, then deletes the backing directory and everything in it (the app stopped).
    pub fn unmount_and_wipe(mut self) -> Result<(), SealFsError> {
        self.unmount_inner()?;
        wipe_backing(&self.backing)
    }

    fn unmount_inner(&mut self) -> Result<(), SealFsError> {
        match self.session.take() {
            Some(s) => s.umount_and_join().map_err(|source| SealFsError::Unmount {
                path: self.mountpoint.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

// The runtime keeps the mount in its state, possibly across threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<MountedSealFs>();
};

impl Drop for MountedSealFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("sealfs: {e}");
        }
    }
}

/// Deletes a backing directory and its content; a missing directory is not an error.
pub fn wipe_backing(backing: &Path) -> Result<(), SealFsError> {
    match fs::remove_dir_all(backing) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SealFsError::Wipe {
            path: backing.to_path_buf(),
            source,
        }),
    }
}

/// Creates the backing directory if needed and returns its root directory id (a new store gets
/// a fresh random one). The inner error is an authentication failure of an existing root id.
fn prepare_backing(
    backing: &Path,
    c: &Ciphers,
) -> Result<Result<[u8; DIR_ID_LEN], FormatError>, SealFsError> {
    let io_err = |source| SealFsError::Backing {
        path: backing.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(backing)
        .map_err(io_err)?;
    let id_path = backing.join(DIR_ID_FILE);
    match fs::File::open(&id_path) {
        Ok(f) => Ok(read_dir_id_file(c, &f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if fs::read_dir(backing).map_err(io_err)?.next().is_some() {
                return Err(SealFsError::NotAStore {
                    path: backing.to_path_buf(),
                });
            }
            let (id, stored) = c.new_dir_id().map_err(|source| SealFsError::Format {
                path: backing.to_path_buf(),
                source,
            })?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&id_path)
                .map_err(io_err)?;
            f.write_all(&stored).map_err(io_err)?;
            Ok(Ok(id))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Plaintext bytes already stored (for the quota), from backing sizes alone. Walks through
/// directory descriptors, so a tree deeper than PATH_MAX is counted too.
fn used_bytes(dir: &Path) -> u64 {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(root) = rustix::fs::open(dir, flags, Mode::empty()) else {
        return 0;
    };
    let mut total = 0u64;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(entries) = rustix::fs::Dir::read_from(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if classify(name.to_bytes()) == BackingName::Internal {
                continue;
            }
            match entry.file_type() {
                rustix::fs::FileType::Directory => {
                    if let Ok(sub) = rustix::fs::openat(&d, name, flags, Mode::empty()) {
                        stack.push(sub);
                    }
                }
                rustix::fs::FileType::RegularFile => {
                    if let Ok(st) = rustix::fs::statat(&d, name, AtFlags::SYMLINK_NOFOLLOW) {
                        total = total.saturating_add(plain_size(st.st_size as u64).unwrap_or(0));
                    }
                }
                _ => {}
            }
        }
    }
    total
}

/// FUSE mounts get the default 128 KiB readahead whatever `max_readahead` says; raising the
/// mount's BDI readahead to 1 MiB makes sequential reads arrive as 1 MiB requests, which are
/// opened on all cores. Best effort (needs root); failure only costs read speed.
fn raise_readahead(mountpoint: &Path) {
    let Ok(md) = fs::metadata(mountpoint) else {
        return;
    };
    let dev = md.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = fs::write(&knob, b"1024") {
        tracing::debug!("sealfs: cannot raise readahead via {knob}: {e}");
    }
}

/// Checks that `key` opens the store in `backing` (its root directory id authenticates).
/// A missing or empty backing directory is accepted (it will become a new store).
pub fn check_key(backing: &Path, key: &SealKey) -> Result<(), SealFsError> {
    let c = Ciphers::new(key);
    match fs::File::open(backing.join(DIR_ID_FILE)) {
        Ok(f) => read_dir_id_file(&c, &f)
            .map(|_| ())
            .map_err(|source| SealFsError::Format {
                path: backing.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let non_empty = fs::read_dir(backing).is_ok_and(|mut rd| rd.next().is_some());
            if non_empty {
                Err(SealFsError::NotAStore {
                    path: backing.to_path_buf(),
                })
            } else {
                Ok(())
            }
        }
        Err(source) => Err(SealFsError::Backing {
            path: backing.to_path_buf(),
            source,
        }),
    }
}

/// Mounts the sealed filesystem stored in `backing` on `mountpoint`, keyed by `key`.
///
/// Runs the FUSE session on background threads of this process. Mounting uses mount(2)
/// directly when the process may (root, or a user+mount namespace), otherwise the setuid
/// `fusermount3` helper (which must happen before any seccomp filter forbids exec).
pub fn mount(
    backing: &Path,
    mountpoint: &Path,
    key: &SealKey,
    options: &SealFsOptions,
) -> Result<MountedSealFs, SealFsError> {
    let ciphers = Ciphers::new(key);
    let (root_id, root_ok) = match prepare_backing(backing, &ciphers)? {
        Ok(id) => (id, true),
        Err(e) => {
            // Mount anyway so that the app sees EIO on every access rather than a missing $HOME;
            // callers wanting a clear error up front use `check_key`.
            tracing::warn!(
                "sealfs: {}: {e}; every access will fail with EIO",
                backing.display()
            );
            ([0u8; DIR_ID_LEN], false)
        }
    };
    let root = rustix::fs::open(
        backing,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SealFsError::Backing {
        path: backing.to_path_buf(),
        source: e.into(),
    })?;
    let root_ino = fs::metadata(backing)
        .map_err(|source| SealFsError::Backing {
            path: backing.to_path_buf(),
            source,
        })?
        .ino();
    let quota = Quota::new(options.quota_bytes, used_bytes(backing));
    let mut fs = SealFs::new(ciphers, root, Tree::new(root_id, root_ino), quota, root_ok);
    fs.writeback = options.writeback_cache;

    fs::create_dir_all(mountpoint).map_err(|source| SealFsError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("mse-sealfs".into()),
        MountOption::Subtype("mse-sealfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    if options.allow_other {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = options.threads > 1;
    let session =
        fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| SealFsError::Mount {
            path: mountpoint.to_path_buf(),
            source,
        })?;
    raise_readahead(mountpoint);
    Ok(MountedSealFs {
        session: Some(session),
        mountpoint: mountpoint.to_path_buf(),
        backing: backing.to_path_buf(),
    })
}
