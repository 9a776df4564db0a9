//! Evidence, attesters, verifiers, policy, RA-TLS certificates and the simulated TEE.
#![forbid(unsafe_code)]
pub mod attester;
pub mod measurement;
pub mod ratls;
pub mod sim;
// attest-verify: evidence parsers, verifiers, collateral, policy, report
pub mod collateral;
pub mod evidence;
pub mod policy;
pub mod report;
pub mod verify;
pub use collateral::{Collateral, CollateralError, fetch_collateral, fetch_collateral_blocking};
pub use evidence::{Evidence, EvidenceError, SgxQuote, SnpReport, TdxQuote, TeeKind};
pub use policy::Policy;
pub use report::{Check, Outcome, Report, VerifyError};
pub use verify::{TrustAnchors, verify};
