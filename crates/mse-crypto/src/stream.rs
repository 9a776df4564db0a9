//! The package's `secretbox` format for files too large to hold in memory. The format puts the
//! Poly1305 tag BEFORE the ciphertext, so a file is read twice: once to compute the tag (the
//! ciphertext is made and dropped block by block), once to produce the ciphertext. Memory stays
//! one buffer whatever the file size; the bytes are exactly [`crate::encrypt_file`]'s.

use std::io::{self, Read};

use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroize;

use crate::CodeKey;
use crate::secretbox::{NONCE_LEN, TAG_LEN};

const BUF: usize = 64 * 1024;

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
    let (mut cipher, mut mac) = init(key, nonce);
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = fill(&mut plaintext, &mut buf)?;
        cipher.apply_keystream(&mut buf[..n]);
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
    cipher: XSalsa20,
}

impl<R: Read> Encrypting<R> {
    pub fn new(key: &CodeKey, nonce: &[u8; NONCE_LEN], inner: R) -> Self {
        let (cipher, _) = init(key, nonce);
        Encrypting { inner, cipher }
    }
}

impl<R: Read> Read for Encrypting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.cipher.apply_keystream(&mut buf[..n]);
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
        for len in [0usize, 1, 15, 16, 17, BUF - 1, BUF, BUF + 1, 3 * BUF + 5] {
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
