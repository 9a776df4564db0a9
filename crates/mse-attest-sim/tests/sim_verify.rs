//! The simulated TEE through the shared verifier: sim quotes verify against the mock root only
//! when simulation is allowed, debug sim quotes only when debug is allowed, any flipped byte
//! breaks them, and the mock PCCS serves collateral the verifier accepts.

#[path = "ratls_support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mse_attest::attester::{Attester, HostProbe};
use mse_attest::{Collateral, Evidence, Outcome, Policy, TrustAnchors, verify};
use mse_attest_sim::SimAttester;
use mse_attest_sim::{
    CollateralOptions, MockPccs, SimEnclave, SimPki, sealing_key, sim_root_from_quote,
};

const SEED: [u8; 32] = [0x42; 32];

fn enclave(debug: bool) -> SimEnclave {
    SimEnclave {
        mr_enclave: [0xAA; 32],
        mr_signer: [0xBB; 32],
        isv_prod_id: 1,
        isv_svn: 2,
        debug,
    }
}

fn at(unix: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(unix))
}

/// 2026-01-01, inside the sim collateral's window.
const NOW: u64 = 1_767_225_600;

fn policy(allow_simulation: bool, allow_debug: bool) -> Policy {
    Policy {
        allow_simulation,
        allow_debug,
        now: at(NOW),
        ..Policy::default()
    }
}

fn sim_parts(debug: bool) -> (SimPki, Vec<u8>, Collateral) {
    let pki = SimPki::from_seed(&SEED).unwrap();
    let quote = pki.quote(&enclave(debug), &[0x11; 64]);
    let collateral = Collateral::Dcap(pki.collateral(&CollateralOptions::default()).unwrap());
    (pki, quote, collateral)
}

fn outcome<'a>(report: &'a mse_attest::Report, name: &str) -> &'a Outcome {
    &report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .outcome
}

/// A non-debug sim quote verified against the Intel roots plus the mock one.
fn verify_sim_quote(policy: &Policy, report_data: Option<&[u8]>) -> mse_attest::Report {
    let (pki, quote, collateral) = sim_parts(false);
    let evidence = Evidence::parse(&quote).unwrap();
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    verify(&evidence, &collateral, &anchors, policy, report_data)
}

