//! The simulated SGX TEE: a mock Intel PKI derived from a 32-byte seed, a software quoting enclave
//! producing real-format SGX DCAP v3 quotes, signed collateral, a mock PCCS, and a sealing key.
//!
//! Sim evidence goes through the very same verifier as real evidence; only the trust anchor
//! differs (the mock root, accepted only when the policy allows simulation).

mod collateral;
mod keys;
mod pccs;
mod pki;
mod quote;

pub use collateral::{CollateralOptions, SignedJson};
pub use keys::DetKey;
pub use pccs::{MockPccs, router as pccs_router};
pub use pki::{
    PCK_PLATFORM_CA_CN, SIM_CPU_SVN, SIM_FMSPC, SIM_NOT_AFTER, SIM_NOT_BEFORE, SIM_ORG, SIM_PCE_ID,
    SIM_PCE_SVN, SIM_ROOT_CN, SimPki, sgx_extension_der,
};
pub use quote::{INTEL_QE_VENDOR_ID, SGX_FLAGS_DEBUG, SimEnclave};

/// Salt separating sealing-key derivation from the PKI's.
const SEALING_SALT: &[u8] = b"mse-sim-sealing-v1";

/// HKDF-SHA256 of `seed` to `N` bytes under `label` (PKI salt).
pub(crate) fn derive_bytes<const N: usize>(seed: &[u8; 32], label: &str) -> [u8; N] {
    crate::derive::hkdf(b"mse-sim-pki-v1", seed, label.as_bytes())
}

/// The sim platform's sealing key for an enclave measurement: HKDF(seed, measurement).
/// Different measurements (code versions) get unrelated keys.
pub fn sealing_key(seed: &[u8; 32], measurement: &[u8]) -> [u8; 32] {
    crate::derive::hkdf(SEALING_SALT, seed, measurement)
}
