//! The real SEV-SNP report (Milan) verifies against AMD's ARK with its VCEK.

use mse_attest::report::Outcome;
use mse_attest::{Collateral, Evidence, TeeKind, TrustAnchors, VerifyError, verify};

mod vectors;
use vectors::{at, data};

const MARCH_2026: u64 = 1_772_323_200;

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
    let report = verify(
        &evidence,
        &vcek(),
        &TrustAnchors::intel(),
        &at(MARCH_2026),
        None,
    );
    assert_eq!(report.error(), None);
    assert!(report.trusted());
    assert_eq!(report.kind, TeeKind::SevSnp);
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
    let report = verify(
        &evidence,
        &vcek(),
        &TrustAnchors::intel(),
        &at(MARCH_2026),
        None,
    );
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
    let report = verify(
        &evidence,
        &dcap,
        &TrustAnchors::intel(),
        &at(MARCH_2026),
        None,
    );
    assert_eq!(
        report.error(),
        Some(VerifyError::CollateralKind {
            expected: TeeKind::SevSnp,
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
    let report = verify(
        &evidence,
        &ask,
        &TrustAnchors::intel(),
        &at(MARCH_2026),
        None,
    );
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
    let report = verify(
        &evidence,
        &vcek(),
        &TrustAnchors::intel(),
        &at(946_684_800),
        None,
    );
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
    let report = verify(&evidence, &vcek(), &TrustAnchors::intel(), &policy, None);
    assert!(report.trusted());
    policy.expected_measurement = Some(vec![0; 48]);
    let report = verify(&evidence, &vcek(), &TrustAnchors::intel(), &policy, None);
    assert_eq!(
        report.error(),
        Some(VerifyError::Measurement {
            expected: "00".repeat(48),
            actual: hex::encode(evidence.measurement()),
        })
    );
}