#[test]
fn sim_quote_verifies_against_mock_root_when_simulation_allowed() {
    let report = verify_sim_quote(&policy(true, false), Some(&[0x11; 64]));
    assert!(report.trusted(), "{report}");
    assert!(report.simulated);
    assert_eq!(report.measurement, vec![0xAA; 32]);
    assert_eq!(report.signer, Some(vec![0xBB; 32]));
    assert_eq!(report.tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(report.error(), None);
}

#[test]
fn sim_quote_refused_without_allow_simulation() {
    let report = verify_sim_quote(&policy(false, false), None);
    assert!(!report.trusted());
    assert_eq!(
        report.error().unwrap().to_string(),
        "evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)"
    );
}

#[test]
fn sim_quote_refused_by_intel_root_alone() {
    let (_pki, quote, collateral) = sim_parts(false);
    let evidence = Evidence::parse(&quote).unwrap();
    let report = verify(
        &evidence,
        &collateral,
        &TrustAnchors::intel(),
        &policy(true, false),
        None,
    );
    assert!(!report.trusted());
    assert!(
        matches!(outcome(&report, "certificate_chain"), Outcome::Fail(_))
            || report.error().is_some()
    );
}

#[test]
fn debug_sim_quote_refused_without_allow_debug() {
    let (pki, quote, collateral) = sim_parts(true);
    let evidence = Evidence::parse(&quote).unwrap();
    assert!(evidence.is_debug());
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    let refused = verify(&evidence, &collateral, &anchors, &policy(true, false), None);
    assert!(!refused.trusted());
    assert_eq!(
        refused.error().unwrap().to_string(),
        "SGX evidence is from a debug-mode TEE (use --allow-debug to accept it)"
    );
    let accepted = verify(&evidence, &collateral, &anchors, &policy(true, true), None);
    assert!(accepted.trusted(), "{accepted}");
}

#[test]
fn every_flipped_byte_of_the_signed_body_is_refused() {
    let (pki, quote, collateral) = sim_parts(false);
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    // Header and report body (the signed part), sampled every 7 bytes to keep the test fast.
    for i in (0..432).step_by(7) {
        let mut bad = quote.clone();
        bad[i] ^= 0x01;
        let trusted = match Evidence::parse(&bad) {
            Ok(ev) => verify(&ev, &collateral, &anchors, &policy(true, true), None).trusted(),
            Err(_) => false,
        };
        assert!(!trusted, "flipping byte {i} was not detected");
    }
}

#[test]
fn collateral_outside_its_window_is_refused() {
    let pki = SimPki::from_seed(&SEED).unwrap();
    let quote = pki.quote(&enclave(false), &[0; 64]);
    let opts = CollateralOptions {
        issue_date: 1_767_225_600,
        next_update: 1_769_904_000,
        ..Default::default()
    };
    let collateral = Collateral::Dcap(pki.collateral(&opts).unwrap());
    let evidence = Evidence::parse(&quote).unwrap();
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    let mut p = policy(true, false);
    p.now = at(1_768_000_000);
    assert!(verify(&evidence, &collateral, &anchors, &p, None).trusted());
    p.now = at(1_770_000_000);
    let late = verify(&evidence, &collateral, &anchors, &p, None);
    assert!(!late.trusted());
    assert!(
        late.error()
            .unwrap()
            .to_string()
            .contains("TCBInfo expired"),
        "{late}"
    );
}

#[test]
fn out_of_date_tcb_is_reported_and_refused_unless_accepted() {
    let pki = SimPki::from_seed(&SEED).unwrap();
    let quote = pki.quote(&enclave(false), &[0; 64]);
    let opts = CollateralOptions {
        tcb_status: "OutOfDate".into(),
        advisory_ids: vec!["INTEL-SA-00999".into()],
        ..Default::default()
    };
    let collateral = Collateral::Dcap(pki.collateral(&opts).unwrap());
    let evidence = Evidence::parse(&quote).unwrap();
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    let mut p = policy(true, false);
    let refused = verify(&evidence, &collateral, &anchors, &p, None);
    assert!(!refused.trusted());
    assert_eq!(refused.tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(refused.advisories, vec!["INTEL-SA-00999".to_string()]);
    assert_eq!(
        refused.error().unwrap().to_string(),
        "TCB status OutOfDate is not accepted (accepted: UpToDate, SWHardeningNeeded)"
    );
    p.accept_tcb(["OutOfDate"]).unwrap();
    assert!(verify(&evidence, &collateral, &anchors, &p, None).trusted());
}

#[test]
fn mock_pki_is_deterministic_per_seed() {
    let a = SimPki::from_seed(&SEED).unwrap();
    let b = SimPki::from_seed(&SEED).unwrap();
    let c = SimPki::from_seed(&[0x43; 32]).unwrap();
    assert_eq!(a.root_der, b.root_der);
    assert_eq!(a.pck_der, b.pck_der);
    assert_eq!(
        a.quote(&enclave(false), &[1; 64]),
        b.quote(&enclave(false), &[1; 64])
    );
    assert_ne!(a.root_der, c.root_der);
    assert_eq!(
        sim_root_from_quote(&a.quote(&enclave(false), &[1; 64])),
        Some(a.root_der.clone())
    );
    assert_eq!(sim_root_from_quote(&[0u8; 10]), None);
    // A real Intel quote names Intel's root, which is never taken for a mock root.
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mse-attest/tests/data/dcap/sgx_quote"
    ))
    .unwrap();
    assert_eq!(sim_root_from_quote(&real), None);
}

#[test]
fn sealing_key_is_bound_to_seed_and_measurement() {
    let k1 = sealing_key(&SEED, &[0xAA; 32]);
    assert_eq!(k1, sealing_key(&SEED, &[0xAA; 32]));
    assert_ne!(k1, sealing_key(&SEED, &[0xAB; 32]));
    assert_ne!(k1, sealing_key(&[0x43; 32], &[0xAA; 32]));
}

#[test]
fn sim_attester_refuses_to_run_where_a_real_tee_exists() {
    support::assert_sim_refused_next_to_real_tee(
        &[
            "dev/sgx_enclave",
            "dev/tdx_guest",
            "dev/sev-guest",
            "sys/kernel/config/tsm/report",
        ],
        |probe| SimAttester::with_probe(probe, &SEED, enclave(false)),
    );
    let empty = tempfile::tempdir().unwrap();
    let sim = SimAttester::with_probe(&HostProbe::with_root(empty.path()), &SEED, enclave(false))
        .unwrap();
    let quote = sim.evidence(&[5; 64]).unwrap();
    assert_eq!(Evidence::parse(&quote).unwrap().report_data(), &[5; 64]);
}

#[test]
fn mock_pccs_serves_collateral_the_verifier_accepts() {
    let pki = SimPki::from_seed(&SEED).unwrap();
    let pccs = MockPccs::start(&pki, &CollateralOptions::default()).unwrap();
    let quote = pki.quote(&enclave(false), &[0; 64]);
    let collateral = mse_attest::fetch_collateral_blocking(&pccs.url(), &quote).unwrap();
    let evidence = Evidence::parse(&quote).unwrap();
    let anchors = TrustAnchors::intel().with_simulation_root(pki.root_der.clone());
    let report = verify(&evidence, &collateral, &anchors, &policy(true, false), None);
    assert!(report.trusted(), "{report}");
}
