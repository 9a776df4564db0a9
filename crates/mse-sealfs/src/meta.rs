//! The operations behind the FUSE requests: metadata under the tree lock, data under the
//! per-file lock. `ops.rs` adapts them to fuser's request/reply interface.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::SystemTime;

use fuser::{Errno, FileType, RenameFlags, ReplyWrite, TimeOrNow};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use crate::crypto::{BackingName, LONG_NAME_PREFIX, MAX_FILE_SIZE, classify, header_binding};
use crate::file::SealedFile;
use crate::fs::{
    At, Creator, DIR_ID_FILE, Handle, SealFs, attr_of, errno_of, errno_of_rustix, file_errno,
    format_errno, kind_of, lock,
};
use crate::tree::Tree;

/// Largest write the kernel may send in one request (fewer, larger sealed writes).
pub(crate) const MAX_WRITE: u32 = 1 << 20;
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
pub(crate) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

impl SealFs {
    /// Looks up `name` in `parent` and records a kernel reference to it.
    pub(crate) fn do_lookup(
        &self,
        tree: &mut Tree,
        parent: u64,
        name: &OsStr,
    ) -> Result<fuser::FileAttr, Errno> {
        let (enc, _) = self.enc_name(tree, parent, name)?;
        let at = self.at_child(tree, parent, &enc.0)?;
        let st = self.stat_at(&at)?;
        let kind = kind_of(st.st_mode).ok_or(Errno::EIO)?;
        let dir_id = if kind == FileType::Directory {
            Some(self.read_dir_id(&at)?)
        } else {
            None
        };
        drop(at);
        let ino = tree.remember(parent, enc, dir_id, st.st_ino);
        let size = if kind == FileType::RegularFile {
            self.open_size(ino)
        } else {
            None
        };
        Ok(attr_of(ino, &st, size))
    }

    pub(crate) fn do_getattr(&self, ino: u64) -> Result<fuser::FileAttr, Errno> {
        // An open file answers from its own descriptor: this also covers unlinked-but-open files.
        let open = lock(&self.open).get(&ino).map(|e| e.file.clone());
        if let Some(file) = open {
            let f = file.read();
            let st = rustix::fs::fstat(f.backing()).map_err(errno_of_rustix)?;
            return Ok(attr_of(ino, &st, Some(f.size())));
        }
        let tree = lock(&self.tree);
        let st = self.stat_at(&self.at(&tree, ino)?)?;
        Ok(attr_of(ino, &st, None))
    }

