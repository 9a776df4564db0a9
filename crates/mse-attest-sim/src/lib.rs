//! The simulated TEEs of MSE, and only them: the mock Intel PKI with a software quoting enclave
//! and a mock PCCS (SGX DCAP v3 quotes), the mock AMD PKI with a software SEV-SNP firmware and
//! a mock KDS (SEV-SNP attestation reports), and sealing keys derived from the node's seed.
//!
//! Sim evidence has exactly the real format and goes through the very same verifier in
//! `mse-attest` as real evidence; only the trust anchor differs (a mock root derived from a
//! 32-byte seed, accepted only when the policy allows simulation). Like rustls' test provider,
//! nothing in a real-TEE code path may depend on this crate: the node (with `tee = "sim"`),
//! `mse localtest` and tests pull it in explicitly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attester;
mod derive;
mod server;
mod sgx;
pub mod snp;

pub use attester::{SimAttester, SimAttesterConfig, detect_or_sim};
pub use mse_attest::encode::{pem_encode, rfc3339, to_pem};
pub use mse_attest::verify::{sim_ark_from_collateral, sim_root_from_quote};
pub use server::MockServer;
pub use sgx::*;
pub use snp::{MockKds, SimAmdPki, SimSnpAttester, SnpLaunch};

/// What went wrong in the simulated TEE.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Building the mock PKI (keys, certificates, CRLs) failed.
    #[error("mock PKI: {0}")]
    Pki(String),
    /// Producing the signed collateral failed.
    #[error("sim collateral: {0}")]
    Collateral(String),
    /// The mock KDS could not start or serve.
    #[error("mock KDS on {addr}: {reason}")]
    Kds {
        /// The address it was to listen on.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The mock PCCS could not start or serve.
    #[error("mock PCCS on {addr}: {reason}")]
    Pccs {
        /// The address it was to listen on.
        addr: String,
        /// Why it failed.
        reason: String,
    },
}
