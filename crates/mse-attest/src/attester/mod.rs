//! Attesters: what produces evidence inside a TEE, behind one trait (like rustls'
//! `CryptoProvider`): `sim` (software quoting enclave), `gramine` (SGX under Gramine's
//! `/dev/attestation`), `tsm` (Linux configfs-tsm for TDX and SEV-SNP guests), plus
//! auto-detection of which one this host offers.

mod gramine;
mod probe;
mod sim;
mod tsm;

pub use gramine::GramineAttester;
pub use probe::{HostProbe, RealTee};
pub use sim::SimAttester;
pub use tsm::{ConfigFs, StdFs, TsmAttester};

use crate::evidence::TeeKind;

/// Which attester produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttesterKind {
    /// Software quoting enclave with the mock Intel PKI (SGX DCAP v3 quotes).
    Sim,
    /// SGX under Gramine (`/dev/attestation`).
    Gramine,
    /// Linux configfs-tsm (TDX or SEV-SNP guest).
    Tsm,
}

impl std::fmt::Display for AttesterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttesterKind::Sim => "sim",
            AttesterKind::Gramine => "gramine",
            AttesterKind::Tsm => "tsm",
        })
    }
}

/// What went wrong while producing evidence.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("refusing to run the simulated TEE: a real TEE is present ({0})")]
    RealTeePresent(String),
    #[error(
        "no TEE interface found (neither Gramine's /dev/attestation nor configfs-tsm) and simulation is not enabled"
    )]
    NoTee,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Gramine attestation type is {found:?}, expected \"dcap\"")]
    GramineNotDcap { found: String },
    #[error("{what} is empty")]
    EmptyEvidence { what: String },
    #[error(
        "configfs-tsm provider {provider:?} is not supported (expected tdx_guest or sev_guest)"
    )]
    UnknownTsmProvider { provider: String },
    #[error("configfs-tsm report was regenerated concurrently (generation {before} -> {after})")]
    TsmRace { before: u64, after: u64 },
    #[error("the {attester} attester offers no sealing key: {why}")]
    SealingUnsupported {
        attester: AttesterKind,
        why: &'static str,
    },
    #[error("sealing key at {path} is {len} bytes, expected 16")]
    BadSealingKey { path: String, len: usize },
    #[error("simulated TEE: {0}")]
    Sim(#[from] crate::sim::SimError),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AttestError + '_ {
    move |source| AttestError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A source of attestation evidence bound to caller-chosen report data.
pub trait Attester: Send + Sync + std::fmt::Debug {
    /// Which attester this is.
    fn kind(&self) -> AttesterKind;
    /// The kind of evidence it produces.
    fn tee_kind(&self) -> TeeKind;
    /// Evidence (raw quote or report bytes) whose report data is `report_data`.
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError>;

    /// The platform sealing key of this enclave, already bound by the platform to the
    /// enclave's measurement: storage keys are derived from it (HKDF with the measurement), so
    /// another code version cannot derive them.
    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError>;
}

/// Pick the attester this host offers: Gramine's `/dev/attestation`, else configfs-tsm on a
/// TDX / SEV-SNP guest, else the simulated TEE when `sim` is given (and no real TEE exists).
pub fn detect(
    probe: &HostProbe,
    sim: Option<SimAttesterConfig>,
) -> Result<Box<dyn Attester>, AttestError> {
    if probe.has_gramine() {
        return Ok(Box::new(GramineAttester::new(probe.gramine_dir())));
    }
    if let Some(tee) = probe.tsm_tee() {
        return Ok(Box::new(TsmAttester::new(probe.tsm_dir(), tee)));
    }
    match sim {
        Some(cfg) => Ok(Box::new(SimAttester::with_probe(
            probe,
            &cfg.seed,
            cfg.enclave,
        )?)),
        None => Err(AttestError::NoTee),
    }
}

/// What the simulated TEE needs: the node's 32-byte seed and the enclave identity.
#[derive(Clone)]
pub struct SimAttesterConfig {
    pub seed: [u8; 32],
    pub enclave: crate::sim::SimEnclave,
}

impl std::fmt::Debug for SimAttesterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is the node's secret: never print it.
        f.debug_struct("SimAttesterConfig")
            .field("enclave", &self.enclave)
            .finish_non_exhaustive()
    }
}