    pub(crate) fn do_setattr(&self, ino: u64, a: SetAttr) -> Result<fuser::FileAttr, Errno> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = a;
        if let Some(size) = size {
            if size > MAX_FILE_SIZE {
                return Err(Errno::EFBIG);
            }
            let at = {
                let tree = lock(&self.tree);
                self.locate(&tree, ino)
            };
            let file = match &at {
                Ok((p, b)) => self.acquire_file(ino, Some((p, b))),
                // Unlinked (or unnamed) files can only be reached while open.
                Err(e) => self.acquire_file(ino, None).map_err(|_| *e),
            }?;
            let res = (|| {
                let mut f = file.write();
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
        if let Ok(at) = self.at(&tree, ino) {
            let nofollow = AtFlags::SYMLINK_NOFOLLOW;
            if let Some(mode) = mode {
                rustix::fs::chmodat(at.fd(), &at.rel, mode, AtFlags::empty())
                    .map_err(errno_of_rustix)?;
            }
            if uid.is_some() || gid.is_some() {
                rustix::fs::chownat(at.fd(), &at.rel, uid, gid, nofollow)
                    .map_err(errno_of_rustix)?;
            }
            if let Some(times) = times {
                rustix::fs::utimensat(at.fd(), &at.rel, &times, nofollow)
                    .map_err(errno_of_rustix)?;
            }
            drop(at);
            drop(tree);
        } else {
            drop(tree);
            // Unlinked but still open: change the backing file through its descriptor.
            let file = lock(&self.open)
                .get(&ino)
                .map(|e| e.file.clone())
                .ok_or(Errno::ENOENT)?;
            let f = file.read();
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

    pub(crate) fn do_mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        creator: Creator,
    ) -> Result<fuser::FileAttr, Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let dir = self.at(&tree, parent)?;
        let at = dir.join(&enc.0);
        self.put_long_name(&dir, &enc)?;
        let mode = Mode::from_raw_mode(creator.mode & 0o7777);
        if let Err(e) = rustix::fs::mkdirat(at.fd(), &at.rel, mode) {
            if e != rustix::io::Errno::EXIST {
                self.drop_long_name(&dir, &enc);
            }
            return Err(errno_of_rustix(e));
        }
        let written = self
            .ciphers
            .new_dir_id()
            .map_err(|e| format_errno(&e, "mkdir"))
            .and_then(|(id, stored)| write_dir_id(self, &at, &stored).map(|()| id))
            .and_then(|id| {
                self.settle_new(&at, &dir, creator, FileType::Directory)
                    .map(|()| id)
            });
        let dir_id = match written {
            Ok(id) => id,
            Err(e) => {
                let _ = rustix::fs::unlinkat(at.fd(), &at.rel, AtFlags::REMOVEDIR);
                self.drop_long_name(&dir, &enc);
                return Err(e);
            }
        };
        let st = self.stat_at(&at)?;
        drop((at, dir));
        let ino = tree.remember(parent, enc, Some(dir_id), st.st_ino);
        Ok(attr_of(ino, &st, None))
    }

    pub(crate) fn do_create(
        &self,
        parent: u64,
        name: &OsStr,
        creator: Creator,
        flags: i32,
    ) -> Result<(fuser::FileAttr, u64), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, dir_id) = self.enc_name(&tree, parent, name)?;
        let dir = self.at(&tree, parent)?;
        let at = dir.join(&enc.0);
        let binding = header_binding(&dir_id, name.as_bytes());
        self.put_long_name(&dir, &enc)?;
        let created = self.open_at(
            &at,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
            creator.mode & 0o7777,
        );
        let undo = || {
            let _ = rustix::fs::unlinkat(at.fd(), &at.rel, AtFlags::empty());
            self.drop_long_name(&dir, &enc);
        };
        let (ino, st) = match created {
            Ok(backing) => {
                self.settle_new(&at, &dir, creator, FileType::RegularFile)
                    .inspect_err(|_| undo())?;
                let sealed = SealedFile::create(&self.ciphers, backing, &binding).map_err(|e| {
                    undo();
                    file_errno(&e, "create")
                })?;
                let st = rustix::fs::fstat(sealed.backing()).map_err(errno_of_rustix)?;
                let file = self.shared(sealed).inspect_err(|_| undo())?;
                let ino = tree.remember(parent, enc.clone(), None, st.st_ino);
                self.insert_open(ino, file);
                (ino, st)
            }
            Err(e) if e == Errno::EEXIST && flags & libc::O_EXCL == 0 => {
                let st = self.stat_at(&at)?;
                if kind_of(st.st_mode) != Some(FileType::RegularFile) {
                    return Err(Errno::EISDIR);
                }
                let ino = tree.remember(parent, enc.clone(), None, st.st_ino);
                self.acquire_file(ino, Some((&at, &binding)))?;
                (ino, st)
            }
            Err(e) if e == Errno::EEXIST => return Err(e),
            Err(e) => {
                self.drop_long_name(&dir, &enc);
                return Err(e);
            }
        };
        drop((at, dir));
        drop(tree);
        let file = lock(&self.open)
            .get(&ino)
            .map(|e| e.file.clone())
            .ok_or(Errno::EIO)?;
        let (size, file_id) = {
            let f = file.read();
            (f.size(), f.file_id())
        };
        let kill_privs = self.kill_privs(creator.uid, flags, st.st_mode);
        let fh = self.new_fh(Handle::File {
            ino,
            file,
            file_id,
            kill_privs,
        });
        Ok((attr_of(ino, &st, Some(size)), fh))
    }

