//! Interop with the original system's Python stack:
//! - PyPI intel-sgx-ra (`sgx-ra-verify certificate --url … --pccs-url …`) accepts the
//!   certificate served by a sim RA-TLS server of ours, with collateral from our mock PCCS;
//! - a certificate laid out exactly as the original mse-lib-sgx writes it (Python
//!   `cryptography`) is read and verified by our parser.

#[path = "ratls_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use mse_attest::attester::Attester;
use mse_attest::ratls::{EvidenceForm, RaTlsCert, report_data_for_key, verify_certificate};
use mse_attest::{Collateral, Policy, TrustAnchors};
use mse_attest_sim::{CollateralOptions, MockPccs};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use support::*;

fn sgxra_venv() -> PathBuf {
    std::env::var_os("MSE_SGXRA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-sgxra"))
}

/// Intel's `sgx-ra-verify` (with `expect` arguments) against our sim server (debug or not) and
/// our mock PCCS.
fn sgx_ra_verify(debug: bool, expect: &[&str]) -> std::process::Output {
    let pki = pki();
    let pccs = MockPccs::start(&pki, &CollateralOptions::default()).unwrap();
    let id = identity("127.0.0.1", debug);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    Command::new(sgxra_venv().join("bin/sgx-ra-verify"))
        .args(expect)
        .args(["--pccs-url", &pccs.url()])
        .args([
            "certificate",
            "--url",
            &format!("https://127.0.0.1:{}", server.addr.port()),
        ])
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .expect("run sgx-ra-verify from the intel-sgx-ra venv")
}

#[test]
fn intel_sgx_ra_accepts_our_sim_server_with_our_mock_pccs() {
    let out = sgx_ra_verify(
        false,
        &[
            "--mrenclave",
            &hex::encode(MR_ENCLAVE),
            "--mrsigner",
            &hex::encode(MR_SIGNER),
        ],
    );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{log}");
    for line in [
        "[   OK ] RA-TLS verification of public key fingerprint",
        "[   OK ] No SGX debug mode",
        "[   OK ] Certification chain",
        "[   OK ] TCB signature",
        "[   OK ] Quote signature",
        "[   OK ] QE report signature",
        "[   OK ] MRENCLAVE matches expected value",
        "[   OK ] MRSIGNER matches expected value",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(!log.contains("[ FAIL ]"), "{log}");
}

#[test]
fn intel_sgx_ra_refuses_our_debug_sim_server() {
    let out = sgx_ra_verify(true, &[]);
    // sgx-ra-verify's exit code 3 = debug enclave.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the certificate the way mse-lib-sgx 2.x's `certificate.py` does.
const ORIGINAL_CERT_PY: &str = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
quote = open(sys.argv[2], "rb").read()
subject = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
    x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Ile-de-France"),
    x509.NameAttribute(NameOID.LOCALITY_NAME, "Paris"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cosmian Tech"),
    x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com"),
])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder()
    .subject_name(subject).issuer_name(subject).public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
    .add_extension(x509.SubjectAlternativeName([x509.DNSName("app.example.com")]), critical=False)
    .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.840.113741.1337.6"), quote), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256()))
open(sys.argv[3], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
"#;

#[test]
fn our_parser_reads_the_original_certificate_format() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let quote = sim_attester(false)
        .evidence(&report_data_for_key(key.public_key_raw(), &X25519))
        .unwrap();
    let (key_path, quote_path, cert_path) = (
        dir.path().join("key.pem"),
        dir.path().join("quote.bin"),
        dir.path().join("cert.pem"),
    );
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&quote_path, &quote).unwrap();
    mse_testkit::run_ok(
        Command::new(sgxra_venv().join("bin/python"))
            .arg("-c")
            .arg(ORIGINAL_CERT_PY)
            .args([&key_path, &quote_path, &cert_path]),
    );
    let pem = std::fs::read(&cert_path).unwrap();

    let cert = RaTlsCert::parse(&pem).unwrap();
    assert_eq!(cert.form, EvidenceForm::Mse);
    assert_eq!(cert.forms_present, vec![EvidenceForm::Mse]);
    assert_eq!(cert.x25519_public(), Some(X25519));
    assert_eq!(
        cert.subject,
        "C=FR, ST=Ile-de-France, L=Paris, O=Cosmian Tech, CN=app.example.com"
    );
    let p = pki();
    let collateral = Collateral::Dcap(p.collateral(&CollateralOptions::default()).unwrap());
    let anchors = TrustAnchors::intel().with_simulation_root(p.root_der.clone());
    let policy = Policy {
        allow_simulation: true,
        now: Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        ..Policy::default()
    };
    let (_, report) = verify_certificate(&pem, &collateral, &anchors, &policy).unwrap();
    assert!(report.trusted(), "{report}");
}
