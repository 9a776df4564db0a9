//! The FUSE operations of [`SealFs`].
//!
//! Metadata operations (lookup, create, rename, unlink, ...) run under the tree lock, so backing
//! paths cannot change under them; file data I/O only takes the per-file lock.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    AccessFlags, Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::crypto::BLOCK_SIZE;
use crate::file::SealedFile;
use crate::fs::{
    DIR_ID_FILE, Handle, SealFs, attr_of, errno_of, errno_of_rustix, file_errno, format_errno,
    kind_of, lock,
};
use crate::tree::Tree;

/// Largest write the kernel may send in one request (fewer, larger sealed writes).
const MAX_WRITE: u32 = 1 << 20;
/// Writes at least this large are acknowledged before they are sealed (see `do_write`).
const WRITE_BEHIND_MIN: usize = 128 * 1024;

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos().into(),
            }
        }
    }
}

/// The attribute changes of a setattr request that this filesystem honours.
#[derive(Default)]
struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

impl SealFs {
    /// Looks up `name` in `parent` and records a kernel reference to it.
    fn do_lookup(
        &self,
        tree: &mut Tree,
        parent: u64,
        name: &OsStr,
    ) -> Result<fuser::FileAttr, Errno> {
        let (enc, _) = self.enc_name(tree, parent, name)?;
        let path = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        let st = self.stat_path(&path)?;
        let kind = kind_of(st.st_mode).ok_or(Errno::EIO)?;
        let dir_id = if kind == FileType::Directory {
            Some(self.read_dir_id(&path)?)
        } else {
            None
        };
        let ino = tree.remember(parent, enc.into(), dir_id, st.st_ino);
        let size = if kind == FileType::RegularFile {
            self.open_size(ino)
        } else {
            None
        };
        Ok(attr_of(ino, &st, size))
    }

    fn do_getattr(&self, ino: u64) -> Result<fuser::FileAttr, Errno> {
        // An open file answers from its own descriptor: this also covers unlinked-but-open files.
        let open = lock(&self.open).get(&ino).map(|e| e.file.clone());
        if let Some(file) = open {
            let f = file.read().unwrap_or_else(|p| p.into_inner());
            let st = rustix::fs::fstat(f.backing()).map_err(errno_of_rustix)?;
            return Ok(attr_of(ino, &st, Some(f.size())));
        }
        let tree = lock(&self.tree);
        let path = tree.path(ino).ok_or(Errno::ENOENT)?;
        let st = self.stat_path(&path)?;
        Ok(attr_of(ino, &st, None))
    }

