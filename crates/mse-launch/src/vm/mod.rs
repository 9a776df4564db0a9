//! The VM launcher: one QEMU per app, booted from the guest image, its inputs attached as
//! read-only disks that the guest checks against the spec whose hash is on its kernel command
//! line.

pub mod abi;
pub mod envtar;
