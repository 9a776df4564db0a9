//! `mse measure`: expected measurements computed offline from the files a TEE launch measures.
//!
//! `mse measure snp` prints the SEV-SNP launch digest (the attestation report's MEASUREMENT) of a
//! QEMU guest booted from an OVMF firmware, optionally with a directly booted kernel, initrd and
//! command line: the same hex as PyPI `sev-snp-measure --mode snp` for the same inputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mse_attest::snp_measure::{SnpMeasureInput, VcpuType, VmmType, launch_digest};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Args, Debug)]
pub struct MeasureArgs {
    #[command(subcommand)]
    pub command: MeasureCommand,
}

#[derive(Subcommand, Debug)]
pub enum MeasureCommand {
    /// SEV-SNP launch digest (MEASUREMENT, 96 hex characters) of a QEMU guest.
    Snp(SnpArgs),
}

#[derive(Args, Debug)]
pub struct SnpArgs {
    /// OVMF firmware image (an SEV-SNP capable build: it must carry SEV metadata).
    #[arg(long, value_name = "FILE")]
    pub ovmf: PathBuf,
    /// Number of guest vCPUs.
    #[arg(long, value_name = "N")]
    pub vcpus: u32,
    /// QEMU vCPU model: EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome[-v1..v3], EPYC-Milan[-v1,-v2],
    /// EPYC-Genoa[-v1], EPYC-Turin.
    #[arg(long, value_name = "TYPE")]
    pub vcpu_type: String,
    /// Directly booted kernel (QEMU -kernel); the firmware must have an SNP_KERNEL_HASHES section.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initrd of the kernel (QEMU -initrd).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (QEMU -append).
    #[arg(
        long,
        value_name = "CMDLINE",
        requires = "kernel",
        allow_hyphen_values = true
    )]
    pub append: Option<String>,
    /// SEV_FEATURES of the VMSAs: 0x-prefixed hex or decimal, as sev-snp-measure reads it.
    #[arg(long, value_name = "HEX", default_value = "0x1")]
    pub guest_features: String,
    /// Virtual machine monitor (only qemu).
    #[arg(long, value_name = "TYPE", default_value = "qemu")]
    pub vmm_type: String,
    /// Print a JSON object (the digest and what it was computed from) instead of the bare hex.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SnpJson<'a> {
    tee: &'static str,
    launch_digest: String,
    ovmf: &'a Path,
    ovmf_sha256: String,
    vcpus: u32,
    vcpu_type: String,
    guest_features: String,
    vmm_type: String,
    kernel_sha256: Option<String>,
    initrd_sha256: Option<String>,
    cmdline: Option<&'a str>,
}

pub fn run(args: &MeasureArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        MeasureCommand::Snp(a) => run_snp(a),
    }
}

fn read(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// An integer written as sev-snp-measure's `int(x, 0)` reads it: 0x/0o/0b prefix or decimal.
fn parse_int(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2)
    } else {
        (lower.as_str(), 10)
    };
    let digits = digits.replace('_', "");
    match u64::from_str_radix(&digits, radix) {
        Ok(v) if !digits.is_empty() => Ok(v),
        _ => bail!("invalid --guest-features '{s}': expected 0x-prefixed hex or decimal (64 bits)"),
    }
}

fn run_snp(a: &SnpArgs) -> anyhow::Result<ExitCode> {
    let vcpu_type: VcpuType = a.vcpu_type.parse()?;
    let vmm_type: VmmType = a.vmm_type.parse()?;
    let guest_features = parse_int(&a.guest_features)?;
    let ovmf = read("firmware", &a.ovmf)?;
    let kernel = a.kernel.as_deref().map(|p| read("kernel", p)).transpose()?;
    let initrd = a.initrd.as_deref().map(|p| read("initrd", p)).transpose()?;
    let input = SnpMeasureInput {
        ovmf: &ovmf,
        vcpus: a.vcpus,
        vcpu_type,
        guest_features,
        vmm_type,
        kernel: kernel.as_deref(),
        initrd: initrd.as_deref(),
        cmdline: a.append.as_deref(),
    };
    let digest =
        launch_digest(&input).with_context(|| format!("cannot measure {}", a.ovmf.display()))?;
    if a.json {
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let out = SnpJson {
            tee: "sev-snp",
            launch_digest: hex::encode(digest),
            ovmf: &a.ovmf,
            ovmf_sha256: sha(&ovmf),
            vcpus: a.vcpus,
            vcpu_type: vcpu_type.to_string(),
            guest_features: format!("{guest_features:#x}"),
            vmm_type: vmm_type.to_string(),
            kernel_sha256: kernel.as_deref().map(sha),
            initrd_sha256: initrd.as_deref().map(sha),
            cmdline: a.append.as_deref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", hex::encode(digest));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn guest_features_are_read_like_sev_snp_measure() {
        for (text, value) in [
            ("0x1", 1),
            ("0X21", 0x21),
            ("33", 33),
            ("0b101", 5),
            ("0o17", 15),
        ] {
            assert_eq!(parse_int(text).unwrap(), value);
        }
        for text in ["0x", "zz"] {
            assert_eq!(
                parse_int(text).unwrap_err().to_string(),
                format!(
                    "invalid --guest-features '{text}': expected 0x-prefixed hex or decimal (64 bits)"
                )
            );
        }
    }
}