    fn do_setattr(&self, ino: u64, a: SetAttr) -> Result<fuser::FileAttr, Errno> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = a;
        if let Some(size) = size {
            let path = lock(&self.tree).path(ino);
            let file = self.acquire_file(ino, path.as_deref())?;
            let res = (|| {
                let mut f = file.write().unwrap_or_else(|p| p.into_inner());
                let old = f.size();
                if size > old {
                    self.quota.reserve(size - old)?;
                }
                match f.truncate(&self.ciphers, size) {
                    Ok(()) => {
                        if size < old {
                            self.quota.release(old - size);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        if size > old {
                            self.quota.release(size - old);
                        }
                        Err(file_errno(&e, "truncate"))
                    }
                }
            })();
            self.release_file(ino);
            res?;
        }
        if mode.is_none() && uid.is_none() && gid.is_none() && atime.is_none() && mtime.is_none() {
            return self.do_getattr(ino);
        }
        let mode = mode.map(|m| Mode::from_raw_mode(m & 0o7777));
        let (uid, gid) = (
            uid.map(rustix::fs::Uid::from_raw),
            gid.map(rustix::fs::Gid::from_raw),
        );
        let times = (atime.is_some() || mtime.is_some()).then(|| Timestamps {
            last_access: timespec(atime),
            last_modification: timespec(mtime),
        });
        // Path operations run under the tree lock (no concurrent rename can move the path).
        let tree = lock(&self.tree);
        if let Some(path) = tree.path(ino) {
            let nofollow = AtFlags::SYMLINK_NOFOLLOW;
            if let Some(mode) = mode {
                rustix::fs::chmodat(&self.root, &path, mode, AtFlags::empty())
                    .map_err(errno_of_rustix)?;
            }
            if uid.is_some() || gid.is_some() {
                rustix::fs::chownat(&self.root, &path, uid, gid, nofollow)
                    .map_err(errno_of_rustix)?;
            }
            if let Some(times) = times {
                rustix::fs::utimensat(&self.root, &path, &times, nofollow)
                    .map_err(errno_of_rustix)?;
            }
            drop(tree);
        } else {
            drop(tree);
            // Unlinked but still open: change the backing file through its descriptor.
            let file = lock(&self.open)
                .get(&ino)
                .map(|e| e.file.clone())
                .ok_or(Errno::ENOENT)?;
            let f = file.read().unwrap_or_else(|p| p.into_inner());
            if let Some(mode) = mode {
                rustix::fs::fchmod(f.backing(), mode).map_err(errno_of_rustix)?;
            }
            if uid.is_some() || gid.is_some() {
                rustix::fs::fchown(f.backing(), uid, gid).map_err(errno_of_rustix)?;
            }
            if let Some(times) = times {
                rustix::fs::futimens(f.backing(), &times).map_err(errno_of_rustix)?;
            }
        }
        self.do_getattr(ino)
    }

