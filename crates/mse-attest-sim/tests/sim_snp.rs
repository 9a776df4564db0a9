//! The simulated SEV-SNP TEE through the one SNP verifier of mse-attest: mock AMD chain from a
//! seed, genuine-format reports (v2, v3, v5), the mock KDS, the guest attester and RA-TLS.

#[path = "ratls_support/mod.rs"]
mod support;

use std::time::{Duration, UNIX_EPOCH};

use mse_attest::attester::{Attester, HostProbe};
use mse_attest::evidence::SnpSigningKey;
use mse_attest::ratls::{
    RaTlsParams, anchors_for_collateral, generate, report_data_for_key, verify_certificate,
};
use mse_attest::report::Outcome;
use mse_attest::{
    Collateral, CollateralError, Evidence, EvidenceKind, Policy, TeeKind, TrustAnchors,
    VerifyError, verify,
};
use mse_attest_sim::snp::{SIM_SNP_POLICY, SimSnpTcb, derived_key};
use mse_attest_sim::{MockKds, SimAmdPki, SimSnpAttester, SnpLaunch, sim_ark_from_collateral};
use support::TlsServer;

const SEED: [u8; 32] = [0x5E; 32];
const MEASUREMENT: [u8; 48] = [0x4D; 48];
const HOST_DATA: [u8; 32] = [0x48; 32];
const REPORT_DATA: [u8; 64] = [0x52; 64];
/// 2026-03-01T00:00:00Z, inside the mock certificates' validity (2024 … 2049).
const MARCH_2026: u64 = 1_772_323_200;

fn policy(allow_simulation: bool) -> Policy {
    Policy {
        allow_simulation,
        now: Some(UNIX_EPOCH + Duration::from_secs(MARCH_2026)),
        ..Policy::default()
    }
}

fn pki() -> SimAmdPki {
    SimAmdPki::from_seed(&SEED).unwrap()
}

fn anchors(pki: &SimAmdPki) -> TrustAnchors {
    TrustAnchors::intel().with_simulation_root(pki.ark_der.clone())
}

fn launch(version: u32) -> SnpLaunch {
    SnpLaunch {
        version,
        ..SnpLaunch::new(MEASUREMENT, HOST_DATA)
    }
}

fn empty_host() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn mock_amd_pki_is_deterministic_per_seed() {
    let (a, b, c) = (pki(), pki(), SimAmdPki::from_seed(&[0x77; 32]).unwrap());
    assert_eq!(
        (&a.ark_der, &a.ask_der, &a.vcek_der, a.chip_id),
        (&b.ark_der, &b.ask_der, &b.vcek_der, b.chip_id)
    );
    assert_ne!(a.ark_der, c.ark_der);
    assert_ne!(a.chip_id, c.chip_id);
    assert_eq!(
        a.report(&launch(3), &REPORT_DATA),
        b.report(&launch(3), &REPORT_DATA)
    );
    // The VCEK is issued for the platform's TCB: another TCB, another VCEK.
    let other_tcb = SimAmdPki::with_tcb(
        &SEED,
        SimSnpTcb {
            snp: 23,
            ..SimSnpTcb::default()
        },
    )
    .unwrap();
    assert_eq!(other_tcb.ark_der, a.ark_der);
    assert_ne!(other_tcb.vcek_der, a.vcek_der);
    assert_eq!(
        mse_attest::verify::common_name(&a.ark_der).as_deref(),
        Some("ARK-MSE-Simulated")
    );
    assert_eq!(
        mse_attest::verify::common_name(&a.vcek_der).as_deref(),
        Some("SEV-VCEK")
    );
}

