//! The simulated SEV-SNP TEE: a mock AMD PKI (ARK → ASK → VCEK, P-384) derived from a 32-byte
//! seed, a software "firmware" signing genuine-format attestation reports (versions 2, 3 and
//! 5, the real byte layout), a mock KDS serving the chain, and the attester a guest uses.
//!
//! Sim reports go through the very same SEV-SNP verifier of `mse-attest` as real ones; only
//! the root differs (the mock ARK, accepted only when the policy allows simulation).

mod attester;
mod firmware;
mod kds;
mod keys;
mod pki;

pub use attester::SimSnpAttester;
pub use firmware::amdsev_firmware;
pub use kds::{MockKds, kds_router};
pub use pki::{
    SIM_AMD_ARK_CN, SIM_AMD_ASK_CN, SIM_AMD_ORG, SIM_SNP_CPUID, SIM_SNP_POLICY, SIM_SNP_PRODUCT,
    SimAmdPki, SimSnpTcb, SnpLaunch,
};

/// Salt separating the sim SNP derived keys from every other use of the seed.
const DERIVED_KEY_SALT: &[u8] = b"mse-sim-snp-derived-key-v1";

/// The sim SNP platform's derived key for a guest measurement: HKDF(seed, measurement).
pub fn derived_key(seed: &[u8; 32], measurement: &[u8; 48]) -> [u8; 32] {
    crate::derive::hkdf(DERIVED_KEY_SALT, seed, measurement)
}
