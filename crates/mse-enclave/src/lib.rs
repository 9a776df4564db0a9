//! `mse-enclave`: the runtime a node (or `mse localtest`) starts once per app.
//!
//! Sequence: read the launch spec, check the attached runtime, venv and package against it
//! (its hash is the measurement) → attester and sealing key → sandbox → X25519 enclave key and RA-TLS certificate → configuration server on the app's
//! port → validate the owner's payload completely, then write the secrets and the decrypted
//! code → serve the app with mse-wsgi on the same listener.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod conf_server;
pub mod guest;
pub mod identity;
pub mod provision;
pub mod run;
pub mod tee;

/// Entry points for `fuzz/fuzz_targets/conf_payload.rs`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses an untrusted configuration payload; must never panic.
    pub fn conf_payload(bytes: &[u8]) {
        let _ = crate::provision::parse_payload(bytes);
    }
}