#[test]
fn sim_reports_of_versions_2_3_and_5_have_the_real_layout_and_verify() {
    let pki = pki();
    for version in [2u32, 3, 5] {
        let raw = pki.report(&launch(version), &REPORT_DATA);
        assert_eq!(raw.len(), 0x4A0);
        let evidence = Evidence::parse(&raw).unwrap();
        let Evidence::SevSnp(r) = &evidence else {
            panic!("not SEV-SNP")
        };
        assert_eq!(r.version, version);
        assert_eq!(r.measurement, MEASUREMENT);
        assert_eq!(r.host_data, HOST_DATA);
        assert_eq!(r.report_data, REPORT_DATA);
        assert_eq!(r.policy, SIM_SNP_POLICY);
        assert_eq!(r.chip_id, pki.chip_id);
        assert_eq!(r.signing_key(), SnpSigningKey::Vcek);
        assert_eq!(r.reported_tcb.to_string(), "bl4/tee0/snp22/ucode213");
        assert_eq!(r.cpuid, (version >= 3).then_some((0x19, 0x01, 0x01)));
        assert_eq!(r.launch_mit_vector, (version >= 5).then_some(0));
        assert_eq!(r.report_id_ma, [0xFF; 32]);

        let report = verify(
            &evidence,
            &pki.collateral(),
            &anchors(&pki),
            &policy(true),
            None,
        );
        assert_eq!(report.error(), None, "v{version}: {report}");
        assert!(report.trusted());
        assert!(report.simulated);
        assert_eq!(report.kind, EvidenceKind::SevSnp);
        assert_eq!(report.signing_key.as_deref(), Some("VCEK (simulation)"));
        assert_eq!(report.check("simulation"), Some(&Outcome::Pass));
        let text = report.to_string();
        assert!(
            text.starts_with("TEE:          SEV-SNP (simulated)\n"),
            "{text}"
        );
    }
}

#[test]
fn sim_report_refused_without_allow_simulation() {
    let pki = pki();
    let evidence = Evidence::parse(&pki.report(&launch(3), &REPORT_DATA)).unwrap();
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&pki),
        &policy(false),
        None,
    );
    assert!(!report.trusted());
    assert!(report.simulated);
    assert_eq!(report.error(), Some(VerifyError::SimulationRefused));
    assert_eq!(
        report.error().unwrap().to_string(),
        "evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)"
    );
}

#[test]
fn sim_report_without_or_with_another_mock_root_does_not_chain() {
    let pki = pki();
    let evidence = Evidence::parse(&pki.report(&launch(3), &REPORT_DATA)).unwrap();
    // The mock ARK in the collateral is never trusted by itself.
    let report = verify(
        &evidence,
        &pki.collateral(),
        &TrustAnchors::intel(),
        &policy(true),
        None,
    );
    assert!(!report.simulated);
    assert_eq!(
        report.error(),
        Some(VerifyError::CertificateChain(
            "VCEK is not signed by AMD's Milan, Genoa or Turin ASK/ARK".into()
        ))
    );
    let other = SimAmdPki::from_seed(&[0x77; 32]).unwrap();
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&other),
        &policy(true),
        None,
    );
    assert!(!report.trusted());
    assert_eq!(
        report.error(),
        Some(VerifyError::CertificateChain(
            "VCEK is not signed by AMD's Milan, Genoa or Turin ASK/ARK nor by the simulation ARK"
                .into()
        ))
    );
    // Another chip's VCEK under the right root: its hwID and key differ.
    let evidence_other = Evidence::parse(&other.report(&launch(3), &REPORT_DATA)).unwrap();
    let report = verify(
        &evidence_other,
        &pki.collateral(),
        &anchors(&pki),
        &policy(true),
        None,
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::Signature(
            "VCEK signature over the SEV-SNP report is invalid".into()
        ))
    );
}

#[test]
fn sim_report_with_a_flipped_byte_fails() {
    let pki = pki();
    let raw = pki.report(&launch(3), &REPORT_DATA);
    for pos in (4..0x2A0).step_by(61).chain([0x2A0, 0x2E8]) {
        let mut bad = raw.clone();
        bad[pos] ^= 0x01;
        let evidence = Evidence::parse(&bad).unwrap();
        let report = verify(
            &evidence,
            &pki.collateral(),
            &anchors(&pki),
            &policy(true),
            None,
        );
        assert!(!report.trusted(), "byte {pos:#x}");
        assert_eq!(
            report.check("report_signature"),
            Some(&Outcome::Fail(
                "signature invalid: VCEK signature over the SEV-SNP report is invalid".into()
            )),
            "byte {pos:#x}"
        );
    }
}

