//! Attesters: what produces evidence inside a TEE, behind one trait (like rustls'
//! `CryptoProvider`): `gramine` (SGX under Gramine's `/dev/attestation`), `tsm` (Linux
//! configfs-tsm for TDX and SEV-SNP guests), plus auto-detection of which one this host offers.
//!
//! The simulated attesters implement the same [`Attester`] trait in the `mse-attest-sim`
//! crate; the caller (the enclave runtime) picks them explicitly, never this crate.

mod gramine;
mod probe;
mod tsm;

pub use gramine::GramineAttester;
pub use probe::{HostProbe, RealTee};
pub use tsm::{ConfigFs, StdFs, TsmAttester};

use crate::TeeKind;
use crate::evidence::EvidenceKind;

/// What went wrong while producing evidence.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// A simulated attester was asked for where this real TEE device exists.
    #[error("refusing to run the simulated TEE: a real TEE is present ({0})")]
    RealTeePresent(String),
    /// No real TEE interface on this host.
    #[error("no TEE interface found (neither Gramine's /dev/attestation nor configfs-tsm)")]
    NoTee,
    /// Reading or writing a TEE interface file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Gramine is not configured for DCAP attestation (`found` is what it says).
    #[error("Gramine attestation type is {found:?}, expected \"dcap\"")]
    GramineNotDcap {
        /// What it says instead.
        found: String,
    },
    /// The interface returned no evidence (`what` names it).
    #[error("{what} is empty")]
    EmptyEvidence {
        /// What it is.
        what: String,
    },
    #[error(
        "configfs-tsm provider {provider:?} is not supported (expected tdx_guest or sev_guest)"
    )]
    /// configfs-tsm names a provider we do not know (`provider`).
    UnknownTsmProvider {
        /// The provider named.
        provider: String,
    },
    /// Another writer regenerated the configfs-tsm report meanwhile (generations before/after).
    #[error("configfs-tsm report was regenerated concurrently (generation {before} -> {after})")]
    TsmRace {
        /// Generation before the read.
        before: u64,
        /// Generation after it.
        after: u64,
    },
    /// This attester cannot give a sealing key.
    #[error("the {attester} attester offers no sealing key: {why}")]
    SealingUnsupported {
        /// Which attester.
        attester: TeeKind,
        /// Why not.
        why: &'static str,
    },
    /// Gramine's sealing key file has the wrong length.
    #[error("sealing key at {path} is {len} bytes, expected 16")]
    BadSealingKey {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
    /// An attester implemented outside this crate (e.g. a simulated one) failed.
    #[error("{attester} attester: {source}")]
    Provider {
        /// Which attester.
        attester: TeeKind,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AttestError + '_ {
    move |source| AttestError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A source of attestation evidence bound to caller-chosen report data.
pub trait Attester: Send + Sync + std::fmt::Debug {
    /// The TEE this attester is (a configfs-tsm attester is the TDX or SEV-SNP its provider
    /// names).
    fn kind(&self) -> TeeKind;
    /// The kind of evidence it produces.
    fn tee_kind(&self) -> EvidenceKind;
    /// Evidence (raw quote or report bytes) whose report data is `report_data`.
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError>;

    /// The platform sealing key of this enclave, already bound by the platform to the
    /// enclave's measurement: storage keys are derived from it (HKDF with the measurement), so
    /// another code version cannot derive them.
    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError>;
}

/// Pick the real attester this host offers: Gramine's `/dev/attestation`, else configfs-tsm on
/// a TDX / SEV-SNP guest. A caller that allows simulation falls back to an `mse-attest-sim`
/// attester on [`AttestError::NoTee`] (those refuse to run where [`HostProbe::real_tee`] finds
/// hardware).
pub fn detect(probe: &HostProbe) -> Result<Box<dyn Attester>, AttestError> {
    if probe.has_gramine() {
        return Ok(Box::new(GramineAttester::new(probe.gramine_dir())));
    }
    if let Some(tee) = probe.tsm_tee() {
        return Ok(Box::new(TsmAttester::new(probe.tsm_dir(), tee)));
    }
    Err(AttestError::NoTee)
}
