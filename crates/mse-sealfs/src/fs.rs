//! State of a mounted sealed filesystem and the helpers its FUSE operations share.
//! The operations themselves are in `ops.rs`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::crypto::{
    Ciphers, DIR_ID_FILE_LEN, DIR_ID_LEN, FILE_ID_LEN, header_binding, plain_size,
};
use crate::error::FormatError;
use crate::file::{FileError, SealedFile};
use crate::tree::Tree;

/// Name of the per-directory id file in the backing store (not a valid encrypted name: it
/// starts with a dot, which base64url never produces).
pub const DIR_ID_FILE: &str = ".mse-sealfs.dirid";

/// A sealed file shared by every open handle of the same inode.
pub type SharedFile = Arc<crate::pipe::FileState>;

pub struct OpenEntry {
    pub file: SharedFile,
    pub handles: u32,
    /// Unlinked while open: its quota is released at the last close.
    pub unlinked: bool,
}

pub enum Handle {
    File {
        ino: u64,
        file: SharedFile,
        /// The file's id, readable without the file lock (see `SealedFile::preseal`).
        file_id: [u8; FILE_ID_LEN],
    },
    Dir {
        entries: Vec<(u64, FileType, OsString)>,
    },
}

/// Plaintext bytes accounted against the quota.
pub struct Quota {
    pub limit: u64,
    used: AtomicU64,
}

impl Quota {
    pub fn new(limit: u64, used: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(used),
        }
    }

    /// Reserves `n` more bytes or fails with ENOSPC.
    pub fn reserve(&self, n: u64) -> Result<(), Errno> {
        if n == 0 {
            return Ok(());
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| Errno::ENOSPC)
    }

    pub fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

pub struct SealFs {
    pub(crate) ciphers: Ciphers,
    /// O_PATH descriptor of the backing root; every backing access is relative to it.
    pub(crate) root: OwnedFd,
    pub(crate) tree: Mutex<Tree>,
    pub(crate) open: Mutex<HashMap<u64, OpenEntry>>,
    pub(crate) handles: Mutex<HashMap<u64, Handle>>,
    pub(crate) next_fh: AtomicU64,
    pub(crate) quota: Arc<Quota>,
    /// Sealing buffers of pipelined appends, shared by all files.
    pub(crate) bufs: Arc<crate::pipe::BufPool>,
    pub(crate) ttl: Duration,
    /// False when the root directory id failed authentication (wrong key): every access is EIO.
    pub(crate) root_ok: bool,
    /// Kernel write-back caching requested (the kernel then owns O_APPEND offsets).
    pub(crate) writeback: bool,
}

/// Locks a mutex, recovering from poisoning (a panicking operation must not wedge the mount).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn errno_of(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

pub fn errno_of_rustix(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

/// Maps a sealed-file error to an errno, logging integrity failures (without any plaintext).
pub fn file_errno(e: &FileError, what: &str) -> Errno {
    if let FileError::Format(f) = e {
        tracing::warn!("sealfs: {what}: {f}");
    }
    Errno::from_i32(e.errno())
}

pub fn format_errno(e: &FormatError, what: &str) -> Errno {
    match e {
        FormatError::NameLength { .. } => Errno::ENAMETOOLONG,
        other => {
            tracing::warn!("sealfs: {what}: {other}");
            Errno::EIO
        }
    }
}

fn to_time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(sec.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

pub fn kind_of(mode: u32) -> Option<FileType> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Some(FileType::RegularFile),
        libc::S_IFDIR => Some(FileType::Directory),
        libc::S_IFLNK => Some(FileType::Symlink),
        _ => None,
    }
}

/// FUSE attributes of a backing object; `size` overrides the size for regular files.
pub fn attr_of(ino: u64, st: &Stat, size: Option<u64>) -> FileAttr {
    let kind = kind_of(st.st_mode).unwrap_or(FileType::RegularFile);
    let size = match kind {
        FileType::RegularFile => size.unwrap_or_else(|| plain_size(st.st_size as u64).unwrap_or(0)),
        _ => st.st_size as u64,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: st.st_blocks as u64,
        atime: to_time(st.st_atime, st.st_atime_nsec as i64),
        mtime: to_time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: to_time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind,
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: 0,
        blksize: crate::crypto::BLOCK_SIZE as u32,
        flags: 0,
    }
}

