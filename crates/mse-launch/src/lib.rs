//! The one launch contract between `mse`, `mse-node` and `mse-enclave`: the typed `LaunchSpec`
//! whose SHA-256 is an app's launch identity, the TEE kind, and the launchers (a host process
//! with the simulated TEE, or a confidential VM booted from the reproducible guest image).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
pub mod image;
