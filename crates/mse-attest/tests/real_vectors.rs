//! The real evidence of tests/data (see its README) gives exactly the expected outcomes,
//! inside and outside its validity windows.

use mse_attest::report::Outcome;
use mse_attest::{
    Collateral, Evidence, EvidenceKind, Policy, Report, TrustAnchors, VerifyError, verify,
};
use sha2::{Digest, Sha256};

mod vectors;
use vectors::{at, data, verify_intel};

fn run(quote: &str, collateral: &str, policy: &Policy) -> Report {
    run_bound(quote, collateral, policy, None)
}

/// [`run`] expecting `report_data` in the evidence.
fn run_bound(quote: &str, collateral: &str, policy: &Policy, report_data: Option<&[u8]>) -> Report {
    let evidence = Evidence::parse(&data(quote)).expect("parse evidence");
    let collateral = Collateral::from_bytes(&data(collateral)).expect("parse collateral");
    verify(
        &evidence,
        &collateral,
        &TrustAnchors::intel(),
        policy,
        report_data,
    )
}

fn outcomes(report: &Report) -> Vec<(&'static str, String)> {
    report
        .checks
        .iter()
        .map(|c| {
            let o = match &c.outcome {
                Outcome::Pass => "pass".to_string(),
                Outcome::NotApplicable => "n/a".to_string(),
                Outcome::Fail(why) => format!("fail: {why}"),
            };
            (c.name, o)
        })
        .collect()
}

// 2025-07-01T00:00:00Z: inside both the SGX and the TDX v4 windows.
const JULY_2025: u64 = 1_751_328_000;
// 2026-03-01T00:00:00Z: inside the TDX v5 ("outdated") window.
const MARCH_2026: u64 = 1_772_323_200;
const SGX: (&str, &str) = ("dcap/sgx_quote", "dcap/sgx_quote_collateral.json");
const TDX: (&str, &str) = ("dcap/tdx_quote", "dcap/tdx_quote_collateral.json");
const TDX5: (&str, &str) = (
    "dcap/tdx_quote_outdated",
    "dcap/tdx_quote_outdated_collateral.json",
);

fn pass(name: &'static str) -> (&'static str, String) {
    (name, "pass".to_string())
}

