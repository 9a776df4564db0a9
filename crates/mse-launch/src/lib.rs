//! The one launch contract between `mse`, `mse-node` and `mse-enclave`: the typed [`LaunchSpec`]
//! whose SHA-256 is an app's launch identity, the [`TeeKind`], and the [`Launcher`] trait with
//! its launchers (a host process with the simulated TEE today; a confidential VM booted from the
//! reproducible guest image next, in `vm/` and `image/`).
//!
//! What crosses a crate boundary is typed: the node builds a [`LaunchSpec`], a [`Launcher`]
//! starts it with host-local [`LaunchInputs`], the enclave reads the same spec back and checks its
//! inputs against it, and `mse` recomputes the measurement from the spec it gets from the node.
// `unsafe` only at the one syscall edge: the spawner's pre-exec hook (spawner.rs).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod envlock;
pub mod image;
mod launcher;
mod payload;
pub mod process;
mod spawner;
mod spec;
pub mod venv;
pub mod vm;

pub use launcher::{
    BoxFuture, Disposal, Exit, Instance, LaunchError, LaunchInputs, Launcher, Metrics, OutputSink,
};
pub use payload::ConfPayload;
pub use process::ProcessLauncher;
pub use spec::{
    Digest32, LaunchSpec, MAX_SPEC_BYTES, PackageRef, Runtime, SPEC_VERSION, SpecError, TlsSpec,
    is_application, is_uuid,
};
// The one TEE kind lives in mse-attest (its attesters name it too); re-exported here, where
// the launch contract uses it.
pub use mse_attest::{TeeKind, UnknownTee};