    fn do_mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<fuser::FileAttr, Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let path = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        rustix::fs::mkdirat(&self.root, &path, Mode::from_raw_mode(mode & 0o7777))
            .map_err(errno_of_rustix)?;
        let written = self
            .ciphers
            .new_dir_id()
            .map_err(|e| format_errno(&e, "mkdir"))
            .and_then(|(id, stored)| write_dir_id(self, &path, &stored).map(|()| id));
        let dir_id = match written {
            Ok(id) => id,
            Err(e) => {
                let _ = rustix::fs::unlinkat(&self.root, &path, AtFlags::REMOVEDIR);
                return Err(e);
            }
        };
        let st = self.stat_path(&path)?;
        let ino = tree.remember(parent, enc.into(), Some(dir_id), st.st_ino);
        Ok(attr_of(ino, &st, None))
    }

    fn do_create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(fuser::FileAttr, u64), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let path = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        let created = self.open_path(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            mode & 0o7777,
        );
        let (ino, st) = match created {
            Ok(backing) => {
                let sealed = SealedFile::create(&self.ciphers, backing).map_err(|e| {
                    let _ = rustix::fs::unlinkat(&self.root, &path, AtFlags::empty());
                    file_errno(&e, "create")
                })?;
                let st = rustix::fs::fstat(sealed.backing()).map_err(errno_of_rustix)?;
                let ino = tree.remember(parent, enc.into(), None, st.st_ino);
                self.insert_open(ino, sealed);
                (ino, st)
            }
            Err(e) if e == Errno::EEXIST && flags & libc::O_EXCL == 0 => {
                let st = self.stat_path(&path)?;
                if kind_of(st.st_mode) != Some(FileType::RegularFile) {
                    return Err(Errno::EISDIR);
                }
                let ino = tree.remember(parent, enc.into(), None, st.st_ino);
                self.acquire_file(ino, Some(&path))?;
                (ino, st)
            }
            Err(e) => return Err(e),
        };
        drop(tree);
        let file = lock(&self.open)
            .get(&ino)
            .map(|e| e.file.clone())
            .ok_or(Errno::EIO)?;
        let size = file.read().unwrap_or_else(|p| p.into_inner()).size();
        let fh = self.new_fh(Handle::File { ino, file });
        Ok((attr_of(ino, &st, Some(size)), fh))
    }

    fn do_unlink(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let path = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        let st = self.stat_path(&path)?;
        if kind_of(st.st_mode) == Some(FileType::Directory) {
            return Err(Errno::EISDIR);
        }
        rustix::fs::unlinkat(&self.root, &path, AtFlags::empty()).map_err(errno_of_rustix)?;
        let ino = tree.detach_backing(st.st_ino);
        if kind_of(st.st_mode) == Some(FileType::RegularFile) {
            self.file_removed(ino, st.st_size as u64);
        }
        Ok(())
    }

    /// Removes the id file of an empty backing directory (ENOTEMPTY otherwise); returns its
    /// stored form so that a failed removal can put it back.
    fn empty_dir_for_removal(&self, path: &Path) -> Result<Vec<u8>, Errno> {
        let fd = self.open_path(path, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(errno_of_rustix)?;
        for entry in dir {
            let entry = entry.map_err(errno_of_rustix)?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." && n != DIR_ID_FILE.as_bytes() {
                return Err(Errno::ENOTEMPTY);
            }
        }
        let mut id = Vec::new();
        {
            use std::io::Read as _;
            self.open_path(&path.join(DIR_ID_FILE), OFlags::RDONLY, 0)?
                .take(4096)
                .read_to_end(&mut id)
                .map_err(|e| errno_of(&e))?;
        }
        rustix::fs::unlinkat(&self.root, path.join(DIR_ID_FILE), AtFlags::empty())
            .map_err(errno_of_rustix)?;
        Ok(id)
    }

    fn do_rmdir(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let path = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        let st = self.stat_path(&path)?;
        if kind_of(st.st_mode) != Some(FileType::Directory) {
            return Err(Errno::ENOTDIR);
        }
        let id = self.empty_dir_for_removal(&path)?;
        if let Err(e) = rustix::fs::unlinkat(&self.root, &path, AtFlags::REMOVEDIR) {
            let _ = write_dir_id(self, &path, &id);
            return Err(errno_of_rustix(e));
        }
        tree.detach_backing(st.st_ino);
        Ok(())
    }

    fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let (new_enc, _) = self.enc_name(&tree, newparent, newname)?;
        let from = tree.child_path(parent, &enc).ok_or(Errno::ENOENT)?;
        let to = tree.child_path(newparent, &new_enc).ok_or(Errno::ENOENT)?;
        let src = self.stat_path(&from)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let target = match self.stat_path(&to) {
            Ok(st) => Some(st),
            Err(e) if e == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        if target.is_some() && flags.contains(RenameFlags::RENAME_NOREPLACE) {
            return Err(Errno::EEXIST);
        }
        if exchange && target.is_none() {
            return Err(Errno::ENOENT);
        }
        // Replacing an empty directory: its id file must go first or the host rename fails.
        let mut removed_id = None;
        if let Some(t) = &target
            && !exchange
            && t.st_ino != src.st_ino
        {
            let t_dir = kind_of(t.st_mode) == Some(FileType::Directory);
            let s_dir = kind_of(src.st_mode) == Some(FileType::Directory);
            match (s_dir, t_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) => removed_id = Some(self.empty_dir_for_removal(&to)?),
                _ => {}
            }
        }
        let mut rflags = rustix::fs::RenameFlags::empty();
        if exchange {
            rflags |= rustix::fs::RenameFlags::EXCHANGE;
        }
        if let Err(e) = rustix::fs::renameat_with(&self.root, &from, &self.root, &to, rflags) {
            if let Some(id) = removed_id {
                let _ = write_dir_id(self, &to, &id);
            }
            return Err(errno_of_rustix(e));
        }
        match target {
            Some(t) if exchange => {
                if let Some(ino) = tree.ino_of_backing(t.st_ino)
                    && let Some(node) = tree.get_mut(ino)
                {
                    node.parent = parent;
                    node.name = enc.clone().into();
                }
            }
            Some(t) if t.st_ino != src.st_ino => {
                let ino = tree.detach_backing(t.st_ino);
                if kind_of(t.st_mode) == Some(FileType::RegularFile) {
                    self.file_removed(ino, t.st_size as u64);
                }
            }
            _ => {}
        }
        if let Some(ino) = tree.ino_of_backing(src.st_ino)
            && let Some(node) = tree.get_mut(ino)
        {
            node.parent = newparent;
            node.name = new_enc.into();
        }
        Ok(())
    }

    /// Writes and replies. A large write is acknowledged as soon as it is ordered (file lock
    /// held) and accounted (quota reserved), then sealed while the kernel already copies the
    /// next one in: sealing overlaps the application's next write. Failures after the
    /// acknowledgement are reported at the next write, flush (close) or fsync.
    fn do_write(&self, fh: u64, offset: u64, data: &[u8], append: bool, reply: ReplyWrite) {
        let file = match lock(&self.handles).get(&fh) {
            Some(Handle::File { file, .. }) => file.clone(),
            _ => return reply.error(Errno::EBADF),
        };
        let mut f = file.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = f.take_deferred() {
            return reply.error(Errno::from_i32(e));
        }
        let offset = if append { f.size() } else { offset };
        let old = f.size();
        let Some(end) = offset.checked_add(data.len() as u64) else {
            return reply.error(Errno::EFBIG);
        };
        if let Err(e) = self.quota.reserve(end.saturating_sub(old)) {
            return reply.error(e);
        }
        let early = data.len() >= WRITE_BEHIND_MIN;
        let mut reply = Some(reply);
        if early && let Some(r) = reply.take() {
            r.written(data.len() as u32);
        }
        let res = f.write(&self.ciphers, offset, data);
        if let Err(e) = &res {
            // Whatever part was written stays accounted via the new size.
            self.quota.release(end.max(old) - f.size().max(old));
            let errno = file_errno(e, "write");
            match reply.take() {
                Some(r) => r.error(errno),
                None => f.defer_error(errno.code()),
            }
        } else if let Some(r) = reply.take() {
            r.written(data.len() as u32);
        }
    }

    /// Reports (once) an error deferred by an early-acknowledged write.
    fn deferred_error(&self, fh: u64) -> Result<crate::fs::SharedFile, Errno> {
        let file = match lock(&self.handles).get(&fh) {
            Some(Handle::File { file, .. }) => file.clone(),
            _ => return Err(Errno::EBADF),
        };
        let mut f = file.write().unwrap_or_else(|p| p.into_inner());
        match f.take_deferred() {
            Some(e) => Err(Errno::from_i32(e)),
            None => {
                drop(f);
                Ok(file)
            }
        }
    }
}

