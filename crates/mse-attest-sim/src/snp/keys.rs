//! Deterministic P-384 keys of the mock AMD PKI (ARK, ASK, VCEK), derived from the seed.
//! Signatures are RFC 6979, so a seed always yields byte-identical certificates and reports.

use hkdf::Hkdf;
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use sha2::Sha256;

/// Salt separating the mock AMD PKI's key derivations from any other use of the seed.
const AMD_PKI_SALT: &[u8] = b"mse-sim-amd-pki-v1";

/// A P-384 signing key usable by rcgen (certificates) and by the sim firmware (reports).
pub struct DetKey384 {
    key: SigningKey,
    /// SEC1 uncompressed point 0x04 ‖ X ‖ Y.
    point: Vec<u8>,
}

impl std::fmt::Debug for DetKey384 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private scalar.
        f.debug_struct("DetKey384")
            .field("public", &hex::encode(&self.point))
            .finish()
    }
}

impl DetKey384 {
    /// Derive the key named `label` from `seed` (retrying with a counter in the astronomically
    /// unlikely case the HKDF output is not a valid scalar).
    pub fn derive(seed: &[u8; 32], label: &str) -> DetKey384 {
        let hk = Hkdf::<Sha256>::new(Some(AMD_PKI_SALT), seed);
        let mut counter = 0u32;
        loop {
            let mut okm = [0u8; 48];
            let info = format!("{label}/{counter}");
            // 48 bytes is far below HKDF-SHA256's limit: expand cannot fail.
            if hk.expand(info.as_bytes(), &mut okm).is_ok() {
                if let Ok(key) = SigningKey::from_slice(&okm) {
                    let point = key
                        .verifying_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec();
                    return DetKey384 { key, point };
                }
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// ECDSA P-384 with SHA-384 over `msg`: (r, s), 48 bytes each, big-endian.
    pub fn sign_rs(&self, msg: &[u8]) -> ([u8; 48], [u8; 48]) {
        let sig: Signature = self.key.sign(msg);
        let bytes = sig.to_bytes();
        let mut r = [0u8; 48];
        let mut s = [0u8; 48];
        r.copy_from_slice(&bytes[..48]);
        s.copy_from_slice(&bytes[48..]);
        (r, s)
    }
}

impl rcgen::PublicKeyData for DetKey384 {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

impl rcgen::SigningKey for DetKey384 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}