/// The seven checks of signatures and chains (up to the quote's), passed, then `rest`.
fn signatures_pass_then<const N: usize>(
    rest: [(&'static str, String); N],
) -> Vec<(&'static str, String)> {
    [
        "simulation",
        "quote_format",
        "collateral",
        "certificate_chain",
        "qe_report_signature",
        "qe_identity",
        "quote_signature",
    ]
    .map(pass)
    .into_iter()
    .chain(rest)
    .collect()
}

fn na(name: &'static str) -> (&'static str, String) {
    (name, "n/a".to_string())
}

#[test]
fn intel_root_is_pinned() {
    let anchors = TrustAnchors::intel();
    assert_eq!(
        hex::encode(Sha256::digest(anchors.intel_root())),
        "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    );
    assert_eq!(anchors.simulation_root(), None);
}

#[test]
fn sgx_quote_fields() {
    let Evidence::Sgx(q) = Evidence::parse(&data(SGX.0)).unwrap() else {
        panic!("not SGX")
    };
    assert_eq!(q.raw.len(), 4600);
    assert_eq!(q.header.version, 3);
    assert_eq!(
        hex::encode(q.body.mr_enclave),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        hex::encode(q.body.mr_signer),
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!((q.body.isv_prod_id, q.body.isv_svn), (0, 0));
    assert!(!q.body.is_debug());
    assert_eq!(&q.body.report_data[..13], b"Hello, world!");
    assert!(q.body.report_data[13..].iter().all(|&b| b == 0));
    assert_eq!(q.qe.certification.cert_type, 5);
    assert_eq!(q.qe.certification.pem_chain_der().len(), 3);
    let root = &q.qe.certification.pem_chain_der()[2];
    assert_eq!(root[..], *TrustAnchors::intel().intel_root());
}

#[test]
fn sgx_quote_valid_in_window_and_tcb_status_reported() {
    let report = run(SGX.0, SGX.1, &at(JULY_2025));
    assert_eq!(report.kind, EvidenceKind::Sgx);
    assert_eq!(
        report.tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert_eq!(report.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(!report.simulated);
    // Every signature and chain is valid; only the TCB status is outside the default policy.
    assert_eq!(
        outcomes(&report),
        signatures_pass_then([
            (
                "tcb_status",
                "fail: TCB status ConfigurationAndSWHardeningNeeded is not accepted (accepted: UpToDate, SWHardeningNeeded)"
                    .to_string()
            ),
            pass("attributes"),
            pass("debug"),
            na("report_data_binding"),
            na("measurement"),
            na("signer"),
        ])
    );
    assert!(!report.trusted());
    assert_eq!(
        report.error(),
        Some(VerifyError::TcbStatus {
            status: "ConfigurationAndSWHardeningNeeded".into(),
            accepted: vec!["UpToDate".into(), "SWHardeningNeeded".into()],
        })
    );
}

#[test]
fn sgx_quote_trusted_when_its_tcb_status_is_accepted() {
    let mut policy = at(JULY_2025);
    policy
        .accept_tcb(["ConfigurationAndSWHardeningNeeded"])
        .unwrap();
    policy.expected_measurement = Some(
        hex::decode("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb").unwrap(),
    );
    policy.expected_signer = Some(
        hex::decode("815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6").unwrap(),
    );
    let report = run_bound(SGX.0, SGX.1, &policy, Some(b"Hello, world!"));
    assert_eq!(report.error(), None);
    assert!(report.trusted());
    assert_eq!(report.check("measurement"), Some(&Outcome::Pass));
    assert_eq!(report.check("signer"), Some(&Outcome::Pass));
    assert_eq!(report.check("report_data_binding"), Some(&Outcome::Pass));
    assert!(report.to_string().ends_with("Verdict:      TRUSTED"));
}

#[test]
fn sgx_quote_outside_window() {
    // One second before the TCB info was issued.
    let report = run(SGX.0, SGX.1, &at(1_750_330_570));
    assert!(!report.trusted());
    assert_eq!(
        report.error(),
        Some(VerifyError::Collateral(
            "TCBInfo issue date is in the future".into()
        ))
    );
    // One second after the earliest collateral expiry (the QE identity's next update).
    let report = run(SGX.0, SGX.1, &at(1_752_919_279));
    assert!(!report.trusted());
    assert_eq!(
        report.error(),
        Some(VerifyError::Collateral("QE Identity expired".into()))
    );
}

#[test]
fn tdx_v4_quote_valid_in_window() {
    let report = run(TDX.0, TDX.1, &at(JULY_2025));
    assert_eq!(report.error(), None);
    assert!(report.trusted());
    assert_eq!(report.kind, EvidenceKind::Tdx);
    assert_eq!(report.tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(report.advisories, Vec::<String>::new());
    assert_eq!(report.signer, None);
    assert_eq!(
        hex::encode(&report.measurement),
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
}

#[test]
fn tdx_v4_quote_outside_window() {
    // 2025-06-19T10:32:26Z, one second before the window opens.
    let report = run(TDX.0, TDX.1, &at(1_750_329_146));
    assert_eq!(
        report.error(),
        Some(VerifyError::Collateral(
            "QE Identity issue date is in the future".into()
        ))
    );
    assert_eq!(
        report.check("quote_signature"),
        Some(&Outcome::Fail(
            "not evaluated: verification stopped at collateral".into()
        ))
    );
    // 2025-07-19T10:00:36Z, one second after the window closes: a CRL has expired.
    let report = run(TDX.0, TDX.1, &at(1_752_919_236));
    assert_eq!(
        report.error(),
        Some(VerifyError::Collateral(
            "Failed to verify certificate chain: CrlExpired { time: UnixTime(1752919236), next_update: UnixTime(1752919235) }"
                .into()
        ))
    );
    // 2025-08-01T00:00:00Z: the TCB info itself has expired.
    let report = run(TDX.0, TDX.1, &at(1_754_006_400));
    assert_eq!(
        report.error(),
        Some(VerifyError::Collateral("TCBInfo expired".into()))
    );
    assert!(!report.trusted());
}

#[test]
fn tdx_v5_outdated_quote_has_valid_signatures_but_no_tcb_level() {
    let Evidence::Tdx(q) = Evidence::parse(&data(TDX5.0)).unwrap() else {
        panic!("not TDX")
    };
    assert_eq!((q.header.version, q.body_type), (5, 3));
    assert!(q.report.mr_service_td.is_some());
    let report = run(TDX5.0, TDX5.1, &at(MARCH_2026));
    assert!(!report.trusted());
    assert_eq!(report.tcb_status, None);
    let outcomes = outcomes(&report);
    assert_eq!(
        outcomes[..9],
        signatures_pass_then([
            (
                "tcb_status",
                "fail: TCB evaluation failed: No matching TCB level found".to_string()
            ),
            (
                "attributes",
                "fail: not evaluated: verification stopped at tcb_status".to_string()
            ),
        ])
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::Tcb("No matching TCB level found".into()))
    );
    // Outside its window the collateral is refused first.
    let report = run(TDX5.0, TDX5.1, &at(JULY_2025));
    assert!(
        matches!(report.error(), Some(VerifyError::Collateral(_))),
        "{report}"
    );
}

#[test]
fn tdx_hex_quote_with_0x_prefix_parses() {
    let text = data("dcap/tdx-quote.hex");
    assert!(text.starts_with(b"0x"));
    let Evidence::Tdx(q) = Evidence::parse(&text).unwrap() else {
        panic!("not TDX")
    };
    assert_eq!((q.header.version, q.body_type, q.raw.len()), (4, 2, 5006));
    assert_eq!(q.qe.certification.pem_chain_der().len(), 3);
    // The same bytes in binary parse to the same evidence.
    assert_eq!(Evidence::parse(&q.raw).unwrap(), Evidence::Tdx(q.clone()));
}

#[test]
fn tdx_quote_trailing_bytes_are_accepted() {
    let Evidence::Tdx(q) = Evidence::parse(&data(TDX.0)).unwrap() else {
        panic!("not TDX")
    };
    assert_eq!(q.raw.len(), 5006);
    assert_eq!(q.signed_bytes().len(), 48 + 584);
}

#[test]
fn dcap_evidence_with_vcek_collateral_is_refused() {
    let evidence = Evidence::parse(&data(SGX.0)).unwrap();
    let vcek = Collateral::from_bytes(&data("sev-snp/vcek_milan.der")).unwrap();
    let report = verify(
        &evidence,
        &vcek,
        &TrustAnchors::intel(),
        &at(JULY_2025),
        None,
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::CollateralKind {
            expected: EvidenceKind::Sgx,
            got: "SEV-SNP (a VCEK certificate)"
        })
    );
    assert_eq!(
        report.error().unwrap().to_string(),
        "collateral given is for SEV-SNP (a VCEK certificate), evidence is SGX"
    );
}

#[test]
fn real_quote_is_not_taken_for_simulation_unless_it_chains_to_the_sim_root() {
    // An unrelated simulation root: real evidence is still verified against Intel's root.
    let ark = mse_attest::Collateral::from_bytes(&data("sev-snp/vcek_milan.der")).unwrap();
    let Collateral::SevSnp { vek_der, .. } = ark else {
        panic!("not a certificate")
    };
    let anchors = TrustAnchors::intel().with_simulation_root(vek_der);
    let evidence = Evidence::parse(&data(TDX.0)).unwrap();
    let collateral = Collateral::from_bytes(&data(TDX.1)).unwrap();
    let report = verify(&evidence, &collateral, &anchors, &at(JULY_2025), None);
    assert!(report.trusted());
    assert!(!report.simulated);

    // Declaring Intel's root as the "simulation root" shows the refusal path: evidence that
    // chains to the simulation root is refused unless the policy allows simulation.
    let anchors =
        TrustAnchors::intel().with_simulation_root(TrustAnchors::intel().intel_root().to_vec());
    let report = verify(&evidence, &collateral, &anchors, &at(JULY_2025), None);
    assert!(report.simulated);
    assert!(!report.trusted());
    assert_eq!(report.error(), Some(VerifyError::SimulationRefused));
    let mut policy = at(JULY_2025);
    policy.allow_simulation = true;
    let report = verify(&evidence, &collateral, &anchors, &policy, None);
    assert!(report.simulated);
    assert!(report.trusted());
    assert!(
        report
            .to_string()
            .starts_with("TEE:          TDX (simulated)\n")
    );
}

#[test]
fn measurement_signer_and_binding_mismatches_are_reported_with_values() {
    let mut policy = at(JULY_2025);
    policy
        .accept_tcb(["ConfigurationAndSWHardeningNeeded"])
        .unwrap();
    policy.expected_measurement = Some(vec![0xAA; 32]);
    policy.expected_signer = Some(vec![0xBB; 32]);
    let report = run_bound(SGX.0, SGX.1, &policy, Some(b"Goodbye"));
    assert!(!report.trusted());
    let mut report_data = b"Hello, world!".to_vec();
    report_data.resize(64, 0);
    assert_eq!(
        report.error(),
        Some(VerifyError::Binding {
            expected: hex::encode(b"Goodbye"),
            actual: hex::encode(&report_data),
        })
    );
    assert_eq!(
        report.check("measurement"),
        Some(&Outcome::Fail(format!(
            "measurement mismatch: expected {}, evidence has 33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
            "aa".repeat(32)
        )))
    );
    assert_eq!(
        report.check("signer"),
        Some(&Outcome::Fail(format!(
            "signer mismatch: expected {}, evidence has 815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6",
            "bb".repeat(32)
        )))
    );
    // TDX has no MRSIGNER: a policy pinning one is refused with a clear reason.
    let evidence = Evidence::parse(&data(TDX.0)).unwrap();
    let collateral = Collateral::from_bytes(&data(TDX.1)).unwrap();
    let mut policy = at(JULY_2025);
    policy.expected_signer = Some(vec![0xBB; 32]);
    let report = verify_intel(&evidence, &collateral, &policy);
    assert_eq!(
        report.error().unwrap().to_string(),
        format!(
            "signer mismatch: expected {}, evidence has no signer identity (TDX evidence)",
            "bb".repeat(32)
        )
    );
}

#[test]
fn accept_tcb_rejects_unknown_status() {
    let mut policy = Policy::default();
    let err = policy.accept_tcb(["UpToDate", "Fine"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown TCB status \"Fine\"; known: UpToDate, SWHardeningNeeded, ConfigurationNeeded, \
         ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, \
         TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded, Revoked"
    );
}

#[test]
fn report_serializes_to_json() {
    let report = run(TDX.0, TDX.1, &at(JULY_2025));
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["kind"], "Tdx");
    assert_eq!(json["tcb_status"], "UpToDate");
    assert_eq!(json["trusted"], true);
    assert_eq!(
        json["checks"][0],
        serde_json::json!({"name": "simulation", "outcome": "pass"})
    );
    assert_eq!(json["measurement"], hex::encode(&report.measurement));
}

#[test]
fn fields_edited_after_parsing_do_not_pass_for_signed_ones() {
    let Evidence::Tdx(mut q) = Evidence::parse(&data(TDX.0)).unwrap() else {
        panic!("not TDX")
    };
    let signed_mrtd = q.report.mr_td;
    q.report.mr_td = [0x11; 48];
    let mut policy = at(JULY_2025);
    policy.expected_measurement = Some(vec![0x11; 48]);
    let collateral = Collateral::from_bytes(&data(TDX.1)).unwrap();
    let report = verify(
        &Evidence::Tdx(q.clone()),
        &collateral,
        &TrustAnchors::intel(),
        &policy,
        None,
    );
    assert_eq!(report.measurement, signed_mrtd);
    assert_eq!(
        report.error(),
        Some(VerifyError::Measurement {
            expected: "11".repeat(48),
            actual: hex::encode(signed_mrtd),
        })
    );
    // Raw bytes that no longer parse are refused as such.
    q.raw.truncate(100);
    let report = verify(
        &Evidence::Tdx(q),
        &collateral,
        &TrustAnchors::intel(),
        &policy,
        None,
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::QuoteFormat(
            "TD report is truncated: need 584 bytes at offset 48, have 52".into()
        ))
    );
}
