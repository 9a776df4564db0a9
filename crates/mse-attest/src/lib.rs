//! Evidence, attesters for real TEEs, verifiers, policy and RA-TLS certificates.
//!
//! The simulated TEEs (mock Intel and AMD PKIs, software quoting enclave and SNP firmware, mock
//! PCCS and KDS) live in the `mse-attest-sim` crate: nothing here depends on them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attester;
pub mod measurement;
pub mod ratls;
pub mod snp_measure;
mod tee;
pub mod vm_identity;
// attest-verify: evidence parsers, verifiers, collateral, policy, report
pub mod collateral;
pub mod encode;
pub mod evidence;
pub mod policy;
pub mod report;
pub mod verify;
pub use collateral::{
    Collateral, CollateralError, fetch_collateral, fetch_collateral_blocking,
    fetch_snp_collateral_blocking,
};
pub use encode::{pem_encode, rfc3339, to_pem};
pub use evidence::{
    Evidence, EvidenceError, EvidenceKind, SgxQuote, SnpReport, SnpSigningKey, TdxQuote,
};
pub use policy::{Policy, SnpMinTcb};
pub use report::{Check, Outcome, Report, VerifyError};
pub use tee::{TeeKind, UnknownTee};
pub use verify::{TrustAnchors, sim_ark_from_collateral, sim_root_from_quote, verify};