    pub(crate) fn do_unlink(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let dir = self.at(&tree, parent)?;
        let at = dir.join(&enc.0);
        let st = self.stat_at(&at)?;
        if kind_of(st.st_mode) == Some(FileType::Directory) {
            return Err(Errno::EISDIR);
        }
        let long_link = (kind_of(st.st_mode) == Some(FileType::Symlink))
            .then(|| self.long_link_of(&at))
            .flatten();
        rustix::fs::unlinkat(at.fd(), &at.rel, AtFlags::empty()).map_err(errno_of_rustix)?;
        self.drop_long_name(&dir, &enc);
        self.drop_long_link(long_link);
        drop((at, dir));
        let ino = tree.detach_backing(st.st_ino);
        if kind_of(st.st_mode) == Some(FileType::RegularFile) {
            self.file_removed(ino, st.st_size as u64);
        }
        Ok(())
    }

    /// Removes the id file (and orphan long-name side files) of an empty backing directory
    /// (ENOTEMPTY otherwise); returns the id's stored form so that a failed removal can put
    /// it back.
    fn empty_dir_for_removal(&self, at: &At<'_>) -> Result<Vec<u8>, Errno> {
        let fd = self.open_at(at, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(errno_of_rustix)?;
        let mut orphans = Vec::new();
        for entry in dir {
            let entry = entry.map_err(errno_of_rustix)?;
            let n = entry.file_name();
            match classify(n.to_bytes()) {
                BackingName::Internal => {
                    if n.to_bytes().starts_with(LONG_NAME_PREFIX.as_bytes()) {
                        orphans.push(n.to_owned());
                    }
                }
                _ => return Err(Errno::ENOTEMPTY),
            }
        }
        let mut id = Vec::new();
        {
            use std::io::Read as _;
            self.open_at(&at.join(DIR_ID_FILE), OFlags::RDONLY, 0)?
                .take(4096)
                .read_to_end(&mut id)
                .map_err(|e| errno_of(&e))?;
        }
        for orphan in orphans {
            let _ = rustix::fs::unlinkat(&fd, orphan.as_c_str(), AtFlags::empty());
        }
        rustix::fs::unlinkat(&fd, DIR_ID_FILE, AtFlags::empty()).map_err(errno_of_rustix)?;
        Ok(id)
    }

    pub(crate) fn do_rmdir(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, _) = self.enc_name(&tree, parent, name)?;
        let dir = self.at(&tree, parent)?;
        let at = dir.join(&enc.0);
        let st = self.stat_at(&at)?;
        if kind_of(st.st_mode) != Some(FileType::Directory) {
            return Err(Errno::ENOTDIR);
        }
        let id = self.empty_dir_for_removal(&at)?;
        if let Err(e) = rustix::fs::unlinkat(at.fd(), &at.rel, AtFlags::REMOVEDIR) {
            let _ = write_dir_id(self, &at, &id);
            return Err(errno_of_rustix(e));
        }
        self.drop_long_name(&dir, &enc);
        drop((at, dir));
        tree.detach_backing(st.st_ino);
        Ok(())
    }

