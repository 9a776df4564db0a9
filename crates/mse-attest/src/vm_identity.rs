//! The expected identity of a confidential VM that runs one app, and its comparison with what the
//! hardware reports: what `mse deploy` / `mse verify` check, field by field, before they send
//! anything (issue 13, "per-app binding").
//!
//! The app is bound to the VM through its launch spec hash (SHA-256 of the canonical `LaunchSpec`):
//! - **SEV-SNP**: the kernel command line carries `mse.spec=<hex spec hash>`, so the launch digest
//!   (computed offline by [`crate::snp_measure`] from the node's published firmware, kernel and
//!   initrd, that command line and the tier's vCPUs) differs per app; and HOST_DATA = the spec hash.
//! - **TDX**: MRCONFIGID = the spec hash followed by 16 zero bytes; MRTD and RTMR0..2 are the
//!   reference values the node publishes for its image (this module does not compute them).

use crate::evidence::{SnpReport, TdReport};
use crate::snp_measure::{SnpMeasureError, SnpMeasureInput, VcpuType, launch_digest};

/// Why [`snp_boot_digest`] could not compute a launch digest.
#[derive(Debug, thiserror::Error)]
pub enum BootDigestError {
    /// A boot file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The files or parameters cannot be measured.
    #[error(transparent)]
    Measure(#[from] SnpMeasureError),
}

/// The launch digest of a VM enclave's direct-kernel boot from its files (read here): the VM
/// launcher's `SnpMeasure` (a node's and `mse localtest --vm --tee sim-snp`'s).
pub fn snp_boot_digest(
    firmware: &std::path::Path,
    kernel: &std::path::Path,
    initrd: &std::path::Path,
    cmdline: &str,
    vcpus: u32,
    vcpu_type: &str,
) -> Result<[u8; 48], BootDigestError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| BootDigestError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let (firmware, kernel, initrd) = (read(firmware)?, read(kernel)?, read(initrd)?);
    let input = snp_boot_input(&firmware, &kernel, &initrd, cmdline, vcpus, vcpu_type)?;
    Ok(launch_digest(&input)?)
}

/// The measured inputs of a VM enclave's direct-kernel boot (QEMU, default guest features): the
/// one description the VM launcher (sim-snp) and a verifier (from the node's published files)
/// both measure.
pub fn snp_boot_input<'a>(
    firmware: &'a [u8],
    kernel: &'a [u8],
    initrd: &'a [u8],
    cmdline: &'a str,
    vcpus: u32,
    vcpu_type: &str,
) -> Result<SnpMeasureInput<'a>, SnpMeasureError> {
    Ok(
        SnpMeasureInput::new(firmware, vcpus, vcpu_type.parse::<VcpuType>()?).with_kernel(
            kernel,
            Some(initrd),
            Some(cmdline),
        ),
    )
}

/// The kernel command-line parameter that names the launch spec: `mse.spec=<64 hex>`.
pub fn spec_cmdline_param(spec_hash: &[u8; 32]) -> String {
    format!("mse.spec={}", hex::encode(spec_hash))
}

/// `base` with the spec parameter appended (one space between them; `base` may be empty).
pub fn cmdline_with_spec(base: &str, spec_hash: &[u8; 32]) -> String {
    if base.is_empty() {
        spec_cmdline_param(spec_hash)
    } else {
        format!("{base} {}", spec_cmdline_param(spec_hash))
    }
}

/// TDX MRCONFIGID for a spec hash: the 32 bytes, then 16 zero bytes.
pub fn mr_config_id(spec_hash: &[u8; 32]) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(spec_hash);
    out
}

/// One field whose reported value is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMismatch {
    /// The report field, as the hardware documentation names it.
    pub field: &'static str,
    /// Expected value, hex.
    pub expected: String,
    /// Reported value, hex.
    pub actual: String,
}

impl std::fmt::Display for FieldMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}, expected {}",
            self.field, self.actual, self.expected
        )
    }
}

/// The report is not the expected VM: every mismatching field, in report order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the expected VM: {}", join(.0))]
pub struct IdentityMismatch(pub Vec<FieldMismatch>);

