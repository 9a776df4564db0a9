//! Deterministic P-256 keys of the mock PKI, derived from the 32-byte seed.
//!
//! Signatures are RFC 6979 (deterministic), so the same seed always yields byte-identical
//! certificates, CRLs and collateral: a verifier can rebuild the mock root from the seed.

use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::Sha256;

/// Salt separating the mock PKI's key derivations from any other use of the seed.
const PKI_SALT: &[u8] = b"mse-sim-pki-v1";

/// A P-256 signing key that rcgen can use to sign certificates and CRLs.
pub struct DetKey {
    key: SigningKey,
    /// SEC1 uncompressed point 0x04 ‖ X ‖ Y (what X.509 carries in the SPKI bit string).
    point: Vec<u8>,
}

impl std::fmt::Debug for DetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private scalar.
        f.debug_struct("DetKey")
            .field("public", &hex::encode(&self.point))
            .finish()
    }
}

impl DetKey {
    /// Derive the key named `label` from `seed`. The HKDF output is retried with a counter in
    /// the (astronomically unlikely) case it is not a valid scalar.
    pub fn derive(seed: &[u8; 32], label: &str) -> DetKey {
        let hk = Hkdf::<Sha256>::new(Some(PKI_SALT), seed);
        let mut counter = 0u32;
        loop {
            let mut okm = [0u8; 32];
            let info = format!("{label}/{counter}");
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
            if hk.expand(info.as_bytes(), &mut okm).is_ok() {
                if let Ok(key) = SigningKey::from_slice(&okm) {
                    let point = key
                        .verifying_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec();
                    return DetKey { key, point };
                }
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// 0x04 ‖ X ‖ Y.
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// X ‖ Y (64 bytes), the form SGX quotes carry.
    pub fn public_xy(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(&self.point[1..65]);
        out
    }

    /// Raw r ‖ s signature (64 bytes, big-endian), the form SGX quotes and Intel collateral use.
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.key.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        out
    }
}

impl rcgen::PublicKeyData for DetKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for DetKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_label_separated() {
        let seed = [7u8; 32];
        let a = DetKey::derive(&seed, "root");
        let b = DetKey::derive(&seed, "root");
        let c = DetKey::derive(&seed, "pck");
        assert_eq!(a.public_point(), b.public_point());
        assert_ne!(a.public_point(), c.public_point());
        assert_eq!(a.public_point().len(), 65);
        assert_eq!(a.sign_raw(b"m"), b.sign_raw(b"m"));
    }
}