#[test]
fn debug_and_migration_agent_policies_are_refused() {
    let pki = pki();
    let debug = SnpLaunch {
        policy: SIM_SNP_POLICY | 1 << 19,
        ..launch(3)
    };
    let evidence = Evidence::parse(&pki.report(&debug, &REPORT_DATA)).unwrap();
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&pki),
        &policy(true),
        None,
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::Debug {
            kind: EvidenceKind::SevSnp
        })
    );
    assert_eq!(
        report.error().unwrap().to_string(),
        "SEV-SNP evidence is from a debug-mode TEE (use --allow-debug to accept it)"
    );
    let mut allow_debug = policy(true);
    allow_debug.allow_debug = true;
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&pki),
        &allow_debug,
        None,
    );
    assert!(report.trusted(), "{report}");

    let ma = SnpLaunch {
        policy: SIM_SNP_POLICY | 1 << 18,
        ..launch(3)
    };
    let evidence = Evidence::parse(&pki.report(&ma, &REPORT_DATA)).unwrap();
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&pki),
        &allow_debug,
        None,
    );
    assert!(!report.trusted());
    assert_eq!(
        report.check("guest_policy"),
        Some(&Outcome::Fail(
            "SEV-SNP guest policy refused: policy 0x70000 allows a migration agent (MIGRATE_MA, bit 18), which can export the guest's memory".into()
        ))
    );
}

#[test]
fn expected_measurement_and_minimum_tcb_apply_to_sim_reports() {
    let pki = pki();
    let evidence = Evidence::parse(&pki.report(&launch(3), &REPORT_DATA)).unwrap();
    let mut p = policy(true);
    p.expected_measurement = Some(MEASUREMENT.to_vec());
    p.snp_min_tcb.snp = 22;
    let report = verify(
        &evidence,
        &pki.collateral(),
        &anchors(&pki),
        &p,
        Some(&REPORT_DATA),
    );
    assert!(report.trusted(), "{report}");
    p.expected_measurement = Some(vec![0; 48]);
    p.snp_min_tcb.snp = 23;
    let report = verify(&evidence, &pki.collateral(), &anchors(&pki), &p, None);
    assert_eq!(
        report.check("minimum_tcb"),
        Some(&Outcome::Fail(
            "SEV-SNP reported TCB snp is 22, below the policy's minimum 23".into()
        ))
    );
    assert_eq!(
        report.check("measurement"),
        Some(&Outcome::Fail(format!(
            "measurement mismatch: expected {}, evidence has {}",
            "00".repeat(48),
            "4d".repeat(48)
        )))
    );
}

#[test]
fn mock_kds_serves_the_chain_with_amds_url_shapes() {
    let pki = pki();
    let kds = MockKds::start(&pki).unwrap();
    let raw = pki.report(&launch(3), &REPORT_DATA);
    let collateral = mse_attest::fetch_snp_collateral_blocking(&kds.url(), &raw, None).unwrap();
    assert_eq!(collateral, pki.collateral());
    assert_eq!(
        sim_ark_from_collateral(&collateral),
        Some(pki.ark_der.clone())
    );
    let evidence = Evidence::parse(&raw).unwrap();
    let report = verify(
        &evidence,
        &collateral,
        &anchors_for_collateral(&evidence, &collateral),
        &policy(true),
        None,
    );
    assert!(report.trusted(), "{report}");

    // The exact KDS path of this chip's VCEK.
    let Evidence::SevSnp(r) = &evidence else {
        panic!("not SEV-SNP")
    };
    assert_eq!(
        mse_attest::collateral::kds_vcek_path("Milan", r),
        format!(
            "/vcek/v1/Milan/{}?blSPL=4&teeSPL=0&snpSPL=22&ucodeSPL=213",
            hex::encode(pki.chip_id)
        )
    );
    // Another product line, or a v2 report (no CPUID) without a product: clear errors.
    let err =
        mse_attest::fetch_snp_collateral_blocking(&kds.url(), &raw, Some("Genoa")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "KDS request {}/vcek/v1/Genoa/{}?blSPL=4&teeSPL=0&snpSPL=22&ucodeSPL=213 returned HTTP 404",
            kds.url(),
            hex::encode(pki.chip_id)
        )
    );
    let v2 = pki.report(&launch(2), &REPORT_DATA);
    assert!(matches!(
        mse_attest::fetch_snp_collateral_blocking(&kds.url(), &v2, None),
        Err(CollateralError::UnknownProduct)
    ));
    assert_eq!(
        mse_attest::fetch_snp_collateral_blocking(&kds.url(), &v2, Some("Milan")).unwrap(),
        pki.collateral()
    );
}

