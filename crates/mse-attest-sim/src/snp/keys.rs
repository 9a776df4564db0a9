//! Deterministic P-384 keys of the mock AMD PKI (ARK, ASK, VCEK), derived from the seed.
//! Signatures are RFC 6979, so a seed always yields byte-identical certificates and reports.

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};

use crate::derive::det_key;

det_key!(
    /// A P-384 signing key usable by rcgen (certificates) and by the sim firmware (reports).
    DetKey384,
    rcgen::PKCS_ECDSA_P384_SHA384,
    // The salt separates these key derivations from any other use of the seed.
    b"mse-sim-amd-pki-v1",
    48
);

impl DetKey384 {
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