fn write_dir_id(fs: &SealFs, dir: &Path, id: &[u8]) -> Result<(), Errno> {
    use std::io::Write;
    let mut f = fs.open_path(
        &dir.join(DIR_ID_FILE),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        0o400,
    )?;
    f.write_all(id).map_err(|e: io::Error| errno_of(&e))
}

impl Filesystem for SealFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        if self.writeback
            && config
                .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            tracing::warn!("sealfs: kernel lacks FUSE write-back caching; writing through");
            self.writeback = false;
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut tree = lock(&self.tree);
        match self.do_lookup(&mut tree, parent.0, name) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.tree).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.do_getattr(ino.0) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.do_setattr(ino.0, a) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = (|| {
            let path = lock(&self.tree).path(ino.0).ok_or(Errno::ENOENT)?;
            let stored =
                rustix::fs::readlinkat(&self.root, &path, Vec::new()).map_err(errno_of_rustix)?;
            self.ciphers
                .open_link(stored.as_bytes())
                .map_err(|e| format_errno(&e, "readlink"))
        })();
        match res {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mkdir(parent.0, name, mode & !umask) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.do_rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let mut tree = lock(&self.tree);
            let (enc, _) = self.enc_name(&tree, parent.0, link_name)?;
            let path = tree.child_path(parent.0, &enc).ok_or(Errno::ENOENT)?;
            let sealed = self
                .ciphers
                .seal_link(target.as_os_str().as_bytes())
                .map_err(|e| format_errno(&e, "symlink"))?;
            rustix::fs::symlinkat(sealed.as_str(), &self.root, &path).map_err(errno_of_rustix)?;
            let st = self.stat_path(&path)?;
            let ino = tree.remember(parent.0, enc.into(), None, st.st_ino);
            Ok(attr_of(ino, &st, None))
        })();
        match res {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent.0, name, newparent.0, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = lock(&self.tree).path(ino.0);
        match self.acquire_file(ino.0, path.as_deref()) {
            Ok(file) => {
                let fh = self.new_fh(Handle::File { ino: ino.0, file });
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match lock(&self.handles).get(&fh.0) {
            Some(Handle::File { file, .. }) => file.clone(),
            _ => return reply.error(Errno::EBADF),
        };
        tracing::trace!(offset, size, "read");
        let f = file.read().unwrap_or_else(|p| p.into_inner());
        match f.read(&self.ciphers, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(file_errno(&e, "read")),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        tracing::trace!(offset, size = data.len(), "write");
        // With write-back caching the kernel already resolved O_APPEND into `offset`.
        let append = !self.writeback && flags.0 & libc::O_APPEND != 0;
        self.do_write(fh.0, offset, data, append, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.deferred_error(fh.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(Handle::File { ino, .. }) = lock(&self.handles).remove(&fh.0) {
            self.release_file(ino);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let file = match self.deferred_error(fh.0) {
            Ok(file) => file,
            Err(e) => return reply.error(e),
        };
        let f = file.read().unwrap_or_else(|p| p.into_inner());
        let res = if datasync {
            f.backing().sync_data()
        } else {
            f.backing().sync_all()
        };
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let tree = lock(&self.tree);
        match self.list_dir(&tree, ino.0) {
            Ok(entries) => {
                drop(tree);
                let fh = self.new_fh(Handle::Dir { entries });
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = lock(&self.handles);
        let Some(Handle::Dir { entries }) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let res = (|| {
            let path = lock(&self.tree).path(ino.0).ok_or(Errno::ENOENT)?;
            let f = self.open_path(&path, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
            f.sync_all().map_err(|e| errno_of(&e))
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let bs = BLOCK_SIZE as u64;
        let total = self.quota.limit / bs;
        let free = self.quota.limit.saturating_sub(self.quota.used()) / bs;
        reply.statfs(
            total,
            free,
            free,
            0,
            0,
            bs as u32,
            crate::crypto::MAX_NAME_LEN as u32,
            bs as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permission checks are done by the kernel (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent.0, name, mode & !umask, flags) {
            Ok((attr, fh)) => reply.created(
                &self.ttl,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Only regular files can be sealed; devices, fifos and sockets are refused.
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        match self.do_create(parent.0, name, mode & !umask, libc::O_EXCL) {
            Ok((attr, fh)) => {
                if let Some(Handle::File { ino, .. }) = lock(&self.handles).remove(&fh) {
                    self.release_file(ino);
                }
                reply.entry(&self.ttl, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation only: extend with sealed zeros (glibc emulates the other modes).
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let Some(end) = offset.checked_add(length) else {
            return reply.error(Errno::EFBIG);
        };
        let size = self.do_getattr(ino.0).map(|a| a.size);
        let res = match size {
            Ok(size) if end > size => self
                .do_setattr(
                    ino.0,
                    SetAttr {
                        size: Some(end),
                        ..Default::default()
                    },
                )
                .map(|_| ()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        // The kernel handles SEEK_SET/CUR/END itself; SEEK_DATA/HOLE fall back to "all data".
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // The kernel then copies through read and write, which re-seals under the target's id.
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    // Extended attributes would sit in clear on the host, so there are none. ENOSYS makes the
    // kernel remember that and answer EOPNOTSUPP itself, saving a request per write
    // (the security.capability check).
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }
}