fn join(fields: &[FieldMismatch]) -> String {
    fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn compare(out: &mut Vec<FieldMismatch>, field: &'static str, expected: &[u8], actual: &[u8]) {
    if expected != actual {
        out.push(FieldMismatch {
            field,
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        });
    }
}

fn result(mismatches: Vec<FieldMismatch>) -> Result<(), IdentityMismatch> {
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(IdentityMismatch(mismatches))
    }
}

/// What an SEV-SNP report of the app's VM must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpExpected {
    /// The launch digest (MEASUREMENT).
    pub measurement: [u8; 48],
    /// HOST_DATA: the spec hash.
    pub host_data: [u8; 32],
}

impl SnpExpected {
    /// The identity of a VM launched with `input` for the spec `spec_hash`. The input's command
    /// line must already carry the spec, once (see [`cmdline_with_spec`]); this is checked, so that
    /// a launch whose measurement does not bind the spec cannot be expected by mistake.
    pub fn for_launch(
        input: &SnpMeasureInput<'_>,
        spec_hash: &[u8; 32],
    ) -> Result<Self, SpecBindingError> {
        let param = spec_cmdline_param(spec_hash);
        // Exactly one `mse.spec=` word, and it is this spec (two would leave the guest to choose).
        let carries = input.cmdline.is_some_and(|c| {
            let specs: Vec<&str> = c
                .split_ascii_whitespace()
                .filter(|w| w.starts_with("mse.spec="))
                .collect();
            specs == [param.as_str()]
        });
        if input.kernel.is_none() || !carries {
            return Err(SpecBindingError::CmdlineWithoutSpec(param));
        }
        Ok(SnpExpected {
            measurement: launch_digest(input)?,
            host_data: *spec_hash,
        })
    }

    /// Compares MEASUREMENT and HOST_DATA of a report (whose signature the verifier checked).
    pub fn check(&self, report: &SnpReport) -> Result<(), IdentityMismatch> {
        let mut m = Vec::new();
        compare(
            &mut m,
            "MEASUREMENT",
            &self.measurement,
            &report.measurement,
        );
        compare(&mut m, "HOST_DATA", &self.host_data, &report.host_data);
        result(m)
    }
}

/// Why an expected SNP identity cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecBindingError {
    /// The command line lacks `mse.spec=<hash>` or carries it more than once.
    #[error(
        "the kernel command line does not carry {0} exactly once: the launch digest would not bind the app"
    )]
    CmdlineWithoutSpec(String),
    /// The launch digest itself cannot be computed.
    #[error(transparent)]
    Measure(#[from] SnpMeasureError),
}

/// The reference values a node publishes for its TDX guest image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxReference {
    /// MRTD: the TD's initial contents (the firmware).
    pub mr_td: [u8; 48],
    /// RTMR0..2: firmware configuration, then kernel and initrd, then command line and the rest.
    pub rtmrs: [[u8; 48]; 3],
}

/// What a TDX quote of the app's VM must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxExpected {
    /// MRTD from the node's reference values.
    pub mr_td: [u8; 48],
    /// RTMR0..2 from the node's reference values.
    pub rtmrs: [[u8; 48]; 3],
    /// MRCONFIGID: the spec hash, zero-padded.
    pub mr_config_id: [u8; 48],
}

impl TdxExpected {
    /// The identity of the node's image running the spec `spec_hash`.
    pub fn for_spec(reference: &TdxReference, spec_hash: &[u8; 32]) -> Self {
        TdxExpected {
            mr_td: reference.mr_td,
            rtmrs: reference.rtmrs,
            mr_config_id: mr_config_id(spec_hash),
        }
    }

    /// Compares MRTD, RTMR0..2 and MRCONFIGID of a TD report (whose quote the verifier checked).
    pub fn check(&self, report: &TdReport) -> Result<(), IdentityMismatch> {
        let mut m = Vec::new();
        compare(&mut m, "MRTD", &self.mr_td, &report.mr_td);
        compare(
            &mut m,
            "MRCONFIGID",
            &self.mr_config_id,
            &report.mr_config_id,
        );
        for (i, name) in ["RTMR0", "RTMR1", "RTMR2"].into_iter().enumerate() {
            compare(&mut m, name, &self.rtmrs[i], &report.rtmrs[i]);
        }
        result(m)
    }
}
