//! An open sealed file shared by its handles, and the pipeline that lands streaming appends.
//!
//! A large append at the end of a file whose last block is known ([`SealedFile::plan_append`])
//! is ordered under the file's lock in a few microseconds (size, quota, a ticket), acknowledged,
//! sealed without any lock, and queued; whichever FUSE thread finds no one landing the queue
//! writes the queued appends to the backing file in ticket order (consecutive appends re-seal
//! the same boundary block, so their order on disk matters). A stream of writes therefore does
//! not wait for the previous write's `pwrite`: one thread receives and seals while the other
//! writes to the backing file.
//!
//! Every other access first *settles* the file ([`FileState::read`], [`FileState::write`]): it
//! waits until every ordered append has landed, so reads, truncates, fsync and slow-path writes
//! see exactly what was acknowledged. If landing fails, the file is cut back to the last append
//! that landed (its last block re-sealed as last), the later queued appends are dropped, their
//! quota is released and the errno is reported at the next write, flush (close) or fsync,
//! like a page-cache write-back error.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::crypto::{BLOCK_OVERHEAD, BLOCK_SIZE, Ciphers, FILE_ID_LEN, NONCE_LEN, backing_size};
use crate::crypto::{block_count, block_offset};
use crate::file::{FileError, SealedFile, for_each_block};
use crate::fs::Quota;

/// Sealed appends that may wait in the queue before their senders are held back (bounds
/// memory: about 1 MiB each).
const MAX_QUEUED: usize = 4;
/// Sealing buffers the whole mount keeps for reuse (no allocation and zero-fill per request;
/// about 1 MiB each).
const MAX_POOLED: usize = 8;

/// An append ordered by [`SealedFile::plan_append`], to be sealed outside the file's lock by
/// [`seal_append`].
#[derive(Debug)]
pub struct AppendPlan {
    pub(crate) file_id: [u8; FILE_ID_LEN],
    /// The plaintext size before the append (where it starts).
    pub offset: u64,
    /// Plaintext of the old last block (empty if the file was empty): that block is re-sealed
    /// as part of the append (no longer last, or completed with the appended bytes).
    pub head: Vec<u8>,
    /// Plaintext of the new last block, once the append has landed.
    pub tail: Vec<u8>,
}

/// Seals the append `plan` of `data` into `buf` (grown as needed, never shrunk); returns the
/// backing offset and length of the sealed bytes: the re-sealed old last block (if any) and
/// every appended block, the final one flagged "last".
pub fn seal_append(
    c: &Ciphers,
    plan: &AppendPlan,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(u64, usize), FileError> {
    let bs = BLOCK_SIZE as u64;
    let (offset, head) = (plan.offset, &plan.head);
    let end = offset + data.len() as u64;
    let first = if head.is_empty() {
        offset / bs
    } else {
        (offset - 1) / bs
    };
    let new_last = (end - 1) / bs;
    let sealed_len = (block_offset(new_last) - block_offset(first)) as usize
        + (end - new_last * bs) as usize
        + BLOCK_OVERHEAD;
    if buf.len() < sealed_len {
        buf.resize(sealed_len, 0);
    }
    let count = (new_last - first + 1) as usize;
    let mut nonces = vec![0u8; NONCE_LEN * count];
    crate::crypto::random(&mut nonces)?;
    // The old last block completed with the start of `data` (or just re-flagged).
    let mut merged = [0u8; BLOCK_SIZE];
    let head_take = if head.is_empty() {
        0
    } else {
        (BLOCK_SIZE - head.len()).min(data.len())
    };
    merged[..head.len()].copy_from_slice(head);
    merged[head.len()..head.len() + head_take].copy_from_slice(&data[..head_take]);
    for_each_block(&mut buf[..sealed_len], |i, chunk| {
        let b = first + i as u64;
        let plain: &[u8] = if i == 0 && !head.is_empty() {
            &merged[..head.len() + head_take]
        } else {
            let s = (b * bs - offset) as usize;
            &data[s..s + chunk.len() - BLOCK_OVERHEAD]
        };
        let nonce: &[u8; NONCE_LEN] = nonces[i * NONCE_LEN..(i + 1) * NONCE_LEN]
            .try_into()
            .expect("nonce slice has NONCE_LEN bytes");
        c.seal_block(&plan.file_id, b, b == new_last, nonce, plain, chunk)
    })?;
    Ok((block_offset(first), sealed_len))
}

/// Sealing buffers shared by every file of a mount (so that idle open files hold none).
#[derive(Default)]
pub struct BufPool(Mutex<Vec<Vec<u8>>>);

impl BufPool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        let mut bufs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if bufs.len() < MAX_POOLED {
            bufs.push(buf);
        }
    }
}

