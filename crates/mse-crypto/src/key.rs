//! The 32-byte symmetric code key and HKDF key derivation.

use std::fmt;
use std::path::Path;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The code secret key: one random 32-byte XSalsa20-Poly1305 key for every file of a package.
/// Its `Debug` never shows the bytes, so it cannot leak through a log line.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct CodeKey([u8; 32]);

/// Why a code key could not be read or decoded. No variant carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be opened or read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The key file, as displayed.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is neither 32 raw bytes nor 64 hex characters (whitespace trimmed).
    #[error("key file {path} must hold 32 raw bytes or 64 hexadecimal characters, got {len} bytes")]
    BadLength {
        /// The key file, as displayed.
        path: String,
        /// Bytes read from it (at most 4096: a bigger file is never read whole).
        len: usize,
    },
    /// A hex key that is not exactly 64 hexadecimal characters.
    #[error("code key must be 64 hexadecimal characters (32 bytes)")]
    BadHex,
}

impl CodeKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use crypto_secretbox::aead::{KeyInit, OsRng};
        let key = crypto_secretbox::XSalsa20Poly1305::generate_key(&mut OsRng);
        Self(key.into())
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes (for the cipher; never log them).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hex form, as sent in the configuration payload's `code_secret_key`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form (surrounding whitespace ignored), as [`CodeKey::to_hex`] writes it.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| KeyError::BadHex)?;
        Ok(Self(out))
    }

    /// Reads a key file: 32 raw bytes (as the original `package --encrypt` wrote) or 64 hex chars.
    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        // A key file is 32 or 64 bytes (plus whitespace): never read more than 4 KiB of it.
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut data))
            .map_err(|source| KeyError::Read {
                path: shown.clone(),
                source,
            })?;
        if data.len() == 32 {
            let mut out = [0u8; 32];
            out.copy_from_slice(&data);
            return Ok(Self(out));
        }
        let text = std::str::from_utf8(&data).unwrap_or("").trim();
        if text.len() == 64 {
            if let Ok(key) = Self::from_hex(text) {
                return Ok(key);
            }
        }
        Err(KeyError::BadLength {
            path: shown,
            len: data.len(),
        })
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

/// HKDF-SHA256 (RFC 5869) to a 32-byte key: how storage keys are bound to a measurement.
pub fn derive_key(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255*32 output limit, so expand cannot fail.
    hk.expand(info, &mut okm)
        .expect("32-byte HKDF output is always valid");
    okm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = derive_key(&ikm, &salt, &info);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = CodeKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "CodeKey(<redacted>)");
    }

    #[test]
    fn key_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [9u8; 32]).unwrap();
        assert_eq!(CodeKey::read_file(&raw).unwrap().as_bytes(), &[9u8; 32]);
        let hexf = dir.path().join("hex.key");
        std::fs::write(&hexf, format!("{}\n", hex::encode([5u8; 32]))).unwrap();
        assert_eq!(CodeKey::read_file(&hexf).unwrap().as_bytes(), &[5u8; 32]);
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, b"short").unwrap();
        let err = CodeKey::read_file(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "key file {} must hold 32 raw bytes or 64 hexadecimal characters, got 5 bytes",
                bad.display()
            )
        );
    }
}
