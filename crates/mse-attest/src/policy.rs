//! What a verifier requires of evidence beyond its signatures being valid.

use std::time::{SystemTime, UNIX_EPOCH};

/// TCB statuses accepted unless the caller widens the list: the platform is patched, or only
/// needs enclave-side software hardening, which our runtime provides.
pub const DEFAULT_ACCEPTED_TCB: [&str; 2] = ["UpToDate", "SWHardeningNeeded"];

/// The TCB statuses Intel defines, for validating `--accept-tcb` input.
pub const KNOWN_TCB_STATUSES: [&str; 9] = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
    "Revoked",
];

/// A verification policy. [`Policy::default`] is the strict one: Intel's root only, no debug,
/// default TCB statuses, no pinned measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// MRENCLAVE (SGX), MRTD (TDX) or MEASUREMENT (SEV-SNP) that the evidence must carry.
    pub expected_measurement: Option<Vec<u8>>,
    /// MRSIGNER (SGX only) that the evidence must carry.
    pub expected_signer: Option<Vec<u8>>,
    /// TCB statuses (Intel's names) accepted for SGX/TDX. `Revoked` is never accepted.
    pub accepted_tcb: Vec<String>,
    /// Accept evidence from debug-mode TEEs (never in production).
    pub allow_debug: bool,
    /// Accept evidence that chains to the simulation root given in [`crate::TrustAnchors`].
    pub allow_simulation: bool,
    /// The time at which certificates, CRLs and collateral must be valid; `None` = now.
    pub now: Option<SystemTime>,
    /// SEV-SNP: the lowest security patch level accepted per TCB component of the report's
    /// REPORTED_TCB (the one its VCEK/VLEK is issued for). All zero by default.
    pub snp_min_tcb: SnpMinTcb,
}

/// Minimum SEV-SNP security patch levels, per TCB component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnpMinTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later; ignored for reports without one).
    pub fmc: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            expected_measurement: None,
            expected_signer: None,
            accepted_tcb: DEFAULT_ACCEPTED_TCB.iter().map(|s| s.to_string()).collect(),
            allow_debug: false,
            allow_simulation: false,
            now: None,
            snp_min_tcb: SnpMinTcb::default(),
        }
    }
}

/// An `--accept-tcb` value that is not one of Intel's TCB statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TCB status {0:?}; known: {known}", known = KNOWN_TCB_STATUSES.join(", "))]
pub struct UnknownTcbStatus(pub String);

impl Policy {
    /// Add statuses to the accepted list (`--accept-tcb A,B`), rejecting unknown names.
    pub fn accept_tcb<I, S>(&mut self, statuses: I) -> Result<(), UnknownTcbStatus>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for status in statuses {
            let status = status.as_ref().trim();
            if !KNOWN_TCB_STATUSES.contains(&status) {
                return Err(UnknownTcbStatus(status.to_string()));
            }
            if !self.accepted_tcb.iter().any(|s| s == status) {
                self.accepted_tcb.push(status.to_string());
            }
        }
        Ok(())
    }

    /// "now" as seconds since the Unix epoch (0 for a time before the epoch).
    pub fn now_unix(&self) -> u64 {
        self.now
            .unwrap_or_else(SystemTime::now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
