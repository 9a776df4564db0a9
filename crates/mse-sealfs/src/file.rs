//! Reading and writing one sealed file through its backing file.
//!
//! Invariant kept by every operation: a file of `size` plaintext bytes is the header followed by
//! exactly `block_count(size)` sealed blocks, all full except possibly the last, and only the last
//! one is sealed with the "last" flag. Holes are materialised as sealed zero blocks, so an all-zero
//! backing block is never accepted as plaintext zeros.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::crypto::{
    BLOCK_OVERHEAD, BLOCK_SIZE, CIPHER_BLOCK_SIZE, Ciphers, FILE_ID_LEN, HEADER_LEN, NONCE_LEN,
    backing_size, block_count, block_offset, plain_size,
};
use crate::error::FormatError;

/// Largest range re-sealed in one go when zero-filling a gap (bounds memory use).
const FILL_CHUNK: u64 = 1 << 20;

/// Why an operation on a sealed file failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("backing I/O: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl FileError {
    /// The errno reported to the application: authentication failures are EIO.
    pub fn errno(&self) -> i32 {
        match self {
            FileError::Io(e) => e.raw_os_error().unwrap_or(libc_eio()),
            FileError::Format(_) => libc_eio(),
        }
    }
}

const fn libc_eio() -> i32 {
    5
}

/// An open sealed file: the backing file, its id and its plaintext size.
#[derive(Debug)]
pub struct SealedFile {
    file: File,
    file_id: [u8; FILE_ID_LEN],
    size: u64,
}

impl SealedFile {
    /// Writes a fresh header into an empty backing file.
    pub fn create(c: &Ciphers, file: File) -> Result<Self, FileError> {
        let (file_id, header) = c.new_header()?;
        file.write_all_at(&header, 0)?;
        file.set_len(HEADER_LEN as u64)?;
        Ok(Self {
            file,
            file_id,
            size: 0,
        })
    }