/// An append sealed and waiting to land.
pub struct Chunk {
    /// Where the sealed bytes go in the backing file, and the bytes (`buf[..len]`).
    pub at: u64,
    pub buf: Vec<u8>,
    pub len: usize,
    /// Plaintext size and last block once landed.
    pub size: u64,
    pub tail: Vec<u8>,
    /// Set if sealing failed: the append cannot land.
    pub failed: Option<i32>,
}

struct Pipe {
    issued: u64,
    landed: u64,
    queue: BTreeMap<u64, Chunk>,
    draining: bool,
    /// The file as of the last landed append (valid while appends are in flight).
    landed_size: u64,
    landed_tail: Option<Vec<u8>>,
    /// First landing failure (errno) not yet folded back into the file state.
    failed: Option<i32>,
    /// Threads waiting on `changed` (a wake-up is a system call even with none).
    waiters: usize,
}

/// An open sealed file: its state behind a lock, and the append pipeline.
pub struct FileState {
    sealed: RwLock<SealedFile>,
    /// A second descriptor of the backing file, for landing appends without the lock.
    backing: File,
    file_id: [u8; FILE_ID_LEN],
    quota: Arc<Quota>,
    bufs: Arc<BufPool>,
    pipe: Mutex<Pipe>,
    changed: Condvar,
}

impl FileState {
    pub fn new(sealed: SealedFile, quota: Arc<Quota>, bufs: Arc<BufPool>) -> std::io::Result<Self> {
        let backing = sealed.backing().try_clone()?;
        let file_id = sealed.file_id();
        Ok(Self {
            sealed: RwLock::new(sealed),
            backing,
            file_id,
            quota,
            bufs,
            pipe: Mutex::new(Pipe {
                issued: 0,
                landed: 0,
                queue: BTreeMap::new(),
                draining: false,
                landed_size: 0,
                landed_tail: None,
                failed: None,
                waiters: 0,
            }),
            changed: Condvar::new(),
        })
    }

    fn pipe(&self) -> MutexGuard<'_, Pipe> {
        self.pipe.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, mut p: MutexGuard<'a, Pipe>) -> MutexGuard<'a, Pipe> {
        p.waiters += 1;
        let mut p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        p.waiters -= 1;
        p
    }

    fn notify(&self, p: &Pipe) {
        if p.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// Exclusive access once every ordered append has landed (a landing failure is folded back
    /// into the state: size, quota, and the errno deferred to the next write/flush/fsync).
    pub fn write(&self) -> RwLockWriteGuard<'_, SealedFile> {
        let mut g = self.sealed.write().unwrap_or_else(|p| p.into_inner());
        // New appends need this lock to be ordered, so the pipe only drains from here on.
        let mut p = self.pipe();
        while p.landed != p.issued {
            p = self.wait(p);
        }
        if let Some(errno) = p.failed.take() {
            let size = p.landed_size;
            self.quota.release(g.size().saturating_sub(size));
            g.rewind(size, p.landed_tail.take());
            g.defer_error(errno);
        }
        g
    }

