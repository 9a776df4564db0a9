//! RA-TLS certificates: ours verify; a certificate whose report_data does not bind its key is
//! refused; Gramine's legacy form and the TCG DICE form are read and bound correctly.

#[path = "ratls_support/mod.rs"]
mod support;

use std::time::{Duration, UNIX_EPOCH};

use mse_attest::attester::Attester;
use mse_attest::ratls::{
    EvidenceForm, RaTlsCert, RaTlsError, encode_claims, encode_tagged_evidence,
    report_data_for_key, verify_certificate,
};
use mse_attest::{Collateral, Policy, TrustAnchors};
use mse_attest_sim::CollateralOptions;
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use sha2::{Digest, Sha256};
use support::*;

fn policy() -> Policy {
    Policy {
        allow_simulation: true,
        now: Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        ..Policy::default()
    }
}

fn sim_context() -> (TrustAnchors, Collateral) {
    let pki = pki();
    let collateral = Collateral::Dcap(pki.collateral(&CollateralOptions::default()).unwrap());
    (
        TrustAnchors::intel().with_simulation_root(pki.root_der.clone()),
        collateral,
    )
}

/// A self-signed certificate for `key` carrying `extensions`.
fn cert_with(key: &KeyPair, extensions: Vec<CustomExtension>) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["gramine.test".to_owned()]).unwrap();
    params.custom_extensions = extensions;
    params.self_signed(key).unwrap().der().to_vec()
}

/// A certificate carrying `value` in the TCG DICE tagged-evidence extension (2.23.133.5.4.9).
fn tcg_cert_with(key: &KeyPair, value: Vec<u8>) -> Vec<u8> {
    cert_with(
        key,
        vec![CustomExtension::from_oid_content(
            &[2, 23, 133, 5, 4, 9],
            value,
        )],
    )
}

#[test]
fn our_certificate_parses_and_verifies() {
    let id = identity("app.example.com", false);
    for input in [id.cert_der.clone(), id.cert_pem().into_bytes()] {
        let cert = RaTlsCert::parse(&input).unwrap();
        assert_eq!(cert.form, EvidenceForm::Mse);
        assert_eq!(
            cert.forms_present,
            vec![EvidenceForm::Mse, EvidenceForm::TcgDice]
        );
        assert_eq!(cert.quote, id.quote);
        assert_eq!(cert.x25519_public(), Some(X25519));
        assert_eq!(cert.san, vec!["app.example.com".to_owned()]);
        assert_eq!(cert.not_after, 2_524_607_999);
    }
    let (anchors, collateral) = sim_context();
    let (cert, report) =
        verify_certificate(&id.cert_der, &collateral, &anchors, &policy()).unwrap();
    assert!(report.trusted(), "{report}");
    assert_eq!(report.measurement, MR_ENCLAVE.to_vec());
    assert_eq!(cert.expected_report_data.len(), 32);
}

#[test]
fn ip_address_san_is_written_as_ip() {
    let id = identity("127.0.0.1", false);
    assert_eq!(
        RaTlsCert::parse(&id.cert_der).unwrap().san,
        vec!["127.0.0.1".to_owned()]
    );
}

#[test]
fn certificate_whose_report_data_does_not_bind_its_key_is_refused() {
    let served_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let other_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let quote = sim_attester(false)
        .evidence(&report_data_for_key(other_key.public_key_raw(), &X25519))
        .unwrap();
    let der = cert_with(
        &served_key,
        vec![CustomExtension::from_oid_content(
            &[1, 2, 840, 113_741, 1337, 6],
            quote,
        )],
    );
    let (anchors, collateral) = sim_context();
    let (_, report) = verify_certificate(&der, &collateral, &anchors, &policy()).unwrap();
    assert!(!report.trusted());
    let expected = hex::encode(Sha256::digest(served_key.public_key_raw()));
    let err = report.error().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "report_data does not bind the expected data: expected {expected}, evidence has "
        )),
        "{err}"
    );
}

#[test]
fn gramine_legacy_oid_form_is_read_and_bound_to_the_spki() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(key.subject_public_key_info()));
    let quote = sim_attester(false).evidence(&rd).unwrap();
    // Gramine's quirk: the OID's DER header inside its content, i.e. 0.6.9.42.840.113741.1337.6.
    let der = cert_with(
        &key,
        vec![CustomExtension::from_oid_content(
            &[0, 6, 9, 42, 840, 113_741, 1337, 6],
            quote,
        )],
    );
    let cert = RaTlsCert::parse(&der).unwrap();
    assert_eq!(cert.form, EvidenceForm::GramineLegacy);
    assert_eq!(cert.x25519_public(), None);
    let (anchors, collateral) = sim_context();
    let (_, report) = verify_certificate(&der, &collateral, &anchors, &policy()).unwrap();
    assert!(report.trusted(), "{report}");
}