impl SealFs {
    pub(crate) fn new(
        ciphers: Ciphers,
        root: OwnedFd,
        tree: Tree,
        quota: Quota,
        root_ok: bool,
    ) -> Self {
        Self {
            ciphers,
            root,
            tree: Mutex::new(tree),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            quota: Arc::new(quota),
            bufs: Arc::default(),
            ttl: Duration::from_secs(1),
            root_ok,
            writeback: false,
        }
    }

    pub(crate) fn stat_path(&self, path: &Path) -> Result<Stat, Errno> {
        rustix::fs::statat(&self.root, path, AtFlags::SYMLINK_NOFOLLOW).map_err(errno_of_rustix)
    }

    pub(crate) fn open_path(&self, path: &Path, flags: OFlags, mode: u32) -> Result<File, Errno> {
        rustix::fs::openat(
            &self.root,
            path,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )
        .map(File::from)
        .map_err(errno_of_rustix)
    }

    /// Reads the directory id stored in the backing directory `path`.
    pub(crate) fn read_dir_id(&self, path: &Path) -> Result<[u8; DIR_ID_LEN], Errno> {
        let f = self.open_path(&path.join(DIR_ID_FILE), OFlags::RDONLY, 0)?;
        read_dir_id_file(&self.ciphers, &f).map_err(|e| format_errno(&e, "directory id"))
    }

    /// Encrypts `name` for directory `parent`; returns (encrypted name, parent dir id).
    pub(crate) fn enc_name(
        &self,
        tree: &Tree,
        parent: u64,
        name: &OsStr,
    ) -> Result<(String, [u8; DIR_ID_LEN]), Errno> {
        if !self.root_ok {
            return Err(Errno::EIO);
        }
        let dir_id = tree.dir_id(parent).ok_or(Errno::ENOENT)?;
        let enc = self
            .ciphers
            .encrypt_name(&dir_id, name.as_bytes())
            .map_err(|e| format_errno(&e, "name"))?;
        Ok((enc, dir_id))
    }

    /// Size of a regular file: the open state is authoritative while the file is open.
    pub(crate) fn open_size(&self, ino: u64) -> Option<u64> {
        let open = lock(&self.open);
        let entry = open.get(&ino)?;
        let f = entry.file.read();
        Some(f.size())
    }