    /// Shared access once every ordered append has landed.
    pub fn read(&self) -> RwLockReadGuard<'_, SealedFile> {
        loop {
            let g = self.sealed.read().unwrap_or_else(|p| p.into_inner());
            let mut p = self.pipe();
            while p.landed != p.issued {
                p = self.wait(p);
            }
            if p.failed.is_none() {
                return g;
            }
            drop((p, g));
            drop(self.write());
        }
    }

    /// Exclusive access without waiting for appends in flight: only for ordering a new one.
    /// `None` if a landing failure is pending (the caller takes the settled path instead).
    pub fn write_for_append(&self) -> Option<RwLockWriteGuard<'_, SealedFile>> {
        let g = self.sealed.write().unwrap_or_else(|p| p.into_inner());
        if self.pipe().failed.is_some() {
            return None;
        }
        Some(g)
    }

    /// Takes a ticket for an append just ordered under `g` (the caller still holds the lock,
    /// so tickets follow file order), and a buffer to seal it into. `before` = the file's size
    /// and last block before the append.
    pub fn issue(
        &self,
        _g: &RwLockWriteGuard<'_, SealedFile>,
        before: (u64, &[u8]),
    ) -> (u64, Vec<u8>) {
        let mut p = self.pipe();
        // (A failure that struck since `write_for_append` keeps its cut-back point: this
        // append is then dropped with the others.)
        if p.landed == p.issued && p.failed.is_none() {
            p.landed_size = before.0;
            p.landed_tail = (before.0 > 0).then(|| before.1.to_vec());
        }
        let ticket = p.issued;
        p.issued += 1;
        drop(p);
        (ticket, self.bufs.take())
    }

    /// Queues the sealed append `ticket` and lands queued appends in order unless another
    /// thread already does; holds the caller back while the queue is full.
    pub fn submit(&self, c: &Ciphers, ticket: u64, chunk: Chunk) {
        let mut p = self.pipe();
        p.queue.insert(ticket, chunk);
        loop {
            if !p.draining {
                break;
            }
            if p.queue.len() <= MAX_QUEUED || !p.queue.contains_key(&ticket) {
                return;
            }
            p = self.wait(p);
        }
        p.draining = true;
        loop {
            let next = p.landed;
            let Some(chunk) = p.queue.remove(&next) else {
                break;
            };
            let skip = p.failed.is_some();
            drop(p);
            let res = match chunk.failed {
                _ if skip => Ok(()),
                Some(errno) => Err(errno),
                None => self
                    .backing
                    .write_all_at(&chunk.buf[..chunk.len], chunk.at)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
            };
            p = self.pipe();
            match res {
                Ok(()) if !skip => {
                    p.landed_size = chunk.size;
                    p.landed_tail = Some(chunk.tail);
                }
                Ok(()) => {}
                Err(errno) => {
                    tracing::warn!(
                        "sealfs: write landing after its acknowledgement failed: errno {errno}"
                    );
                    p.failed = Some(errno);
                    let (size, tail) = (p.landed_size, p.landed_tail.clone());
                    drop(p);
                    let repaired = self.cut_back(c, size, tail.as_deref());
                    p = self.pipe();
                    if !repaired {
                        // The last block is unknown: a later append must read it back.
                        p.landed_tail = None;
                    }
                }
            }
            self.bufs.give(chunk.buf);
            p.landed += 1;
            self.notify(&p);
        }
        p.draining = false;
        self.notify(&p);
    }

    /// Restores the backing file to `size` plaintext bytes whose last block is `tail` after a
    /// failed landing (which may have overwritten that block as "not last"). Best effort: if
    /// this fails too, reads of the damaged block fail authentication (EIO), never forge.
    fn cut_back(&self, c: &Ciphers, size: u64, tail: Option<&[u8]>) -> bool {
        let res = (|| -> Result<(), crate::file::FileError> {
            if size > 0 {
                let tail = tail.ok_or(crate::error::FormatError::Seal)?;
                let b = block_count(size) - 1;
                let mut nonce = [0u8; NONCE_LEN];
                crate::crypto::random(&mut nonce)?;
                let mut sealed = vec![0u8; tail.len() + BLOCK_OVERHEAD];
                debug_assert_eq!(b * BLOCK_SIZE as u64 + tail.len() as u64, size);
                c.seal_block(&self.file_id, b, true, &nonce, tail, &mut sealed)?;
                self.backing.write_all_at(&sealed, block_offset(b))?;
            }
            self.backing.set_len(backing_size(size))?;
            Ok(())
        })();
        if let Err(e) = &res {
            tracing::warn!("sealfs: cutting a file back after a failed write failed: {e}");
        }
        res.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SealKey;

    struct T {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        c: Ciphers,
        quota: Arc<Quota>,
        fs: FileState,
    }

    fn setup() -> T {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let c = Ciphers::new(&SealKey::from_bytes([3; 32]));
        let sealed = SealedFile::create(&c, f, b"b").unwrap();
        let quota = Arc::new(Quota::new(1 << 30, 0));
        let fs = FileState::new(sealed, quota.clone(), Arc::default()).unwrap();
        T {
            _dir: dir,
            path,
            c,
            quota,
            fs,
        }
    }

    /// Orders and seals an append as `do_write` does; returns its ticket and chunk.
    fn order(t: &T, data: &[u8]) -> (u64, Chunk) {
        let mut g = t.fs.write_for_append().expect("no failure pending");
        t.quota.reserve(data.len() as u64).unwrap();
        let plan = g.plan_append(data).unwrap();
        let (ticket, mut buf) = t.fs.issue(&g, (plan.offset, &plan.head));
        drop(g);
        let (at, len) = seal_append(&t.c, &plan, data, &mut buf).unwrap();
        let chunk = Chunk {
            at,
            buf,
            len,
            size: plan.offset + data.len() as u64,
            tail: plan.tail,
            failed: None,
        };
        (ticket, chunk)
    }

    fn on_disk(t: &T) -> Vec<u8> {
        let f = std::fs::File::open(&t.path).unwrap();
        let sf = SealedFile::open(&t.c, f, b"b").unwrap();
        sf.read(&t.c, 0, usize::MAX).unwrap()
    }

    #[test]
    fn appends_land_in_ticket_order_whatever_the_submission_order() {
        let t = setup();
        let (a, b, c) = (vec![1u8; 200_001], vec![2u8; 1 << 20], vec![3u8; 131_072]);
        let (ta, ca) = order(&t, &a);
        let (tb, cb) = order(&t, &b);
        let (tc, cc) = order(&t, &c);
        t.fs.submit(&t.c, tc, cc);
        t.fs.submit(&t.c, tb, cb);
        assert_eq!(t.fs.pipe().landed, 0);
        t.fs.submit(&t.c, ta, ca);
        assert_eq!(t.fs.pipe().landed, 3);
        let want = [a, b, c].concat();
        assert_eq!(t.fs.read().size(), want.len() as u64);
        assert_eq!(on_disk(&t), want);
        assert_eq!(t.quota.used(), want.len() as u64);
    }

    /// A landing failure cuts the file back to the last append that landed (readable, last
    /// block flagged), drops the later ones, frees their quota and is reported once.
    #[test]
    fn a_landing_failure_cuts_back_and_is_reported_once() {
        let t = setup();
        let (a, b, c) = (vec![1u8; 300_000], vec![2u8; 200_000], vec![3u8; 150_000]);
        let (ta, ca) = order(&t, &a);
        let (tb, mut cb) = order(&t, &b);
        let (tc, cc) = order(&t, &c);
        t.fs.submit(&t.c, ta, ca);
        // `b` re-seals `a`'s last block as "not last" and lands partly before failing.
        t.fs.backing.write_all_at(&cb.buf[..5000], cb.at).unwrap();
        cb.failed = Some(libc::ENOSPC);
        t.fs.submit(&t.c, tb, cb);
        assert!(t.fs.write_for_append().is_none());
        t.fs.submit(&t.c, tc, cc);
        assert_eq!(on_disk(&t), a);
        {
            let r = t.fs.read();
            assert_eq!(r.size(), a.len() as u64);
        }
        let mut g = t.fs.write();
        assert_eq!(g.take_deferred(), Some(libc::ENOSPC));
        assert_eq!(g.take_deferred(), None);
        assert_eq!(t.quota.used(), a.len() as u64);
        drop(g);
        // Appending works again, from the cut-back end.
        let d = vec![4u8; 140_000];
        let (td, cd) = order(&t, &d);
        t.fs.submit(&t.c, td, cd);
        assert_eq!(on_disk(&t), [a, d].concat());
    }

    /// An append ordered just as an earlier one fails (it passed `write_for_append` before the
    /// failure) is dropped too, and the cut-back point stays where the failure put it.
    #[test]
    fn an_append_ordered_during_a_failure_is_dropped_with_it() {
        let t = setup();
        let a = vec![1u8; 200_000];
        let (ta, ca) = order(&t, &a);
        t.fs.submit(&t.c, ta, ca);
        let (tb, mut cb) = order(&t, &[2u8; 150_000]);
        cb.failed = Some(libc::EIO);
        // `c` was ordered before `b` failed; it is sealed and submitted after.
        let c = vec![3u8; 140_000];
        let mut g = t.fs.sealed.write().unwrap();
        t.quota.reserve(c.len() as u64).unwrap();
        let plan = g.plan_append(&c).unwrap();
        t.fs.submit(&t.c, tb, cb);
        let (tc, mut buf) = t.fs.issue(&g, (plan.offset, &plan.head));
        drop(g);
        let (at, len) = seal_append(&t.c, &plan, &c, &mut buf).unwrap();
        let size = plan.offset + c.len() as u64;
        let chunk = Chunk {
            at,
            buf,
            len,
            size,
            tail: plan.tail,
            failed: None,
        };
        t.fs.submit(&t.c, tc, chunk);
        let mut g = t.fs.write();
        assert_eq!(g.size(), a.len() as u64);
        assert_eq!(g.take_deferred(), Some(libc::EIO));
        assert_eq!(t.quota.used(), a.len() as u64);
        drop(g);
        assert_eq!(on_disk(&t), a);
    }
}
