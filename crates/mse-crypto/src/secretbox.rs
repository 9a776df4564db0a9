//! One encrypted file of a code package: libsodium `secretbox` with the nonce in front,
//! `nonce(24) ‖ Poly1305 tag(16) ‖ XSalsa20 ciphertext`, exactly what PyNaCl's
//! `SecretBox.encrypt(data, nonce)` returns.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};

use crate::CodeKey;

/// XSalsa20 nonce length, the first bytes of an encrypted file.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length, right after the nonce.
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted file has in addition to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Why an encrypted file could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretboxError {
    /// Shorter than [`OVERHEAD`], so not even a nonce and tag.
    #[error("too short to be an encrypted file ({len} bytes, at least {OVERHEAD} expected)")]
    TooShort {
        /// Length of the input, in bytes.
        len: usize,
    },
    /// The tag does not verify: modified ciphertext, or another key.
    #[error("integrity check failed: the file was modified or the key is wrong")]
    Integrity,
}

/// Encrypts `plaintext` under `key` with the given nonce.
pub fn encrypt_file(key: &CodeKey, nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(plaintext);
    let cipher = XSalsa20Poly1305::new(key.as_bytes().into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", &mut out[OVERHEAD..])
        // XSalsa20 accepts up to 2^64 bytes; a Vec cannot be that large.
        .expect("secretbox encryption has no failure mode below 2^64 bytes");
    out[NONCE_LEN..OVERHEAD].copy_from_slice(&tag);
    out
}

/// Decrypts an encrypted file; nothing is returned unless the tag verifies.
pub fn decrypt_file(key: &CodeKey, data: &[u8]) -> Result<Vec<u8>, SecretboxError> {
    if data.len() < OVERHEAD {
        return Err(SecretboxError::TooShort { len: data.len() });
    }
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    let mut plain = ciphertext.to_vec();
    let cipher = XSalsa20Poly1305::new(key.as_bytes().into());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            b"",
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| SecretboxError::Integrity)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_layout() {
        let key = CodeKey::from_bytes([1; 32]);
        let nonce = [2u8; 24];
        let ct = encrypt_file(&key, &nonce, b"hello");
        assert_eq!(ct.len(), 5 + OVERHEAD);
        assert_eq!(&ct[..24], &nonce);
        assert_eq!(decrypt_file(&key, &ct).unwrap(), b"hello");
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let key = CodeKey::from_bytes([1; 32]);
        let ct = encrypt_file(&key, &[3u8; 24], b"some plaintext");
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                decrypt_file(&key, &bad),
                Err(SecretboxError::Integrity),
                "byte {i}"
            );
        }
        assert_eq!(
            decrypt_file(&key, &ct[..39]),
            Err(SecretboxError::TooShort { len: 39 })
        );
    }

    #[test]
    fn wrong_key_is_an_integrity_error() {
        let ct = encrypt_file(&CodeKey::from_bytes([1; 32]), &[0u8; 24], b"x");
        assert_eq!(
            decrypt_file(&CodeKey::from_bytes([2; 32]), &ct),
            Err(SecretboxError::Integrity)
        );
    }
}
