//! Deterministic P-256 keys of the mock PKI, derived from the 32-byte seed.
//!
//! Signatures are RFC 6979 (deterministic), so the same seed always yields byte-identical
//! certificates, CRLs and collateral: a verifier can rebuild the mock root from the seed.

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

use crate::derive::det_key;

det_key!(
    /// A P-256 signing key that rcgen can use to sign certificates and CRLs.
    DetKey,
    rcgen::PKCS_ECDSA_P256_SHA256,
    // The salt separates these key derivations from any other use of the seed.
    b"mse-sim-pki-v1",
    32
);

impl DetKey {
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
