//! The real SEV-SNP report (Milan) verifies against AMD's ARK with its VCEK.

use mse_attest::Policy;
use mse_attest::report::{Outcome, Report};
use mse_attest::{
    Collateral, Evidence, EvidenceKind, SnpMinTcb, SnpSigningKey, TrustAnchors, VerifyError, verify,
};

mod vectors;
use vectors::{at, data};

const MARCH_2026: u64 = 1_772_323_200;

/// `verify` with the default trust anchors and no expected report data.
fn verify_snp(evidence: &Evidence, collateral: &Collateral, policy: &Policy) -> Report {
    verify(evidence, collateral, &TrustAnchors::intel(), policy, None)
}

fn vcek() -> Collateral {
    Collateral::from_bytes(&data("sev-snp/vcek_milan.der")).unwrap()
}

#[test]
fn snp_report_fields() {
    let Evidence::SevSnp(r) = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap() else {
        panic!("not SEV-SNP")
    };
    assert_eq!(r.version, 2);
    assert_eq!(r.reported_tcb.to_string(), "bl3/tee0/snp8/ucode115");
    assert!(!r.is_debug());
    assert_eq!(r.cpuid, None);
    assert_eq!(r.signed_bytes().len(), 0x2A0);
}

#[test]
fn snp_report_valid() {
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    let report = verify_snp(&evidence, &vcek(), &at(MARCH_2026));
    assert_eq!(report.error(), None);
    assert!(report.trusted());
    assert_eq!(report.kind, EvidenceKind::SevSnp);
    assert_eq!(
        report.platform_tcb.as_deref(),
        Some("bl3/tee0/snp8/ucode115")
    );
    assert_eq!(report.tcb_status, None);
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "simulation",
            "collateral",
            "certificate_chain",
            "report_signature",
            "vcek_tcb",
            "guest_policy",
            "minimum_tcb",
            "tcb_status",
            "debug",
            "report_data_binding",
            "measurement",
            "signer"
        ]
    );
}

#[test]
fn snp_vcek_in_pem_is_accepted() {
    let der = data("sev-snp/vcek_milan.der");
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(&der)
    );
    assert_eq!(Collateral::from_bytes(pem.as_bytes()).unwrap(), vcek());
}

