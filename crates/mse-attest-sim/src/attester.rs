//! The simulated SGX attester: quotes from the software quoting enclave of the mock PKI.

use std::sync::Arc;

use mse_attest::attester::{AttestError, Attester, HostProbe, detect};
use mse_attest::{EvidenceKind, TeeKind};

use crate::{SimEnclave, SimPki};

/// Produces real-format SGX DCAP v3 quotes signed by the mock PKI of a seed.
#[derive(Debug, Clone)]
pub struct SimAttester {
    pki: Arc<SimPki>,
    enclave: SimEnclave,
}

impl SimAttester {
    /// A sim attester on this host; refused where a real TEE device exists, so a node cannot
    /// silently downgrade real hardware to simulation.
    pub fn new(seed: &[u8; 32], enclave: SimEnclave) -> Result<SimAttester, AttestError> {
        SimAttester::with_probe(&HostProbe::system(), seed, enclave)
    }

    /// Same as [`SimAttester::new`] with an explicit host probe.
    pub fn with_probe(
        probe: &HostProbe,
        seed: &[u8; 32],
        enclave: SimEnclave,
    ) -> Result<SimAttester, AttestError> {
        let pki = Arc::new(SimPki::from_seed(seed).map_err(|e| AttestError::Provider {
            attester: TeeKind::Sim,
            source: Box::new(e),
        })?);
        SimAttester::from_pki(probe, pki, enclave)
    }

    /// Share an already built mock PKI (one per node).
    pub fn from_pki(
        probe: &HostProbe,
        pki: Arc<SimPki>,
        enclave: SimEnclave,
    ) -> Result<SimAttester, AttestError> {
        if let Some(tee) = probe.real_tee() {
            return Err(AttestError::RealTeePresent(tee.path.display().to_string()));
        }
        Ok(SimAttester { pki, enclave })
    }

    /// The mock PKI behind it (its root is the anchor a verifier opts into).
    pub fn pki(&self) -> &Arc<SimPki> {
        &self.pki
    }

    /// The simulated enclave identity it quotes.
    pub fn enclave(&self) -> &SimEnclave {
        &self.enclave
    }
}

impl Attester for SimAttester {
    fn kind(&self) -> TeeKind {
        TeeKind::Sim
    }

    fn tee_kind(&self) -> EvidenceKind {
        EvidenceKind::Sgx
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        Ok(self.pki.quote(&self.enclave, report_data))
    }

    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError> {
        Ok(zeroize::Zeroizing::new(
            self.pki.sealing_key(&self.enclave.mr_enclave).to_vec(),
        ))
    }
}

/// Pick the attester this host offers: a real one ([`mse_attest::attester::detect`]) if the
/// host has one, else the simulated TEE when `sim` is given (and no real TEE device exists).
pub fn detect_or_sim(
    probe: &HostProbe,
    sim: Option<SimAttesterConfig>,
) -> Result<Box<dyn Attester>, AttestError> {
    match (detect(probe), sim) {
        (Err(AttestError::NoTee), Some(cfg)) => Ok(Box::new(SimAttester::with_probe(
            probe,
            &cfg.seed,
            cfg.enclave,
        )?)),
        (found, _) => found,
    }
}

/// What the simulated TEE needs: the node's 32-byte seed and the enclave identity.
#[derive(Clone)]
pub struct SimAttesterConfig {
    /// The node's sim seed (its mock PKI and sealing keys derive from it).
    pub seed: [u8; 32],
    /// The enclave identity the quotes carry.
    pub enclave: SimEnclave,
}

impl std::fmt::Debug for SimAttesterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is the node's secret: never print it.
        f.debug_struct("SimAttesterConfig")
            .field("enclave", &self.enclave)
            .finish_non_exhaustive()
    }
}
