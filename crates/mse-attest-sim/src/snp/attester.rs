//! The simulated SEV-SNP attester, for use inside a guest launched with `tee = "sim-snp"`.
//!
//! Contract with the VM launcher: the launcher computes the launch digest (MEASUREMENT) of what
//! it booted and the LaunchSpec's SHA-256 (HOST_DATA), and hands both to the guest together
//! with the node's 32-byte sim seed; the guest builds [`SimSnpAttester::new`] from those three
//! inputs. REPORT_DATA is then whatever the caller binds, exactly as with the real configfs-tsm
//! attester: for RA-TLS, `mse_attest::ratls::report_data_for_key` of the certificate key.

use std::sync::Arc;

use mse_attest::attester::{AttestError, Attester, HostProbe};
use mse_attest::{EvidenceKind, TeeKind};

use super::pki::{SimAmdPki, SnpLaunch};

/// Produces genuine-format SEV-SNP reports signed by the mock AMD PKI of a seed.
#[derive(Debug, Clone)]
pub struct SimSnpAttester {
    pki: Arc<SimAmdPki>,
    launch: SnpLaunch,
}

impl SimSnpAttester {
    /// The sim SNP attester of the node's `seed` for a guest launched with `measurement` (the
    /// launch digest) and `host_data` (the LaunchSpec's SHA-256): version-3 reports, the
    /// default sim guest policy (no debug, no migration agent). Refused where a real TEE
    /// device exists, so real hardware is never silently downgraded to simulation.
    pub fn new(
        seed: &[u8; 32],
        measurement: [u8; 48],
        host_data: [u8; 32],
    ) -> Result<SimSnpAttester, AttestError> {
        SimSnpAttester::with_probe(&HostProbe::system(), seed, measurement, host_data)
    }

    /// Same as [`SimSnpAttester::new`] with an explicit host probe.
    pub fn with_probe(
        probe: &HostProbe,
        seed: &[u8; 32],
        measurement: [u8; 48],
        host_data: [u8; 32],
    ) -> Result<SimSnpAttester, AttestError> {
        let pki = SimAmdPki::from_seed(seed).map_err(|e| AttestError::Provider {
            attester: TeeKind::SimSnp,
            source: Box::new(e),
        })?;
        SimSnpAttester::from_pki(probe, Arc::new(pki), SnpLaunch::new(measurement, host_data))
    }

    /// Any launch (report version, policy ...) on an already built mock PKI.
    pub fn from_pki(
        probe: &HostProbe,
        pki: Arc<SimAmdPki>,
        launch: SnpLaunch,
    ) -> Result<SimSnpAttester, AttestError> {
        if let Some(tee) = probe.real_tee() {
            return Err(AttestError::RealTeePresent(tee.path.display().to_string()));
        }
        Ok(SimSnpAttester { pki, launch })
    }

    /// The mock AMD PKI behind it (its ARK is the anchor a verifier opts into).
    pub fn pki(&self) -> &Arc<SimAmdPki> {
        &self.pki
    }

    /// The launch its reports attest.
    pub fn launch(&self) -> &SnpLaunch {
        &self.launch
    }
}

impl Attester for SimSnpAttester {
    fn kind(&self) -> TeeKind {
        TeeKind::SimSnp
    }

    fn tee_kind(&self) -> EvidenceKind {
        EvidenceKind::SevSnp
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        Ok(self.pki.report(&self.launch, report_data))
    }

    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError> {
        Ok(zeroize::Zeroizing::new(
            self.pki.derived_key(&self.launch.measurement).to_vec(),
        ))
    }
}
