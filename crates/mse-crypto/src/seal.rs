//! libsodium `crypto_box_seal` (anonymous sender, X25519 + XSalsa20-Poly1305), the format of
//! PyNaCl's `SealedBox` and of the original system's sealed secrets:
//! `ephemeral_pk(32) ‖ tag(16) ‖ ciphertext`.

use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use zeroize::Zeroizing;

/// Why a sealed box could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Shorter than the ephemeral public key and tag (48 bytes).
    #[error("sealed box too short ({len} bytes, at least 48 expected)")]
    TooShort {
        /// Length of the input, in bytes.
        len: usize,
    },
    /// Authentication failed: modified, or sealed to another public key.
    #[error("sealed box does not open with this key (modified, or sealed for another recipient)")]
    Open,
    /// The box construction failed (the backend reports no cause).
    #[error("sealing failed")]
    Seal,
}

/// An X25519 key pair, e.g. the enclave's key that secrets are sealed to.
pub struct X25519KeyPair {
    secret: SecretKey,
}

impl X25519KeyPair {
    /// A fresh key pair from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self {
            secret: SecretKey::generate(&mut OsRng),
        }
    }

    /// The key pair of a known 32-byte X25519 secret key.
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        Self {
            secret: SecretKey::from(bytes),
        }
    }

    /// The public key, which senders [`seal`] to.
    pub fn public(&self) -> [u8; 32] {
        *self.secret.public_key().as_bytes()
    }

    /// The secret key bytes, wiped from memory when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// Opens a box sealed to this key pair's public key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 48 {
            return Err(SealError::TooShort { len: sealed.len() });
        }
        self.secret.unseal(sealed).map_err(|_| SealError::Open)
    }
}

/// Seals `message` to the X25519 public key `recipient`.
pub fn seal(recipient: &[u8; 32], message: &[u8]) -> Result<Vec<u8>, SealError> {
    PublicKey::from(*recipient)
        .seal(&mut OsRng, message)
        .map_err(|_| SealError::Seal)
}

/// Opens a sealed box with the recipient's X25519 secret key.
pub fn open_sealed(secret: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    X25519KeyPair::from_secret(*secret).open(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip() {
        let kp = X25519KeyPair::generate();
        let sealed = seal(&kp.public(), b"{\"a\":1}").unwrap();
        assert_eq!(sealed.len(), 48 + 7);
        assert_eq!(kp.open(&sealed).unwrap(), b"{\"a\":1}");
        let other = X25519KeyPair::generate();
        assert_eq!(other.open(&sealed), Err(SealError::Open));
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert_eq!(kp.open(&bad), Err(SealError::Open));
        assert_eq!(kp.open(&sealed[..47]), Err(SealError::TooShort { len: 47 }));
    }
}