    pub(crate) fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let mut tree = lock(&self.tree);
        let (enc, dir_id) = self.enc_name(&tree, parent, name)?;
        let (new_enc, new_dir_id) = self.enc_name(&tree, newparent, newname)?;
        let from_dir = self.at(&tree, parent)?;
        let to_dir = self.at(&tree, newparent)?;
        let from = from_dir.join(&enc.0);
        let to = to_dir.join(&new_enc.0);
        let src = self.stat_at(&from)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let target = match self.stat_at(&to) {
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
        // Regular files' headers are bound to their name: check them under the old name now,
        // re-seal them for the new one after the host rename.
        let old_binding = header_binding(&dir_id, name.as_bytes());
        let new_binding = header_binding(&new_dir_id, newname.as_bytes());
        let mut rebind = Vec::new();
        if kind_of(src.st_mode) == Some(FileType::RegularFile)
            && src.st_ino != target.map_or(0, |t| t.st_ino)
        {
            let ino = tree.ino_of_backing(src.st_ino);
            rebind.push((
                self.sealed_at(ino, &from, &old_binding)?,
                new_binding.clone(),
            ));
        }
        if let Some(t) = &target
            && exchange
            && kind_of(t.st_mode) == Some(FileType::RegularFile)
        {
            let ino = tree.ino_of_backing(t.st_ino);
            rebind.push((self.sealed_at(ino, &to, &new_binding)?, old_binding.clone()));
        }
        let mut rflags = rustix::fs::RenameFlags::empty();
        if exchange {
            rflags |= rustix::fs::RenameFlags::EXCHANGE;
        }
        // A replaced link's long target goes with it.
        let replaced_link = match &target {
            Some(t)
                if !exchange
                    && t.st_ino != src.st_ino
                    && kind_of(t.st_mode) == Some(FileType::Symlink) =>
            {
                self.long_link_of(&to)
            }
            _ => None,
        };
        // A long new name's side file goes first, the old one's last (a crash in between
        // leaves an orphan side file, never an object without one).
        self.put_long_name(&to_dir, &new_enc)?;
        if let Err(e) = rustix::fs::renameat_with(from.fd(), &from.rel, to.fd(), &to.rel, rflags) {
            if let Some(id) = removed_id {
                let _ = write_dir_id(self, &to, &id);
            }
            if target.is_none() {
                self.drop_long_name(&to_dir, &new_enc);
            }
            return Err(errno_of_rustix(e));
        }
        self.drop_long_link(replaced_link);
        let same_name = parent == newparent && enc == new_enc;
        if !exchange && !same_name && src.st_ino != target.map_or(0, |t| t.st_ino) {
            self.drop_long_name(&from_dir, &enc);
        }
        drop((from, to, from_dir, to_dir));
        for (file, binding) in rebind {
            let f = file.read();
            f.rebind(&self.ciphers, &binding)
                .map_err(|e| file_errno(&e, "rename"))?;
        }
        match target {
            Some(t) if exchange => {
                if let Some(ino) = tree.ino_of_backing(t.st_ino)
                    && let Some(node) = tree.get_mut(ino)
                {
                    node.parent = parent;
                    node.name = enc.0.clone().into();
                    node.long = enc.1.clone();
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
            node.name = new_enc.0.into();
            node.long = new_enc.1;
        }
        Ok(())
    }

    /// The sealed file at backing `path`: the open state if `ino` is open, else freshly opened
    /// (which checks its header against `binding`).
    fn sealed_at(
        &self,
        ino: Option<u64>,
        at: &At<'_>,
        binding: &[u8],
    ) -> Result<crate::fs::SharedFile, Errno> {
        if let Some(ino) = ino
            && let Some(e) = lock(&self.open).get(&ino)
        {
            return Ok(e.file.clone());
        }
        let backing = self.open_at(at, OFlags::RDWR, 0)?;
        let sealed = SealedFile::open(&self.ciphers, backing, binding)
            .map_err(|e| file_errno(&e, "rename"))?;
        self.shared(sealed)
    }

    /// Writes and replies. A large write (at least [`WRITE_BEHIND_MIN`]) is acknowledged as
    /// soon as it is ordered (under the file lock) and accounted (quota reserved); failures
    /// after the acknowledgement are reported at the next write, flush (close) or fsync.
    /// A large append at the end of the file takes the pipeline (`pipe.rs`): ordered in a
    /// few microseconds, sealed without the lock, landed in order by whichever thread is free,
    /// so it does not wait for the previous write's `pwrite`. Any other large write waits for
    /// the file to settle, then seals and writes under the lock; the blocks that do not depend
    /// on the file's state are sealed before the lock is taken (`SealedFile::preseal`).
    pub(crate) fn do_write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        append: bool,
        reply: ReplyWrite,
    ) {
        let (file, file_id, kill_privs) = match lock(&self.handles).get_mut(&fh) {
            Some(Handle::File {
                file,
                file_id,
                kill_privs,
                ..
            }) => (file.clone(), *file_id, std::mem::take(kill_privs)),
            _ => return reply.error(Errno::EBADF),
        };
        if kill_privs {
            let f = file.read();
            let cleared = rustix::fs::fstat(f.backing()).and_then(|st| {
                let mut mode = st.st_mode & 0o7777 & !libc::S_ISUID;
                if mode & libc::S_IXGRP != 0 {
                    mode &= !libc::S_ISGID;
                }
                rustix::fs::fchmod(f.backing(), Mode::from_raw_mode(mode))
            });
            if let Err(e) = cleared {
                return reply.error(errno_of_rustix(e));
            }
        }
        let early = data.len() >= WRITE_BEHIND_MIN;
        let reply = if early {
            match self.try_append(&file, offset, data, append, reply) {
                Some(r) => r,
                None => return,
            }
        } else {
            reply
        };
        // Seal what does not depend on the file's state before taking its lock. A failure
        // here just leaves the work to the locked path, which reports it.
        let pre = if !append && early {
            SealedFile::preseal(&self.ciphers, &file_id, offset, data).unwrap_or(None)
        } else {
            None
        };
        let mut f = file.write();
        if let Some(e) = f.take_deferred() {
            return reply.error(Errno::from_i32(e));
        }
        let offset = if append { f.size() } else { offset };
        let old = f.size();
        let Some(end) = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= MAX_FILE_SIZE)
        else {
            return reply.error(Errno::EFBIG);
        };
        if let Err(e) = self.quota.reserve(end.saturating_sub(old)) {
            return reply.error(e);
        }
        let mut reply = Some(reply);
        if early && let Some(r) = reply.take() {
            r.written(data.len() as u32);
        }
        let res = f.write_presealed(&self.ciphers, offset, data, pre);
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

    /// The pipelined path of a large append (see `pipe.rs`): `Some(reply)` back if this write
    /// does not qualify (not at the end, last block unknown, a failure pending), else it is
    /// answered here.
    fn try_append(
        &self,
        file: &crate::fs::SharedFile,
        offset: u64,
        data: &[u8],
        append: bool,
        reply: ReplyWrite,
    ) -> Option<ReplyWrite> {
        let Some(mut f) = file.write_for_append() else {
            return Some(reply);
        };
        if let Some(e) = f.take_deferred() {
            reply.error(Errno::from_i32(e));
            return None;
        }
        let size = f.size();
        let too_big = size + data.len() as u64 > MAX_FILE_SIZE;
        if (!append && offset != size) || (size > 0 && f.tail().is_none()) || too_big {
            return Some(reply);
        }
        if let Err(e) = self.quota.reserve(data.len() as u64) {
            reply.error(e);
            return None;
        }
        let Some(plan) = f.plan_append(data) else {
            self.quota.release(data.len() as u64);
            return Some(reply);
        };
        let (ticket, mut buf) = file.issue(&f, (plan.offset, &plan.head));
        drop(f);
        reply.written(data.len() as u32);
        let sealed = crate::pipe::seal_append(&self.ciphers, &plan, data, &mut buf);
        let (at, len, failed) = match sealed {
            Ok((at, len)) => (at, len, None),
            Err(e) => (0, 0, Some(file_errno(&e, "write").code())),
        };
        let chunk = crate::pipe::Chunk {
            at,
            buf,
            len,
            size: plan.offset + data.len() as u64,
            tail: plan.tail,
            failed,
        };
        file.submit(&self.ciphers, ticket, chunk);
        None
    }

    /// Reports (once) an error deferred by an early-acknowledged write.
    pub(crate) fn deferred_error(&self, fh: u64) -> Result<crate::fs::SharedFile, Errno> {
        let file = match lock(&self.handles).get(&fh) {
            Some(Handle::File { file, .. }) => file.clone(),
            _ => return Err(Errno::EBADF),
        };
        let mut f = file.write();
        match f.take_deferred() {
            Some(e) => Err(Errno::from_i32(e)),
            None => {
                drop(f);
                Ok(file)
            }
        }
    }
}

fn write_dir_id(fs: &SealFs, dir: &At<'_>, id: &[u8]) -> Result<(), Errno> {
    use std::io::Write;
    let mut f = fs.open_at(
        &dir.join(DIR_ID_FILE),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        0o400,
    )?;
    f.write_all(id).map_err(|e: io::Error| errno_of(&e))
}