    /// Opens an existing backing file: checks its header and derives the plaintext size.
    pub fn open(c: &Ciphers, file: File) -> Result<Self, FileError> {
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(FormatError::BackingLength { got: len }.into());
        }
        file.read_exact_at(&mut header, 0)?;
        let file_id = c.open_header(&header)?;
        let size = plain_size(len)?;
        Ok(Self {
            file,
            file_id,
            size,
        })
    }

    /// Plaintext size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The backing file (for fsync and attributes).
    pub fn backing(&self) -> &File {
        &self.file
    }

    /// Reads up to `len` plaintext bytes at `offset`; every block read is authenticated.
    pub fn read(&self, c: &Ciphers, offset: u64, len: usize) -> Result<Vec<u8>, FileError> {
        if offset >= self.size || len == 0 {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset.saturating_add(len as u64));
        let first = offset / BLOCK_SIZE as u64;
        let last = (end - 1) / BLOCK_SIZE as u64;
        let nblocks = block_count(self.size);
        let start_off = block_offset(first);
        let end_off = backing_size(self.size).min(block_offset(last + 1));
        let mut sealed = vec![0u8; (end_off - start_off) as usize];
        self.file.read_exact_at(&mut sealed, start_off)?;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (i, chunk) in sealed.chunks_mut(CIPHER_BLOCK_SIZE).enumerate() {
            let b = first + i as u64;
            let plain = c.open_block(&self.file_id, b, b + 1 == nblocks, chunk)?;
            let block_start = b * BLOCK_SIZE as u64;
            let from = offset.saturating_sub(block_start) as usize;
            let to = ((end - block_start) as usize).min(plain.len());
            out.extend_from_slice(&plain[from..to]);
        }
        Ok(out)
    }

    /// Writes `data` at `offset`, zero-filling any gap after the current end.
    pub fn write(&mut self, c: &Ciphers, offset: u64, data: &[u8]) -> Result<(), FileError> {
        self.fill_to(c, offset)?;
        if !data.is_empty() {
            self.write_within(c, offset, data)?;
        }
        Ok(())
    }

    /// Changes the plaintext size (growing fills with sealed zeros).
    pub fn truncate(&mut self, c: &Ciphers, new_size: u64) -> Result<(), FileError> {
        if new_size >= self.size {
            return self.fill_to(c, new_size);
        }
        if new_size == 0 {
            self.file.set_len(HEADER_LEN as u64)?;
            self.size = 0;
            return Ok(());
        }
        // Re-seal the new last block (shorter and flagged last), then cut the rest off.
        let lb = block_count(new_size) - 1;
        let keep = (new_size - lb * BLOCK_SIZE as u64) as usize;
        let mut plain = self.read_block(c, lb)?;
        plain.truncate(keep);
        let mut nonce = [0u8; NONCE_LEN];
        crate::crypto::random(&mut nonce)?;
        let mut sealed = vec![0u8; keep + BLOCK_OVERHEAD];
        c.seal_block(&self.file_id, lb, true, &nonce, &plain, &mut sealed)?;
        self.file.write_all_at(&sealed, block_offset(lb))?;
        self.file.set_len(backing_size(new_size))?;
        self.size = new_size;
        Ok(())
    }

    /// Extends the file with sealed zeros up to `target` (no-op if already that long).
    fn fill_to(&mut self, c: &Ciphers, target: u64) -> Result<(), FileError> {
        static ZEROS: [u8; FILL_CHUNK as usize] = [0u8; FILL_CHUNK as usize];
        while self.size < target {
            let n = (target - self.size).min(FILL_CHUNK);
            self.write_within(c, self.size, &ZEROS[..n as usize])?;
        }
        Ok(())
    }

    /// Decrypts block `b` of the current file.
    fn read_block(&self, c: &Ciphers, b: u64) -> Result<Vec<u8>, FileError> {
        let nblocks = block_count(self.size);
        let start = block_offset(b);
        let end = backing_size(self.size).min(block_offset(b + 1));
        let mut sealed = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut sealed, start)?;
        Ok(
            c.open_block(&self.file_id, b, b + 1 == nblocks, &mut sealed)?
                .to_vec(),
        )
    }

    /// Writes non-empty `data` at `offset <= size`: re-seals the touched blocks in one buffer and
    /// writes it with one `pwrite`. Only the first and last touched blocks can need their old
    /// content (read-modify-write); full blocks are sealed straight from `data`.
    fn write_within(&mut self, c: &Ciphers, offset: u64, data: &[u8]) -> Result<(), FileError> {
        debug_assert!(offset <= self.size && !data.is_empty());
        let bs = BLOCK_SIZE as u64;
        let old_size = self.size;
        let old_blocks = block_count(old_size);
        let end = offset + data.len() as u64;
        let new_size = old_size.max(end);
        let new_blocks = block_count(new_size);
        let first = offset / bs;
        let last = (end - 1) / bs;
        let count = (last - first + 1) as usize;

        let mut nonces = vec![0u8; NONCE_LEN * (count + 1)];
        crate::crypto::random(&mut nonces)?;
        let sealed_len = (block_offset(last)
            + ((new_size.min((last + 1) * bs) - last * bs) + BLOCK_OVERHEAD as u64))
            - block_offset(first);
        let mut out = vec![0u8; sealed_len as usize];
        let mut scratch = vec![0u8; BLOCK_SIZE];
        for (i, b) in (first..=last).enumerate() {
            let block_start = b * bs;
            let block_len = (new_size.min(block_start + bs) - block_start) as usize;
            let old_len = old_size.saturating_sub(block_start).min(bs) as usize;
            let covered_from = offset.max(block_start);
            let covered_to = end.min(block_start + bs);
            let fully_covered =
                covered_from == block_start && covered_to >= block_start + old_len as u64;
            let plain: &[u8] = if fully_covered && covered_to - block_start == block_len as u64 {
                // Whole new block content comes from `data`: no read, no copy.
                let s = (block_start - offset) as usize;
                &data[s..s + block_len]
            } else {
                scratch[..block_len].fill(0);
                if !fully_covered && b < old_blocks {
                    let old = self.read_block(c, b)?;
                    scratch[..old.len()].copy_from_slice(&old);
                }
                let dst = (covered_from - block_start) as usize;
                let src = (covered_from - offset) as usize;
                let n = (covered_to - covered_from) as usize;
                scratch[dst..dst + n].copy_from_slice(&data[src..src + n]);
                &scratch[..block_len]
            };
            let at = (block_offset(b) - block_offset(first)) as usize;
            let nonce: &[u8; NONCE_LEN] = nonces[i * NONCE_LEN..(i + 1) * NONCE_LEN]
                .try_into()
                .expect("nonce slice has NONCE_LEN bytes");
            c.seal_block(
                &self.file_id,
                b,
                b + 1 == new_blocks,
                nonce,
                plain,
                &mut out[at..at + block_len + BLOCK_OVERHEAD],
            )?;
        }
        // The old last block loses its "last" flag when the file grows past it untouched.
        let relabel = if new_blocks > old_blocks && old_blocks > 0 && old_blocks - 1 < first {
            let b = old_blocks - 1;
            let plain = self.read_block(c, b)?;
            let nonce: &[u8; NONCE_LEN] = nonces[count * NONCE_LEN..]
                .try_into()
                .expect("nonce slice has NONCE_LEN bytes");
            let mut sealed = vec![0u8; plain.len() + BLOCK_OVERHEAD];
            c.seal_block(&self.file_id, b, false, nonce, &plain, &mut sealed)?;
            Some((b, sealed))
        } else {
            None
        };
        self.file.write_all_at(&out, block_offset(first))?;
        if let Some((b, sealed)) = relabel {
            self.file.write_all_at(&sealed, block_offset(b))?;
        }
        self.size = new_size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SealKey;

    fn setup() -> (tempfile::TempDir, Ciphers, SealedFile) {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let c = Ciphers::new(&SealKey::from_bytes([7; 32]));
        let sf = SealedFile::create(&c, f).unwrap();
        (dir, c, sf)
    }

    fn reopen(dir: &tempfile::TempDir, c: &Ciphers) -> Result<SealedFile, FileError> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("f"))
            .unwrap();
        SealedFile::open(c, f)
    }

    /// A reference model: random writes/truncates must read back like a Vec<u8>.
    #[test]
    fn matches_a_plain_model() {
        let (dir, c, mut sf) = setup();
        let mut model: Vec<u8> = Vec::new();
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..400 {
            let op = next() % 10;
            if op < 7 {
                let off = next() % 20_000;
                let len = (next() % 9000) as usize + 1;
                let byte = (step % 251) as u8 + 1;
                let data = vec![byte; len];
                sf.write(&c, off, &data).unwrap();
                let end = off as usize + len;
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[off as usize..end].copy_from_slice(&data);
            } else {
                let new = next() % 24_000;
                sf.truncate(&c, new).unwrap();
                model.resize(new as usize, 0);
            }
            assert_eq!(sf.size(), model.len() as u64, "step {step}");
        }
        assert_eq!(sf.read(&c, 0, model.len() + 10).unwrap(), model);
        let again = reopen(&dir, &c).unwrap();
        assert_eq!(again.size(), model.len() as u64);
        assert_eq!(again.read(&c, 0, model.len()).unwrap(), model);
        assert_eq!(
            again.read(&c, 5000, 100).unwrap(),
            model[5000..5100].to_vec()
        );
    }

    #[test]
    fn cutting_whole_blocks_is_detected() {
        let (dir, c, mut sf) = setup();
        sf.write(&c, 0, &vec![1u8; 3 * BLOCK_SIZE]).unwrap();
        let f = sf.backing();
        f.set_len(block_offset(2)).unwrap();
        let again = reopen(&dir, &c).unwrap();
        assert_eq!(again.size(), 2 * BLOCK_SIZE as u64);
        let err = again.read(&c, 0, 3 * BLOCK_SIZE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sealed block 1 failed authentication (wrong key, tampered, moved or truncated)"
        );
        assert_eq!(err.errno(), 5);
    }

    #[test]
    fn wrong_key_fails_at_the_header() {
        let (dir, c, mut sf) = setup();
        sf.write(&c, 0, b"hello").unwrap();
        let other = Ciphers::new(&SealKey::from_bytes([8; 32]));
        let err = reopen(&dir, &other).unwrap_err();
        assert_eq!(
            err.to_string(),
            "file header failed authentication (wrong key or tampered header)"
        );
    }

    #[test]
    fn swapped_blocks_are_detected() {
        let (dir, c, mut sf) = setup();
        sf.write(&c, 0, &vec![9u8; 2 * BLOCK_SIZE + 10]).unwrap();
        let f = sf.backing();
        let mut b0 = vec![0u8; CIPHER_BLOCK_SIZE];
        let mut b1 = vec![0u8; CIPHER_BLOCK_SIZE];
        f.read_exact_at(&mut b0, block_offset(0)).unwrap();
        f.read_exact_at(&mut b1, block_offset(1)).unwrap();
        f.write_all_at(&b1, block_offset(0)).unwrap();
        f.write_all_at(&b0, block_offset(1)).unwrap();
        let again = reopen(&dir, &c).unwrap();
        assert_eq!(
            again.read(&c, 0, 10).unwrap_err().to_string(),
            "sealed block 0 failed authentication (wrong key, tampered, moved or truncated)"
        );
    }
}
