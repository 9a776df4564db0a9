//! The package's `secretbox` format for files too large to hold in memory. The format puts the
//! Poly1305 tag BEFORE the ciphertext, so a file is read twice: once to compute the tag (the
//! ciphertext is made and dropped block by block), once to produce the ciphertext. Memory stays
//! one buffer whatever the file size; the bytes are exactly [`crate::encrypt_file`]'s.

use std::io::{self, Read};

use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use rayon::prelude::*;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use zeroize::Zeroize;

use crate::CodeKey;
use crate::secretbox::{NONCE_LEN, TAG_LEN};

/// Plaintext read at once; encrypted in parallel slices of [`SLICE`] bytes.
const BUF: usize = 4 << 20;
const SLICE: usize = 512 << 10;

/// Applies the keystream to `buf`, which starts `offset` bytes into the message (after the 32
/// bytes of the Poly1305 key), in parallel slices: XSalsa20 is seekable.
fn xor_at(key: &CodeKey, nonce: &[u8; NONCE_LEN], offset: u64, buf: &mut [u8]) {
    buf.par_chunks_mut(SLICE).enumerate().for_each(|(i, part)| {
        let mut cipher = XSalsa20::new(key.as_bytes().into(), nonce.into());
        cipher.seek(32 + offset + (i * SLICE) as u64);
        cipher.apply_keystream(part);
    });
}

/// The keystream positioned after the 32 bytes that key Poly1305 (libsodium's layout), and
/// that Poly1305.
fn init(key: &CodeKey, nonce: &[u8; NONCE_LEN]) -> (XSalsa20, Poly1305) {
    let mut cipher = XSalsa20::new(key.as_bytes().into(), nonce.into());
    let mut mac_key = [0u8; 32];
    cipher.apply_keystream(&mut mac_key);
    let mac = Poly1305::new((&mac_key).into());
    mac_key.zeroize();
    (cipher, mac)
}

/// Reads until `buf` is full or the input ends; returns how many bytes it holds.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// First pass: the tag of `plaintext` (read to its end) and its length.
pub fn tag_of(
    key: &CodeKey,
    nonce: &[u8; NONCE_LEN],
    mut plaintext: impl Read,
) -> io::Result<([u8; TAG_LEN], u64)> {
    let (_, mut mac) = init(key, nonce);
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = fill(&mut plaintext, &mut buf)?;
        xor_at(key, nonce, total, &mut buf[..n]);
        total += n as u64;
        if n < BUF {
            // The last, partial block is padded the secretbox way (compute_unpadded).
            let tag = mac.compute_unpadded(&buf[..n]);
            return Ok((tag.into(), total));
        }
        // BUF is a multiple of Poly1305's 16-byte block.
        let blocks: Vec<poly1305::Block> = buf
            .chunks_exact(16)
            .map(|c| *poly1305::Block::from_slice(c))
            .collect();
        mac.update(&blocks);
    }
}

/// Second pass: a reader of the ciphertext of `plaintext` (XSalsa20 only; the caller writes
/// nonce and tag first).
pub struct Encrypting<R> {
    inner: R,
    key: CodeKey,
    nonce: [u8; NONCE_LEN],
    /// Ciphertext not yet handed out: `buf[at..len]`.
    buf: Vec<u8>,
    at: usize,
    len: usize,
    /// Message offset of `buf[0]`.
    offset: u64,
}

impl<R: Read> Encrypting<R> {
    pub fn new(key: &CodeKey, nonce: &[u8; NONCE_LEN], inner: R) -> Self {
        Encrypting {
            inner,
            key: key.clone(),
            nonce: *nonce,
            buf: vec![0u8; BUF],
            at: 0,
            len: 0,
            offset: 0,
        }
    }
}

impl<R: Read> Read for Encrypting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.len {
            self.offset += self.len as u64;
            self.len = fill(&mut self.inner, &mut self.buf)?;
            self.at = 0;
            xor_at(
                &self.key,
                &self.nonce,
                self.offset,
                &mut self.buf[..self.len],
            );
        }
        let n = out.len().min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_as_the_in_memory_secretbox() {
        let key = CodeKey::from_hex(&"42".repeat(32)).unwrap();
        let nonce = [7u8; NONCE_LEN];
        for len in [
            0usize,
            1,
            15,
            16,
            17,
            SLICE + 3,
            BUF - 1,
            BUF,
            BUF + 1,
            2 * BUF + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let whole = crate::encrypt_file(&key, &nonce, &plain);
            let (tag, n) = tag_of(&key, &nonce, &plain[..]).unwrap();
            assert_eq!(n, len as u64);
            let mut streamed = nonce.to_vec();
            streamed.extend_from_slice(&tag);
            Encrypting::new(&key, &nonce, &plain[..])
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(streamed, whole, "length {len}");
        }
    }
}
