//! What the VM launcher and the guest (`mse-enclave` as the VM's init) agree on: the disks'
//! virtio serial numbers, their padding, the sim disk's content, the kernel command line
//! parameter that carries the spec hash.
//!
//! Every input disk is read-only and holds its bytes zero-padded to a multiple of
//! [`SECTOR`]: the spec's canonical bytes (`mse-spec`), the code package tar (`mse-code`, exact
//! length = `spec.package.size`), the environment tar ([`crate::vm::envtar`], `mse-env`), the
//! owner's certificate PEM in owner mode (`mse-cert`), and for the simulated TEEs only a
//! [`SimDisk`] JSON (`mse-sim`). `mse-home` is a writable ext4 (formatted empty by the host)
//! that holds only the guest's sealed `$HOME`.

use serde::{Deserialize, Serialize};

use crate::Digest32;

/// Sector size: every disk's length is a multiple of it.
pub const SECTOR: u64 = 512;

/// Serial of the disk holding the spec's canonical bytes.
pub const SERIAL_SPEC: &str = "mse-spec";
/// Serial of the disk holding the code package.
pub const SERIAL_CODE: &str = "mse-code";
/// Serial of the disk holding the environment tar.
pub const SERIAL_ENV: &str = "mse-env";
/// Serial of the owner's certificate disk (owner mode only).
pub const SERIAL_CERT: &str = "mse-cert";
/// Serial of the sim disk (simulated TEEs only).
pub const SERIAL_SIM: &str = "mse-sim";
/// Serial of the encrypted `$HOME`'s disk.
pub const SERIAL_HOME: &str = "mse-home";

/// Kernel command line parameter carrying the spec hash (hex).
pub const CMDLINE_SPEC: &str = "mse.spec";

/// Size of the `$HOME` disk: the seeds' 10 GB quota (a sparse file on the host).
pub const HOME_DISK_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// `len` rounded up to a multiple of [`SECTOR`] (at least one sector).
pub fn padded_len(len: u64) -> u64 {
    len.div_ceil(SECTOR).max(1) * SECTOR
}

/// The content of the `mse-sim` disk (JSON, zero-padded): what a simulated TEE inside the guest
/// needs from the node. Nothing here is secret from the host (it is the host's own seed), and a
/// simulated TEE protects nothing anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDisk {
    /// Always 1.
    pub version: u32,
    /// The node's sim seed (64 hex characters): the mock Intel PKI (sim) or mock AMD chain
    /// (sim-snp) derive from it.
    pub sim_seed: String,
    /// `sim-snp` only: what a real SNP firmware would have measured and bound.
    pub snp: Option<SimSnp>,
}

/// The hand-over to the simulated SNP firmware inside the guest (`tee = "sim-snp"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSnp {
    /// The launch digest the launcher computed for what it booted (firmware, kernel, initrd,
    /// command line, vCPUs): 96 hex characters (SNP MEASUREMENT, 48 bytes).
    pub measurement: String,
    /// HOST_DATA: the spec hash.
    pub host_data: Digest32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_to_whole_sectors() {
        assert_eq!(padded_len(0), 512);
        assert_eq!(padded_len(1), 512);
        assert_eq!(padded_len(512), 512);
        assert_eq!(padded_len(513), 1024);
    }

    #[test]
    fn sim_disk_json_is_strict() {
        let disk = SimDisk {
            version: 1,
            sim_seed: "07".repeat(32),
            snp: None,
        };
        let text = serde_json::to_string(&disk).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"version\":1,\"sim_seed\":\"{}\",\"snp\":null}}",
                "07".repeat(32)
            )
        );
        assert!(serde_json::from_str::<SimDisk>(&text.replace("\"snp\"", "\"x\"")).is_err());
    }
}