fn base64_lines(der: &[u8]) -> String {
    // Tiny encoder for the test only (standard alphabet, with padding).
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn snp_flipping_bit_0x80_of_byte_21_fails() {
    let Evidence::SevSnp(r) = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap() else {
        panic!("not SEV-SNP")
    };
    let mut raw = r.raw.clone();
    raw[21] ^= 0x80;
    let evidence = Evidence::parse(&raw).unwrap();
    let report = verify_snp(&evidence, &vcek(), &at(MARCH_2026));
    assert!(!report.trusted());
    assert_eq!(
        report.error(),
        Some(VerifyError::Signature(
            "VCEK signature over the SEV-SNP report is invalid".into()
        ))
    );
}

#[test]
fn snp_with_dcap_collateral_is_refused() {
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    let dcap = Collateral::from_bytes(&data("dcap/sgx_quote_collateral.json")).unwrap();
    let report = verify_snp(&evidence, &dcap, &at(MARCH_2026));
    assert_eq!(
        report.error(),
        Some(VerifyError::CollateralKind {
            expected: EvidenceKind::SevSnp,
            got: "SGX/TDX (DCAP collateral JSON)"
        })
    );
    assert_eq!(
        report.check("report_signature"),
        Some(&Outcome::Fail(
            "not evaluated: no VCEK certificate given".into()
        ))
    );
}

#[test]
fn snp_vcek_not_from_amd_is_refused() {
    // The ASK is signed by the ARK, not by itself: as a "VCEK" it does not chain.
    let chain = data("sev-snp/cert_chain_milan");
    let ask = Collateral::from_bytes(&chain).unwrap();
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    let report = verify_snp(&evidence, &ask, &at(MARCH_2026));
    assert!(!report.trusted());
    assert_eq!(
        report.check("certificate_chain"),
        Some(&Outcome::Fail(
            "certificate chain invalid: VCEK is not signed by AMD's Milan, Genoa or Turin ASK/ARK"
                .into()
        ))
    );
}

#[test]
fn snp_vcek_outside_its_validity_is_refused() {
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    // 2000-01-01: before the VCEK was issued.
    let report = verify_snp(&evidence, &vcek(), &at(946_684_800));
    assert!(!report.trusted());
    let Some(VerifyError::CertificateChain(msg)) = report.error() else {
        panic!("unexpected {:?}", report.error())
    };
    assert!(msg.starts_with("VCEK is valid from "), "{msg}");
    assert!(msg.ends_with(", not at the verification time"), "{msg}");
}

#[test]
fn snp_measurement_pinning() {
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    let mut policy = at(MARCH_2026);
    policy.expected_measurement = Some(evidence.measurement().to_vec());
    let report = verify_snp(&evidence, &vcek(), &policy);
    assert!(report.trusted());
    policy.expected_measurement = Some(vec![0; 48]);
    let report = verify_snp(&evidence, &vcek(), &policy);
    assert_eq!(
        report.error(),
        Some(VerifyError::Measurement {
            expected: "00".repeat(48),
            actual: hex::encode(evidence.measurement()),
        })
    );
}

// --- VLEK-signed reports (chain VLEK → ASVK → ARK) ---------------------------------------

/// 2025-06-01T00:00:00Z: inside the sample VLEK's validity (2024-12-10 … 2025-12-10).
const JUNE_2025: u64 = 1_748_736_000;

fn vlek() -> Collateral {
    Collateral::from_bytes(&data("sev-snp/trustee-test-vlek.der")).unwrap()
}

fn vlek_report() -> Vec<u8> {
    data("sev-snp/trustee-test-vlek-report.bin")
}

#[test]
fn vlek_report_fields_name_its_key() {
    let Evidence::SevSnp(r) = Evidence::parse(&vlek_report()).unwrap() else {
        panic!("not SEV-SNP")
    };
    assert_eq!(r.version, 3);
    assert_eq!(r.signing_key(), SnpSigningKey::Vlek);
    assert_eq!(r.signing_key().to_string(), "VLEK");
    assert_eq!(r.reported_tcb.to_string(), "bl4/tee0/snp24/ucode217");
    assert_eq!(r.cpuid, Some((0x19, 0x01, 0x01)));
    assert!(!r.is_debug());
    assert!(!r.allows_migration_agent());
    let Evidence::SevSnp(milan) = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap()
    else {
        panic!("not SEV-SNP")
    };
    assert_eq!(milan.signing_key(), SnpSigningKey::Vcek);
}

#[test]
fn real_vlek_report_with_its_chain_verifies() {
    let evidence = Evidence::parse(&vlek_report()).unwrap();
    let report = verify_snp(&evidence, &vlek(), &at(JUNE_2025));
    assert_eq!(report.error(), None);
    assert!(report.trusted());
    assert!(!report.simulated);
    assert_eq!(report.signing_key.as_deref(), Some("VLEK (AMD Milan)"));
    assert!(
        report
            .to_string()
            .contains("\nSigning key:  VLEK (AMD Milan)\n")
    );
    assert_eq!(report.check("certificate_chain"), Some(&Outcome::Pass));
    assert_eq!(report.check("vcek_tcb"), Some(&Outcome::Pass));

    // The same with the VLEK followed by AMD's ASK, ARK and ASVK in one PEM file (the ARK in
    // it is ignored: AMD's are pinned).
    let mut pem = mse_attest::to_pem(&data("sev-snp/trustee-test-vlek.der"));
    pem.push_str(&String::from_utf8(data("sev-snp/milan_ask_ark_asvk.pem")).unwrap());
    let collateral = Collateral::from_bytes(pem.as_bytes()).unwrap();
    let Collateral::SevSnp { chain_der, .. } = &collateral else {
        panic!("not SEV-SNP collateral")
    };
    assert_eq!(chain_der.len(), 3);
    let report = verify_snp(&evidence, &collateral, &at(JUNE_2025));
    assert_eq!(report.error(), None);
}

#[test]
fn real_vlek_report_with_a_flipped_byte_fails() {
    for pos in [0x08, 0x50, 0x90, 0xC0, 0x1A0, 0x29F] {
        let mut raw = vlek_report();
        raw[pos] ^= 0x01;
        let evidence = Evidence::parse(&raw).unwrap();
        let report = verify_snp(&evidence, &vlek(), &at(JUNE_2025));
        assert!(!report.trusted(), "byte {pos:#x}");
        assert_eq!(
            report.check("report_signature"),
            Some(&Outcome::Fail(
                "signature invalid: VLEK signature over the SEV-SNP report is invalid".into()
            )),
            "byte {pos:#x}"
        );
    }
    // A flip in the signature itself.
    let mut raw = vlek_report();
    raw[0x2A0] ^= 0x01;
    let report = verify_snp(&Evidence::parse(&raw).unwrap(), &vlek(), &at(JUNE_2025));
    assert_eq!(
        report.error(),
        Some(VerifyError::Signature(
            "VLEK signature over the SEV-SNP report is invalid".into()
        ))
    );
}

#[test]
fn vlek_report_checked_against_the_wrong_key_kind_fails() {
    let cases = [
        // The VLEK report with Milan's VCEK: a VCEK does not hang under the ASVK.
        (
            vlek_report(),
            vcek(),
            "VLEK is not signed by AMD's Milan, Genoa or Turin ASVK/ARK",
        ),
        // The VCEK report with the VLEK: a VLEK does not hang under the ASK.
        (
            data("sev-snp/report_milan.hex"),
            vlek(),
            "VCEK is not signed by AMD's Milan, Genoa or Turin ASK/ARK",
        ),
    ];
    for (raw, collateral, chain_error) in cases {
        let report = verify_snp(&Evidence::parse(&raw).unwrap(), &collateral, &at(JUNE_2025));
        assert_eq!(
            report.error(),
            Some(VerifyError::CertificateChain(chain_error.into()))
        );
    }
}

#[test]
fn vlek_outside_its_validity_is_refused() {
    let evidence = Evidence::parse(&vlek_report()).unwrap();
    // 2026-03-01: after the sample VLEK expired.
    let report = verify_snp(&evidence, &vlek(), &at(MARCH_2026));
    assert_eq!(
        report.error(),
        Some(VerifyError::CertificateChain(
            "VLEK is valid from Dec 10 22:14:21 2024 +00:00 to Dec 10 22:14:21 2025 +00:00, not at the verification time".into()
        ))
    );
}

#[test]
fn pinned_arks_and_asks_are_the_sev_crates() {
    use sev::certs::snp::builtin;
    let products = mse_attest::verify::amd_products();
    let names: Vec<_> = products.iter().map(|p| p.name).collect();
    assert_eq!(names, ["Milan", "Genoa", "Turin"]);
    let sev_pems: [(&[u8], &[u8]); 3] = [
        (builtin::milan::ARK, builtin::milan::ASK),
        (builtin::genoa::ARK, builtin::genoa::ASK),
        (builtin::turin::ARK, builtin::turin::ASK),
    ];
    for (p, (ark, ask)) in products.iter().zip(sev_pems) {
        assert_eq!(
            mse_attest::verify::pem_certificates(ark),
            std::slice::from_ref(&p.ark),
            "{}",
            p.name
        );
        assert_eq!(
            mse_attest::verify::pem_certificates(ask),
            std::slice::from_ref(&p.ask),
            "{}",
            p.name
        );
        assert_eq!(
            mse_attest::verify::common_name(&p.asvk),
            Some(format!("SEV-VLEK-{}", p.name))
        );
    }
}

// --- policy: minimum TCB, migration agent, report versions -------------------------------

#[test]
fn minimum_tcb_per_component() {
    let evidence = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    // Reported: bl3/tee0/snp8/ucode115.
    let mut policy = at(MARCH_2026);
    policy.snp_min_tcb = SnpMinTcb {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
        fmc: 0,
    };
    let report = verify_snp(&evidence, &vcek(), &policy);
    assert!(report.trusted());
    assert_eq!(report.check("minimum_tcb"), Some(&Outcome::Pass));
    // Each component one above what the report has, the others unset.
    for (component, reported, minimum) in [
        ("bootloader", 3, 4),
        ("tee", 0, 1),
        ("snp", 8, 9),
        ("microcode", 115, 116),
    ] {
        let mut min = SnpMinTcb::default();
        *match component {
            "bootloader" => &mut min.bootloader,
            "tee" => &mut min.tee,
            "snp" => &mut min.snp,
            _ => &mut min.microcode,
        } = minimum;
        policy.snp_min_tcb = min;
        let report = verify_snp(&evidence, &vcek(), &policy);
        assert!(!report.trusted());
        let err = VerifyError::TcbBelowMinimum {
            component,
            reported,
            minimum,
        };
        assert_eq!(report.error(), Some(err.clone()));
        assert_eq!(
            err.to_string(),
            format!(
                "SEV-SNP reported TCB {component} is {reported}, below the policy's minimum {minimum}"
            )
        );
    }
}

#[test]
fn report_versions_2_3_and_5_parse() {
    let milan = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    for (version, cpuid, mit) in [
        (2u32, None, None),
        (3, Some((0x19, 0x01, 0x01)), None),
        (5, Some((0x19, 0x01, 0x01)), Some((0x11, 0x22))),
    ] {
        let mut raw = milan.raw().to_vec();
        raw[..4].copy_from_slice(&version.to_le_bytes());
        raw[0x188..0x18B].copy_from_slice(&[0x19, 0x01, 0x01]);
        raw[0x1F8..0x200].copy_from_slice(&0x11u64.to_le_bytes());
        raw[0x200..0x208].copy_from_slice(&0x22u64.to_le_bytes());
        let Evidence::SevSnp(r) = Evidence::parse(&raw).unwrap() else {
            panic!("not SEV-SNP")
        };
        assert_eq!(r.version, version);
        assert_eq!(r.cpuid, cpuid);
        assert_eq!(
            (r.launch_mit_vector, r.current_mit_vector),
            match mit {
                Some((l, c)) => (Some(l), Some(c)),
                None => (None, None),
            }
        );
        assert_eq!(r.reported_tcb.to_string(), "bl3/tee0/snp8/ucode115");
    }
    for version in [1u32, 6] {
        let mut raw = milan.raw().to_vec();
        raw[..4].copy_from_slice(&version.to_le_bytes());
        assert!(Evidence::parse(&raw).is_err(), "version {version}");
    }
}
