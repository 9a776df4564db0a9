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
use rustix::fs::OFlags;

use crate::crypto::BLOCK_SIZE;
use crate::fs::{Creator, Handle, SealFs, attr_of, errno_of, errno_of_rustix, file_errno, lock};

use crate::meta::{MAX_WRITE, SetAttr};

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
            let at = self.at(&lock(&self.tree), ino.0)?;
            let stored =
                rustix::fs::readlinkat(at.fd(), &at.rel, Vec::new()).map_err(errno_of_rustix)?;
            self.load_link(stored.as_bytes())
        })();
        match res {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.do_mkdir(parent.0, name, creator(req, mode & !umask)) {
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
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let mut tree = lock(&self.tree);
            let (enc, _) = self.enc_name(&tree, parent.0, link_name)?;
            let dir = self.at(&tree, parent.0)?;
            let at = dir.join(&enc.0);
            let sealed = self.store_link(target.as_os_str().as_bytes())?;
            let long_link = sealed
                .strip_prefix(crate::crypto::LONG_LINK_PREFIX)
                .map(str::to_owned);
            self.put_long_name(&dir, &enc)?;
            if let Err(e) = rustix::fs::symlinkat(sealed.as_str(), at.fd(), &at.rel) {
                if e != rustix::io::Errno::EXIST {
                    self.drop_long_name(&dir, &enc);
                }
                self.drop_long_link(long_link);
                return Err(errno_of_rustix(e));
            }
            if let Err(e) = self.settle_new(&at, &dir, creator(req, 0o777), FileType::Symlink) {
                let _ = rustix::fs::unlinkat(at.fd(), &at.rel, rustix::fs::AtFlags::empty());
                self.drop_long_name(&dir, &enc);
                return Err(e);
            }
            let st = self.stat_at(&at)?;
            drop((at, dir));
            let ino = tree.remember(parent.0, enc, None, st.st_ino);
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

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let at = {
            let tree = lock(&self.tree);
            self.locate(&tree, ino.0)
        };
        let file = match &at {
            Ok((p, b)) => self.acquire_file(ino.0, Some((p, b))),
            Err(e) => self.acquire_file(ino.0, None).map_err(|_| *e),
        };
        match file {
            Ok(file) => {
                let (file_id, kill_privs) = {
                    let f = file.read();
                    // Only a non-root write-only open pays this fstat.
                    let kill = self.kill_privs(req.uid(), flags.0, libc::S_ISUID)
                        && rustix::fs::fstat(f.backing())
                            .is_ok_and(|st| self.kill_privs(req.uid(), flags.0, st.st_mode));
                    (f.file_id(), kill)
                };
                let fh = self.new_fh(Handle::File {
                    ino: ino.0,
                    file,
                    file_id,
                    kill_privs,
                });
                reply.opened(FileHandle(fh), open_flags(flags.0, self.writeback));
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
        let f = file.read();
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
        let f = file.read();
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
            let at = self.at(&lock(&self.tree), ino.0)?;
            let f = self.open_at(&at, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
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
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent.0, name, creator(req, mode & !umask), flags) {
            Ok((attr, fh)) => reply.created(
                &self.ttl,
                &attr,
                Generation(0),
                FileHandle(fh),
                open_flags(flags, self.writeback),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
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
        match self.do_create(parent.0, name, creator(req, mode & !umask), libc::O_EXCL) {
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

/// The owner and mode of an object `req` creates.
fn creator(req: &Request, mode: u32) -> Creator {
    Creator {
        uid: req.uid(),
        gid: req.gid(),
        mode,
    }
}

/// Write-only opens bypass the FUSE page cache (FOPEN_DIRECT_IO): the kernel then hands the
/// writer's own pages to the daemon instead of first copying them into page-cache pages of the
/// FUSE file (a 1 GiB write: ~25% less CPU, ~10% less time). Such a descriptor cannot be mapped
/// or read, and the kernel keeps other, cached opens coherent (it invalidates the written
/// range; see `write_only_writes_reach_cached_readers`). Readable opens keep the page cache,
/// and so does everything in write-back caching mode (whose point is caching writes).
fn open_flags(flags: i32, writeback: bool) -> FopenFlags {
    if !writeback && flags & libc::O_ACCMODE == libc::O_WRONLY {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}