#[test]
fn tcg_tagged_evidence_form_is_read_and_bound_through_the_claims() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let spki_hash: [u8; 32] = Sha256::digest(key.subject_public_key_info()).into();
    let claims = encode_claims(&spki_hash).unwrap();
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(&claims));
    let quote = sim_attester(false).evidence(&rd).unwrap();
    let value = encode_tagged_evidence(&quote, &claims).unwrap();
    let der = tcg_cert_with(&key, value);
    let cert = RaTlsCert::parse(&der).unwrap();
    assert_eq!(cert.form, EvidenceForm::TcgDice);
    let (anchors, collateral) = sim_context();
    let (_, report) = verify_certificate(&der, &collateral, &anchors, &policy()).unwrap();
    assert!(report.trusted(), "{report}");

    // Claims naming another key are refused before any quote check.
    let wrong = encode_claims(&[0u8; 32]).unwrap();
    let value = encode_tagged_evidence(&quote, &wrong).unwrap();
    let der = tcg_cert_with(&key, value);
    let err = RaTlsCert::parse(&der).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "TCG claims bind key hash alg 1: {}, but the certificate's key hashes to {}",
            hex::encode([0u8; 32]),
            hex::encode(spki_hash)
        )
    );
}

#[test]
fn tampered_names_break_the_self_signature() {
    let id = identity("app.example.com", false);
    let mut der = id.cert_der.clone();
    let at = der
        .windows(15)
        .position(|w| w == b"app.example.com")
        .unwrap();
    der[at] = b'x';
    assert_eq!(
        RaTlsCert::parse(&der).unwrap_err().to_string(),
        "the certificate is not self-signed by its key: signature does not verify with the certificate's own key"
    );
}

#[test]
fn certificates_without_evidence_or_garbage_are_clear_errors() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let err = RaTlsCert::parse(&cert_with(&key, vec![])).unwrap_err();
    assert!(matches!(err, RaTlsError::NoEvidence));
    assert_eq!(
        err.to_string(),
        "the certificate carries no attestation evidence (no extension 1.2.840.113741.1337.6, Gramine's legacy OID, or 2.23.133.5.4.9)"
    );
    assert!(matches!(
        RaTlsCert::parse(b"\x30\x03\x02\x01\x01").unwrap_err(),
        RaTlsError::NotCertificate(_)
    ));
    assert!(matches!(
        RaTlsCert::parse(b"").unwrap_err(),
        RaTlsError::NotCertificate(_)
    ));
    assert_eq!(
        RaTlsCert::parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap_err()
            .to_string(),
        "not an X.509 certificate: no CERTIFICATE block in PEM"
    );
}

#[test]
fn debug_enclave_certificate_is_refused_without_allow_debug() {
    let id = identity("app.example.com", true);
    let (anchors, collateral) = sim_context();
    let (_, report) = verify_certificate(&id.cert_der, &collateral, &anchors, &policy()).unwrap();
    assert!(!report.trusted());
    assert_eq!(
        report.error().unwrap().to_string(),
        "SGX evidence is from a debug-mode TEE (use --allow-debug to accept it)"
    );
}

#[test]
fn corrupted_certificates_never_panic_and_are_never_trusted() {
    // The self-signature covers everything but the outer signature fields, and those are
    // checked too: any change at all must be refused.
    let id = identity("app.example.com", false);
    let (anchors, collateral) = sim_context();
    // Deterministic xorshift: reproducible corruption without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..400 {
        let mut der = id.cert_der.clone();
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let at = (next() % der.len() as u64) as usize;
            der[at] ^= 1 << (next() % 8);
        }
        if der == id.cert_der {
            continue;
        }
        let cut = (next() % (der.len() as u64 + 1)) as usize;
        for input in [&der[..], &der[..cut]] {
            if let Ok((_, report)) = verify_certificate(input, &collateral, &anchors, &policy()) {
                assert!(!report.trusted(), "a corrupted certificate was trusted");
            }
        }
    }
}

#[test]
fn a_persisted_key_gets_a_fresh_certificate_with_the_same_binding() {
    let first = identity("app.example.com", false);
    let again = mse_attest::ratls::generate_with_key(
        &sim_attester(false),
        &params("app.example.com"),
        &first.key_pkcs8_der,
    )
    .unwrap();
    let (a, b) = (
        RaTlsCert::parse(&first.cert_der).unwrap(),
        RaTlsCert::parse(&again.cert_der).unwrap(),
    );
    assert_eq!(a.spki_der, b.spki_der);
    assert_eq!(a.expected_report_data, b.expected_report_data);
    let err =
        mse_attest::ratls::generate_with_key(&sim_attester(false), &params("x"), b"not a key")
            .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("building the certificate: loading the key (expected PKCS#8 P-256): "),
        "{err}"
    );
}
