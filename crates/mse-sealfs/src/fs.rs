//! State of a mounted sealed filesystem and the helpers its FUSE operations share.
//! The operations themselves are in `ops.rs`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::crypto::{
    BackingName, Ciphers, DIR_ID_FILE_LEN, DIR_ID_LEN, FILE_ID_LEN, LINKS_DIR, LONG_LINK_PREFIX,
    LONG_NAME_SUFFIX, MAX_ENC_NAME_LEN, MAX_HOST_LINK_LEN, StoredName, classify, header_binding,
    long_name, plain_size, stored_name,
};
use crate::error::FormatError;
use crate::file::{FileError, SealedFile};
use crate::tree::Tree;

/// Name of the per-directory id file in the backing store (not a valid encrypted name: it
/// starts with a dot, which base64url never produces).
pub const DIR_ID_FILE: &str = ".mse-sealfs.dirid";

/// Longest relative backing path handed to one `*at` system call: well below PATH_MAX (4096
/// with the NUL), leaving room for the names `At::join` adds.
pub(crate) const PATH_CHUNK: usize = 3584;

/// A backing object: a path relative to a directory descriptor (the backing root, or a
/// directory on the way when the whole path would exceed [`PATH_CHUNK`]).
pub(crate) struct At<'a> {
    base: Base<'a>,
    /// Relative path from `base` (at most [`PATH_CHUNK`] bytes, `.` for the base itself).
    pub(crate) rel: PathBuf,
}

#[derive(Clone)]
enum Base<'a> {
    Root(BorrowedFd<'a>),
    Dir(Arc<OwnedFd>),
}

impl At<'_> {
    /// The descriptor `rel` is relative to.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.base {
            Base::Root(fd) => *fd,
            Base::Dir(fd) => fd.as_fd(),
        }
    }

    /// The entry `name` inside this directory.
    pub(crate) fn join(&self, name: &str) -> Self {
        Self {
            base: self.base.clone(),
            rel: self.rel.join(name),
        }
    }
}

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
        /// The first write must clear the set-user-ID (and group-executable set-group-ID)
        /// bits: a write-only open bypasses the page cache, and with it the kernel's own
        /// clearing of them, and the writer is not root.
        kill_privs: bool,
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
    /// This process's umask, which the host applies to every backing object it creates.
    pub(crate) umask: u32,
    /// This process's effective uid and gid: the owner the host gives new backing objects.
    pub(crate) euid: u32,
    pub(crate) egid: u32,
}

