//! Any single flipped byte inside the signed part of real evidence makes verification fail.

use std::time::{Duration, UNIX_EPOCH};

use mse_attest::{Collateral, Evidence, EvidenceError, Policy, TrustAnchors, VerifyError, verify};

mod vectors;
use vectors::data;

fn policy(unix: u64) -> Policy {
    let mut p = Policy {
        now: Some(UNIX_EPOCH + Duration::from_secs(unix)),
        ..Policy::default()
    };
    // The SGX vector's real status; accepting it makes the untouched quote trusted.
    p.accept_tcb(["ConfigurationAndSWHardeningNeeded"]).unwrap();
    p
}

const JULY_2025: u64 = 1_751_328_000;
const MARCH_2026: u64 = 1_772_323_200;

struct Vector {
    evidence: Vec<u8>,
    collateral: Collateral,
    now: u64,
    signed_len: usize,
}

fn vectors() -> Vec<(&'static str, Vector)> {
    let snp = Evidence::parse(&data("sev-snp/report_milan.hex")).unwrap();
    vec![
        (
            "sgx",
            Vector {
                evidence: data("dcap/sgx_quote"),
                collateral: Collateral::from_bytes(&data("dcap/sgx_quote_collateral.json"))
                    .unwrap(),
                now: JULY_2025,
                signed_len: 48 + 384,
            },
        ),
        (
            "tdx v4",
            Vector {
                evidence: data("dcap/tdx_quote"),
                collateral: Collateral::from_bytes(&data("dcap/tdx_quote_collateral.json"))
                    .unwrap(),
                now: JULY_2025,
                signed_len: 48 + 584,
            },
        ),
        (
            "tdx v5",
            Vector {
                evidence: data("dcap/tdx_quote_outdated"),
                collateral: Collateral::from_bytes(&data(
                    "dcap/tdx_quote_outdated_collateral.json",
                ))
                .unwrap(),
                now: MARCH_2026,
                signed_len: 48 + 6 + 648,
            },
        ),
        (
            "sev-snp",
            Vector {
                evidence: snp.raw().to_vec(),
                collateral: Collateral::from_bytes(&data("sev-snp/vcek_milan.der")).unwrap(),
                now: MARCH_2026,
                signed_len: 0x2A0,
            },
        ),
    ]
}

/// Verify `raw` and return the first error (a parse error counts as one).
fn first_error(raw: &[u8], v: &Vector) -> Result<Option<VerifyError>, EvidenceError> {
    let evidence = Evidence::parse(raw)?;
    let report = verify(
        &evidence,
        &v.collateral,
        &TrustAnchors::intel(),
        &policy(v.now),
        None,
    );
    assert_eq!(report.trusted(), report.error().is_none());
    Ok(report.error())
}

#[test]
fn untouched_vectors_pass_their_signature_checks() {
    for (name, v) in vectors() {
        let err = first_error(&v.evidence, &v).unwrap();
        match name {
            // Valid signatures; only its TCB has no matching level.
            "tdx v5" => assert_eq!(
                err,
                Some(VerifyError::Tcb("No matching TCB level found".into()))
            ),
            _ => assert_eq!(err, None, "{name}"),
        }
    }
}

#[test]
fn every_97th_signed_byte_flipped_fails() {
    for (name, v) in vectors() {
        for pos in (0..v.signed_len).step_by(97) {
            let mut raw = v.evidence.clone();
            raw[pos] ^= 0xFF;
            let got = first_error(&raw, &v);
            let expected = if pos == 0 {
                // The version byte: the evidence is no longer recognisable.
                Err(EvidenceError::UnknownKind {
                    head: hex::encode(&raw[..8]),
                })
            } else if name == "sev-snp" {
                Ok(Some(VerifyError::Signature(snp_message(pos).into())))
            } else {
                Ok(Some(VerifyError::Signature(
                    "ISV enclave report signature is invalid".into(),
                )))
            };
            assert_eq!(got, expected, "{name}: byte {pos} flipped");
        }
    }
}

/// SEV-SNP: the signature covers the received bytes 0..0x2A0 themselves, reserved ones
/// included, so any flip there breaks it.
fn snp_message(_pos: usize) -> &'static str {
    "VCEK signature over the SEV-SNP report is invalid"
}

#[test]
fn every_single_signed_byte_of_the_dcap_quotes_flipped_fails() {
    for (name, v) in vectors() {
        if name == "sev-snp" {
            continue;
        }
        for pos in 0..v.signed_len {
            let mut raw = v.evidence.clone();
            raw[pos] ^= 0x01;
            match first_error(&raw, &v) {
                Err(_) => {}
                Ok(Some(
                    VerifyError::Signature(_)
                    | VerifyError::QuoteFormat(_)
                    | VerifyError::Collateral(_),
                )) => {}
                other => panic!("{name}: byte {pos} flipped gave {other:?}"),
            }
        }
    }
}