#[test]
fn sim_snp_attester_takes_the_launchers_three_inputs() {
    let host = empty_host();
    let attester = SimSnpAttester::with_probe(
        &HostProbe::with_root(host.path()),
        &SEED,
        MEASUREMENT,
        HOST_DATA,
    )
    .unwrap();
    assert_eq!(
        (attester.kind(), attester.tee_kind()),
        (TeeKind::SimSnp, EvidenceKind::SevSnp)
    );
    assert_eq!(attester.kind().to_string(), "sim-snp");
    let raw = attester.evidence(&REPORT_DATA).unwrap();
    assert_eq!(raw, pki().report(&launch(3), &REPORT_DATA));
    assert_eq!(
        attester.sealing_key().unwrap().as_slice(),
        derived_key(&SEED, &MEASUREMENT).as_slice()
    );
    assert_ne!(
        derived_key(&SEED, &MEASUREMENT),
        derived_key(&SEED, &[0; 48])
    );

    support::assert_sim_refused_next_to_real_tee(
        &[
            "dev/sev-guest",
            "sys/kernel/config/tsm/report",
            "dev/tdx_guest",
        ],
        |probe| SimSnpAttester::with_probe(probe, &SEED, MEASUREMENT, HOST_DATA),
    );
}

fn ratls_params() -> RaTlsParams {
    RaTlsParams {
        san: "app.example.com".into(),
        not_before: time::OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap(),
        not_after: time::OffsetDateTime::from_unix_timestamp(2_524_607_999).unwrap(),
        x25519_public: [0x25; 32],
    }
}

#[test]
fn ratls_certificate_from_the_sim_snp_attester_verifies() {
    let host = empty_host();
    let attester = SimSnpAttester::with_probe(
        &HostProbe::with_root(host.path()),
        &SEED,
        MEASUREMENT,
        HOST_DATA,
    )
    .unwrap();
    let id = generate(&attester, &ratls_params()).unwrap();
    let pki = pki();
    let (cert, report) = verify_certificate(
        &id.cert_der,
        &pki.collateral(),
        &anchors(&pki),
        &policy(true),
    )
    .unwrap();
    assert!(report.trusted(), "{report}");
    assert!(report.simulated);
    assert_eq!(report.check("report_data_binding"), Some(&Outcome::Pass));
    let Evidence::SevSnp(r) = Evidence::parse(&cert.quote).unwrap() else {
        panic!("not SEV-SNP")
    };
    assert_eq!((r.measurement, r.host_data), (MEASUREMENT, HOST_DATA));
    assert_eq!(r.report_data[..32], cert.expected_report_data[..]);
    let (_, point) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
    assert_eq!(
        r.report_data,
        report_data_for_key(&point.public_key().subject_public_key.data, &[0x25; 32])
    );
    let (_, refused) = verify_certificate(
        &id.cert_der,
        &pki.collateral(),
        &anchors(&pki),
        &policy(false),
    )
    .unwrap();
    assert_eq!(refused.error(), Some(VerifyError::SimulationRefused));
}

#[tokio::test]
async fn attest_a_sim_snp_server_with_the_mock_kds() {
    let host = empty_host();
    let attester = SimSnpAttester::with_probe(
        &HostProbe::with_root(host.path()),
        &SEED,
        MEASUREMENT,
        HOST_DATA,
    )
    .unwrap();
    let id = generate(&attester, &ratls_params()).unwrap();
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let kds = MockKds::start(&pki()).unwrap();
    let source = support::Source::Kds(kds.url());
    let (_, report) = support::fetch_and_verify(
        server.addr.port(),
        "app.example.com",
        &source,
        &policy(true),
    )
    .await;
    assert!(report.trusted(), "{report}");
    assert_eq!(report.signing_key.as_deref(), Some("VCEK (simulation)"));
    let (_, refused) = support::fetch_and_verify(
        server.addr.port(),
        "app.example.com",
        &source,
        &policy(false),
    )
    .await;
    assert_eq!(refused.error(), Some(VerifyError::SimulationRefused));
}

#[test]
fn a_real_amd_report_is_never_taken_for_simulation() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mse-attest/tests/data/sev-snp"
    );
    let hex_text = std::fs::read_to_string(format!("{dir}/report_milan.hex")).unwrap();
    let evidence = Evidence::parse(hex_text.trim().as_bytes()).unwrap();
    let vcek =
        Collateral::from_bytes(&std::fs::read(format!("{dir}/vcek_milan.der")).unwrap()).unwrap();
    let report = verify(&evidence, &vcek, &anchors(&pki()), &policy(false), None);
    assert!(report.trusted(), "{report}");
    assert!(!report.simulated);
    assert_eq!(report.signing_key.as_deref(), Some("VCEK (AMD Milan)"));
    assert_eq!(report.check("simulation"), Some(&Outcome::NotApplicable));
}