/// Who asked for a new object (its owner), and the mode asked for (umask already applied).
#[derive(Clone, Copy)]
pub(crate) struct Creator {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
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
            umask: process_umask(),
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
        }
    }

    /// Gives a backing object just created in `dir` (a directory of `parent_mode`) the owner
    /// and mode its creator asked for, where the host did not: objects are created by this
    /// process, under its own umask and credentials. Nothing to do in the product (the app is
    /// this process); a multi-user mount (`allow_other`) needs it.
    pub(crate) fn settle_new(
        &self,
        at: &At<'_>,
        dir: &At<'_>,
        c: Creator,
        kind: FileType,
    ) -> Result<(), Errno> {
        let chown = c.uid != self.euid || c.gid != self.egid;
        let mut mode = c.mode & 0o7777;
        if chown {
            // In a set-group-ID directory the host already gave the directory's group (and,
            // to a directory, the set-group-ID bit): keep them, as ext4 does.
            let parent = self.stat_at(dir)?;
            let sgid = parent.st_mode & libc::S_ISGID != 0;
            let gid = (!sgid).then(|| rustix::fs::Gid::from_raw(c.gid));
            if sgid && kind == FileType::Directory {
                mode |= libc::S_ISGID;
            }
            rustix::fs::chownat(
                at.fd(),
                &at.rel,
                Some(rustix::fs::Uid::from_raw(c.uid)),
                gid,
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno_of_rustix)?;
        }
        // A chown may clear set-user/group-ID bits; a umask may have cleared others.
        if kind != FileType::Symlink && (chown || mode & self.umask != 0) {
            rustix::fs::chmodat(
                at.fd(),
                &at.rel,
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(errno_of_rustix)?;
        }
        Ok(())
    }

    /// Where the backing object of `ino` is (ENOENT if it left the namespace).
    pub(crate) fn at(&self, tree: &Tree, ino: u64) -> Result<At<'_>, Errno> {
        let parts = tree.components(ino).ok_or(Errno::ENOENT)?;
        self.walk(&parts)
    }

    /// Where the entry `stored` (a host name) of directory `parent` is.
    pub(crate) fn at_child(&self, tree: &Tree, parent: u64, stored: &str) -> Result<At<'_>, Errno> {
        let mut parts = tree.components(parent).ok_or(Errno::ENOENT)?;
        parts.push(OsStr::new(stored));
        self.walk(&parts)
    }

    /// Resolves host names from the backing root: one relative path from the root when it is
    /// short (the common case: no extra system call), else descriptors of the directories along
    /// the way, opened [`PATH_CHUNK`] bytes at a time, and the rest relative to the last one.
    fn walk(&self, parts: &[&OsStr]) -> Result<At<'_>, Errno> {
        let join = |parts: &[&OsStr]| {
            let mut p = PathBuf::from(".");
            for part in parts {
                p.push(part);
            }
            p
        };
        let len = |parts: &[&OsStr]| parts.iter().map(|p| p.len() + 1).sum::<usize>();
        if len(parts) <= PATH_CHUNK {
            return Ok(At {
                base: Base::Root(self.root.as_fd()),
                rel: join(parts),
            });
        }
        let mut dir: Option<OwnedFd> = None;
        let mut rest = parts;
        while len(rest) > PATH_CHUNK {
            // The longest prefix that fits, leaving at least the last name for `rel`.
            let mut n = 0;
            let mut used = 0;
            while n + 1 < rest.len() && used + rest[n].len() < PATH_CHUNK {
                used += rest[n].len() + 1;
                n += 1;
            }
            if n == 0 {
                return Err(Errno::ENAMETOOLONG);
            }
            let base = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            let next = rustix::fs::openat(
                base,
                join(&rest[..n]),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno_of_rustix)?;
            dir = Some(next);
            rest = &rest[n..];
        }
        Ok(At {
            base: match dir {
                Some(d) => Base::Dir(Arc::new(d)),
                None => Base::Root(self.root.as_fd()),
            },
            rel: join(rest),
        })
    }

    pub(crate) fn stat_at(&self, at: &At<'_>) -> Result<Stat, Errno> {
        rustix::fs::statat(at.fd(), &at.rel, AtFlags::SYMLINK_NOFOLLOW).map_err(errno_of_rustix)
    }

    pub(crate) fn open_at(&self, at: &At<'_>, flags: OFlags, mode: u32) -> Result<File, Errno> {
        rustix::fs::openat(
            at.fd(),
            &at.rel,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(mode),
        )
        .map(File::from)
        .map_err(errno_of_rustix)
    }

    /// Reads the directory id stored in the backing directory `dir`.
    pub(crate) fn read_dir_id(&self, dir: &At<'_>) -> Result<[u8; DIR_ID_LEN], Errno> {
        let f = self.open_at(&dir.join(DIR_ID_FILE), OFlags::RDONLY, 0)?;
        read_dir_id_file(&self.ciphers, &f).map_err(|e| format_errno(&e, "directory id"))
    }

    /// Encrypts `name` for directory `parent`; returns (host name, encrypted name if the host
    /// name is its long-name alias) and the parent's directory id.
    pub(crate) fn enc_name(
        &self,
        tree: &Tree,
        parent: u64,
        name: &OsStr,
    ) -> Result<(StoredName, [u8; DIR_ID_LEN]), Errno> {
        if !self.root_ok {
            return Err(Errno::EIO);
        }
        let dir_id = tree.dir_id(parent).ok_or(Errno::ENOENT)?;
        let enc = self
            .ciphers
            .encrypt_name(&dir_id, name.as_bytes())
            .map_err(|e| format_errno(&e, "name"))?;
        Ok((stored_name(enc), dir_id))
    }

    /// Before an object named by a long-name alias is created in `dir`: its side file, holding
    /// the encrypted name. Kept if it exists (its content is a function of its name).
    pub(crate) fn put_long_name(
        &self,
        dir: &At<'_>,
        (stored, long): &StoredName,
    ) -> Result<(), Errno> {
        use std::io::Write as _;
        let Some(enc) = long else {
            return Ok(());
        };
        let side = dir.join(&format!("{stored}{LONG_NAME_SUFFIX}"));
        match self.open_at(&side, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o400) {
            Ok(mut f) => f.write_all(enc.as_bytes()).map_err(|e| errno_of(&e)),
            Err(e) if e == Errno::EEXIST => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// After an object named by a long-name alias left `dir`: its side file (best effort: an
    /// orphan side file is ignored, and removed with its directory).
    pub(crate) fn drop_long_name(&self, dir: &At<'_>, (stored, long): &StoredName) {
        if long.is_some() {
            let side = dir.join(&format!("{stored}{LONG_NAME_SUFFIX}"));
            let _ = rustix::fs::unlinkat(side.fd(), &side.rel, AtFlags::empty());
        }
    }

    /// Seals link target `target` into the host link target to store: the sealed form itself,
    /// or, when that would exceed [`MAX_HOST_LINK_LEN`], a reference to a file in
    /// [`LINKS_DIR`] holding it.
    pub(crate) fn store_link(&self, target: &[u8]) -> Result<String, Errno> {
        use std::io::Write as _;
        let sealed = self
            .ciphers
            .seal_link(target)
            .map_err(|e| format_errno(&e, "symlink"))?;
        if sealed.len() <= MAX_HOST_LINK_LEN {
            return Ok(sealed);
        }
        let mut raw = [0u8; 16];
        crate::crypto::random(&mut raw).map_err(|e| format_errno(&e, "symlink"))?;
        let id = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        match rustix::fs::mkdirat(&self.root, LINKS_DIR, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(errno_of_rustix(e)),
        }
        let mut f = File::from(
            rustix::fs::openat(
                &self.root,
                format!("{LINKS_DIR}/{id}"),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o400),
            )
            .map_err(errno_of_rustix)?,
        );
        f.write_all(sealed.as_bytes()).map_err(|e| errno_of(&e))?;
        Ok(format!("{LONG_LINK_PREFIX}{id}"))
    }

    /// The link target behind host link target `stored` (see [`SealFs::store_link`]).
    pub(crate) fn load_link(&self, stored: &[u8]) -> Result<Vec<u8>, Errno> {
        let sealed = match stored.strip_prefix(LONG_LINK_PREFIX.as_bytes()) {
            None => stored.to_vec(),
            Some(id) => {
                use std::io::Read as _;
                let id = std::str::from_utf8(id).map_err(|_| Errno::EIO)?;
                if id.contains('/') {
                    return Err(format_errno(&FormatError::LinkAuth, "readlink"));
                }
                let f = rustix::fs::openat(
                    &self.root,
                    format!("{LINKS_DIR}/{id}"),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| {
                    tracing::warn!("sealfs: long link target missing: {e}");
                    Errno::EIO
                })?;
                let mut sealed = Vec::new();
                File::from(f)
                    .take(2 * PATH_CHUNK as u64 + 1024)
                    .read_to_end(&mut sealed)
                    .map_err(|e| errno_of(&e))?;
                sealed
            }
        };
        self.ciphers
            .open_link(&sealed)
            .map_err(|e| format_errno(&e, "readlink"))
    }

    /// If the host link at `at` refers to a file in [`LINKS_DIR`], that file's name.
    pub(crate) fn long_link_of(&self, at: &At<'_>) -> Option<String> {
        let stored = rustix::fs::readlinkat(at.fd(), &at.rel, Vec::new()).ok()?;
        let id = stored
            .to_bytes()
            .strip_prefix(LONG_LINK_PREFIX.as_bytes())?;
        std::str::from_utf8(id)
            .ok()
            .filter(|id| !id.contains('/'))
            .map(str::to_owned)
    }

    /// Removes a long link's target file (best effort), once the link is gone.
    pub(crate) fn drop_long_link(&self, id: Option<String>) {
        if let Some(id) = id {
            let _ = rustix::fs::unlinkat(&self.root, format!("{LINKS_DIR}/{id}"), AtFlags::empty());
        }
    }

    /// The encrypted name behind long-name alias `stored` in directory `dir`, checked against
    /// the alias (a side file swapped with another one's is refused).
    fn read_long_name(&self, dir: BorrowedFd<'_>, stored: &[u8]) -> Result<Vec<u8>, Errno> {
        use std::io::Read as _;
        let mut side = stored.to_vec();
        side.extend_from_slice(LONG_NAME_SUFFIX.as_bytes());
        let f = rustix::fs::openat(
            dir,
            OsStr::from_bytes(&side),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            tracing::warn!("sealfs: long name without its side file: {e}");
            Errno::EIO
        })?;
        let mut enc = Vec::with_capacity(MAX_ENC_NAME_LEN + 1);
        File::from(f)
            .take(MAX_ENC_NAME_LEN as u64 + 1)
            .read_to_end(&mut enc)
            .map_err(|e| errno_of(&e))?;
        if long_name(&enc).as_bytes() != stored {
            return Err(format_errno(&FormatError::NameAuth, "long name"));
        }
        Ok(enc)
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

    /// Backing location and header binding (parent directory id ‖ plaintext name) of `ino`.
    pub(crate) fn locate(&self, tree: &Tree, ino: u64) -> Result<(At<'_>, Vec<u8>), Errno> {
        let at = self.at(tree, ino)?;
        let node = tree.get(ino).ok_or(Errno::ENOENT)?;
        let dir_id = tree.dir_id(node.parent).ok_or(Errno::ENOENT)?;
        let enc = node
            .long
            .as_deref()
            .map_or(node.name.as_bytes(), str::as_bytes);
        let name = self
            .ciphers
            .decrypt_name(&dir_id, enc)
            .map_err(|e| format_errno(&e, "name"))?;
        Ok((at, header_binding(&dir_id, &name)))
    }

    /// Opens (or shares) the sealed state of regular file `ino`; `at` = its backing path and
    /// header binding (needed unless it is already open).
    pub(crate) fn acquire_file(
        &self,
        ino: u64,
        at: Option<(&At<'_>, &[u8])>,
    ) -> Result<SharedFile, Errno> {
        let mut open = lock(&self.open);
        if let Some(e) = open.get_mut(&ino) {
            e.handles += 1;
            return Ok(e.file.clone());
        }
        let (path, binding) = at.ok_or(Errno::ENOENT)?;
        let backing = self.open_at(path, OFlags::RDWR, 0)?;
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

    /// Whether a handle opened with `flags` by `uid` on a file of `mode` must clear the file's
    /// set-ID bits at its first write (see `Handle::File::kill_privs`).
    pub(crate) fn kill_privs(&self, uid: u32, flags: i32, mode: u32) -> bool {
        let direct = !self.writeback && flags & libc::O_ACCMODE == libc::O_WRONLY;
        let privs = mode & libc::S_ISUID != 0
            || mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID | libc::S_IXGRP;
        direct && uid != 0 && privs
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
        let at = self.at(tree, ino)?;
        let parent = tree.get(ino).map(|n| n.parent).unwrap_or(ino);
        let fd = self.open_at(&at, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(errno_of_rustix)?;
        let mut out = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        for entry in dir {
            let entry = entry.map_err(errno_of_rustix)?;
            let stored = entry.file_name().to_bytes();
            let long;
            let enc = match classify(stored) {
                BackingName::Internal => continue,
                BackingName::Short(enc) => enc,
                BackingName::Long => {
                    long = self.read_long_name(fd.as_fd(), stored)?;
                    &long
                }
            };
            let name = self
                .ciphers
                .decrypt_name(&dir_id, enc)
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

/// This process's umask, from /proc/self/status (reading it with umask(2) would change it, for
/// a moment, for every thread). 022 if unknown: then modes it clears are restored explicitly.
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
        })
        .unwrap_or(0o022)
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