    pub(crate) fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }

    /// Backing path and header binding (parent directory id ‖ plaintext name) of `ino`.
    pub(crate) fn locate(&self, tree: &Tree, ino: u64) -> Result<(PathBuf, Vec<u8>), Errno> {
        let path = tree.path(ino).ok_or(Errno::ENOENT)?;
        let node = tree.get(ino).ok_or(Errno::ENOENT)?;
        let dir_id = tree.dir_id(node.parent).ok_or(Errno::ENOENT)?;
        let name = self
            .ciphers
            .decrypt_name(&dir_id, node.name.as_bytes())
            .map_err(|e| format_errno(&e, "name"))?;
        Ok((path, header_binding(&dir_id, &name)))
    }

    /// Opens (or shares) the sealed state of regular file `ino`; `at` = its backing path and
    /// header binding (needed unless it is already open).
    pub(crate) fn acquire_file(
        &self,
        ino: u64,
        at: Option<(&Path, &[u8])>,
    ) -> Result<SharedFile, Errno> {
        let mut open = lock(&self.open);
        if let Some(e) = open.get_mut(&ino) {
            e.handles += 1;
            return Ok(e.file.clone());
        }
        let (path, binding) = at.ok_or(Errno::ENOENT)?;
        let backing = self.open_path(path, OFlags::RDWR, 0)?;
        let sealed = SealedFile::open(&self.ciphers, backing, binding)
            .map_err(|e| file_errno(&e, "open"))?;
        let file = self.shared(sealed)?;
        open.insert(
            ino,
            OpenEntry {
                file: file.clone(),
                handles: 1,
                unlinked: false,
            },
        );
        Ok(file)
    }

    /// Registers a freshly created sealed file as open.
    pub(crate) fn insert_open(&self, ino: u64, file: SharedFile) {
        lock(&self.open).insert(
            ino,
            OpenEntry {
                file,
                handles: 1,
                unlinked: false,
            },
        );
    }

    /// Wraps a sealed file for sharing between handles.
    pub(crate) fn shared(&self, sealed: SealedFile) -> Result<SharedFile, Errno> {
        crate::pipe::FileState::new(sealed, self.quota.clone(), self.bufs.clone())
            .map(Arc::new)
            .map_err(|e| errno_of(&e))
    }

    /// Drops one open reference; at the last one, frees the quota of an unlinked file.
    pub(crate) fn release_file(&self, ino: u64) {
        let mut open = lock(&self.open);
        let Some(e) = open.get_mut(&ino) else {
            return;
        };
        e.handles = e.handles.saturating_sub(1);
        if e.handles == 0 {
            let e = open.remove(&ino).expect("entry present");
            if e.unlinked {
                let size = e.file.read().size();
                self.quota.release(size);
            }
        }
    }

    /// Quota bookkeeping for a regular file that left the namespace (unlink, replaced by rename).
    pub(crate) fn file_removed(&self, ino: Option<u64>, backing_len: u64) {
        if let Some(ino) = ino {
            let mut open = lock(&self.open);
            if let Some(e) = open.get_mut(&ino) {
                e.unlinked = true;
                return;
            }
        }
        self.quota.release(plain_size(backing_len).unwrap_or(0));
    }

    /// Lists a backing directory with decrypted names. Any name that fails authentication makes
    /// the whole listing fail with EIO: a tampered or foreign name is never hidden silently.
    pub(crate) fn list_dir(
        &self,
        tree: &Tree,
        ino: u64,
    ) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        if !self.root_ok {
            return Err(Errno::EIO);
        }
        let dir_id = tree.dir_id(ino).ok_or(Errno::ENOENT)?;
        let path = tree.path(ino).ok_or(Errno::ENOENT)?;
        let parent = tree.get(ino).map(|n| n.parent).unwrap_or(ino);
        let fd = self.open_path(&path, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(errno_of_rustix)?;
        let mut out = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        for entry in dir {
            let entry = entry.map_err(errno_of_rustix)?;
            let stored = entry.file_name().to_bytes();
            if stored == b"." || stored == b".." || stored == DIR_ID_FILE.as_bytes() {
                continue;
            }
            let name = self
                .ciphers
                .decrypt_name(&dir_id, stored)
                .map_err(|e| format_errno(&e, "readdir"))?;
            let kind = match entry.file_type() {
                rustix::fs::FileType::Directory => FileType::Directory,
                rustix::fs::FileType::Symlink => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            let child = tree.ino_of_backing(entry.ino()).unwrap_or(entry.ino());
            out.push((child, kind, OsString::from_vec_compat(name)));
        }
        Ok(out)
    }
}

/// Reads and checks a directory id file.
pub fn read_dir_id_file(c: &Ciphers, f: &File) -> Result<[u8; DIR_ID_LEN], FormatError> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(DIR_ID_FILE_LEN + 1);
    let mut limited = f.take(DIR_ID_FILE_LEN as u64 + 1);
    limited
        .read_to_end(&mut buf)
        .map_err(|_| FormatError::DirIdLength { got: 0 })?;
    c.open_dir_id(&buf)
}

trait FromVecCompat {
    fn from_vec_compat(v: Vec<u8>) -> Self;
}

impl FromVecCompat for OsString {
    fn from_vec_compat(v: Vec<u8>) -> Self {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(v)
    }
}
