//! Shared by the DCAP collateral targets: the simulated platform (mock Intel PKI of a fixed
//! seed and a quote it signed), and TCB info / QE identity documents built from fuzzed fields
//! and signed with the sim TCB-signing key, so a verifier's checks past the signature run.
// Each includer uses a different part.
#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use mse_attest::attester::{Attester, HostProbe};
use mse_attest::evidence::Evidence;
use mse_attest::{Policy, TrustAnchors};
use mse_attest_sim::{CollateralOptions, DetKey, SimAttester, SimEnclave, SimPki};

pub const SEED: [u8; 32] = [0x42; 32];

pub struct Sim {
    pub attester: SimAttester,
    pub pki: SimPki,
    pub quote: Vec<u8>,
    pub evidence: Evidence,
    /// The key the sim PKI signs TCB info and QE identity with (derived from the seed).
    pub tcb_key: DetKey,
    pub anchors: TrustAnchors,
}

pub static SIM: LazyLock<Sim> = LazyLock::new(|| {
    let root = tempfile::tempdir().expect("tempdir");
    let enclave = SimEnclave {
        mr_enclave: [0xAA; 32],
        mr_signer: [0xBB; 32],
        isv_prod_id: 1,
        isv_svn: 2,
        debug: false,
    };
    let attester = SimAttester::with_probe(&HostProbe::with_root(root.path()), &SEED, enclave)
        .expect("sim attester");
    let quote = attester.evidence(&[0x33; 64]).expect("sim quote");
    let pki = SimPki::from_seed(&SEED).expect("sim PKI");
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    Sim {
        attester,
        evidence: Evidence::parse(&quote).expect("sim quote parses"),
        quote,
        anchors,
        pki,
        tcb_key: DetKey::derive(&SEED, "tcb-signing"),
    }
});

/// Simulation allowed, at a fixed time inside the sim PKI's validity.
pub fn policy() -> Policy {
    Policy {
        allow_simulation: true,
        now: Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        ..Policy::default()
    }
}

/// A signed collateral document (TCB info or QE identity) as the fuzzer chooses it.
#[derive(Arbitrary, Debug)]
pub enum Signed {
    /// What the sim PKI issues.
    Real,
    /// Issued by the sim PKI with these dates, status and advisories (validly signed).
    Options {
        issue_date: u32,
        next_update: u32,
        tcb_status: String,
        advisory_ids: Vec<String>,
    },
    /// Any text, validly signed by the sim TCB key.
    Resigned(String),
    /// Any text and signature.
    Forged(String, Vec<u8>),
}

impl Signed {
    fn options(&self) -> CollateralOptions {
        match self {
            Signed::Options {
                issue_date,
                next_update,
                tcb_status,
                advisory_ids,
            } => CollateralOptions {
                issue_date: i64::from(*issue_date),
                next_update: i64::from(*next_update),
                tcb_status: tcb_status.clone(),
                advisory_ids: advisory_ids.clone(),
            },
            _ => CollateralOptions::default(),
        }
    }

    /// (document text, raw r‖s signature) for TCB info (`tcb`) or QE identity.
    pub fn document(&self, tcb: bool) -> (String, Vec<u8>) {
        match self {
            Signed::Real | Signed::Options { .. } => {
                let pki = &SIM.pki;
                let opts = self.options();
                let doc = if tcb {
                    pki.tcb_info(&opts)
                } else {
                    pki.qe_identity(&opts)
                };
                match doc {
                    Ok(d) => (d.raw, d.signature.to_vec()),
                    Err(e) => (e.to_string(), Vec::new()),
                }
            }
            Signed::Resigned(text) => {
                (text.clone(), SIM.tcb_key.sign_raw(text.as_bytes()).to_vec())
            }
            Signed::Forged(text, sig) => (text.clone(), sig.clone()),
        }
    }
}
