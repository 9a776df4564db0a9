//! `mse verify` on a machine that cannot reach any PCCS: every check that needs no collateral
//! (debug, report_data binding, measurement, certificate) is still evaluated and printed, the
//! others say "not evaluated" and why, and the exit code is 1.

mod verify_support;

use std::path::Path;

use verify_support::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loopback URL where nothing listens (connections are refused).
fn refusing_pccs() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn debug_certificate_without_collateral_prints_every_check_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity("app.example.com", true);
    let cert = dir.path().join("gramine-debug.pem");
    std::fs::write(&cert, id.cert_pem()).unwrap();
    let url = refusing_pccs();
    let cert_arg = cert.display().to_string();
    let fp = hex::encode(MR_ENCLAVE);
    let o = mse(&[
        "verify",
        "--cert",
        &cert_arg,
        "--pccs-url",
        &url,
        "--allow-simulation",
        "--fingerprint",
        &fp,
    ]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    let why = |line: &str| {
        line.split_once(": not evaluated: no collateral: ")
            .map(|(_, why)| why.to_owned())
    };
    // The reason names the PCCS request and the refusal.
    let reason = lines
        .iter()
        .find_map(|l| why(l))
        .unwrap_or_else(|| panic!("no 'not evaluated' line: {out}"));
    assert!(reason.contains(&url), "{reason}");
    let not_evaluated =
        |name: &str| format!("  [FAIL] {name}: not evaluated: no collateral: {reason}");
    assert_eq!(
        reason,
        format!(
            "PCCS request {url}/sgx/certification/v4/pckcrl?ca=platform&encoding=der failed: io: Connection refused (os error 111)"
        )
    );
    let expected = [
        format!("Source:       {cert_arg}"),
        "Certificate:  CN=app.example.com (SAN app.example.com)".to_owned(),
        "Valid:        2024-01-01T00:00:00Z .. 2049-12-31T23:59:59Z".to_owned(),
        "Evidence in:  MSE (1.2.840.113741.1337.6)".to_owned(),
        format!("Enclave key:  {} (X25519)", hex::encode(X25519)),
        "Warning:      simulated TEE: no hardware protection, for local testing only".to_owned(),
        "TEE:          SGX (simulated)".to_owned(),
        format!("Measurement:  {fp}"),
        format!("Signer:       {}", hex::encode(MR_SIGNER)),
        format!(
            "Report data:  {}",
            hex::encode(
                mse_attest::Evidence::parse(&id.quote)
                    .unwrap()
                    .report_data()
            )
        ),
        "Debug:        yes".to_owned(),
        format!("TCB status:   unknown (not evaluated: no collateral: {reason})"),
        "Checks:".to_owned(),
        "  [ OK ] simulation".to_owned(),
        "  [ OK ] quote_format".to_owned(),
        not_evaluated("collateral"),
        not_evaluated("certificate_chain"),
        not_evaluated("qe_report_signature"),
        not_evaluated("qe_identity"),
        not_evaluated("quote_signature"),
        not_evaluated("tcb_status"),
        not_evaluated("attributes"),
        "  [FAIL] debug: SGX evidence is from a debug-mode TEE (use --allow-debug to accept it)"
            .to_owned(),
        "  [ OK ] report_data_binding".to_owned(),
        "  [ OK ] measurement".to_owned(),
        "  [ -- ] signer (not applicable)".to_owned(),
        "  [ OK ] certificate_validity".to_owned(),
        "Verdict:      NOT TRUSTED".to_owned(),
    ];
    assert_eq!(lines, expected, "{out}");
    assert_eq!(
        text(&o.stderr).trim_end(),
        format!(
            "Error: {cert_arg} is NOT trusted: SGX evidence is from a debug-mode TEE (use --allow-debug to accept it)"
        )
    );
}

#[test]
fn a_quote_without_collateral_is_examined_and_refused() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mse-attest/tests/data/dcap");
    let quote = data.join("sgx_quote").display().to_string();
    let url = refusing_pccs();
    let o = mse(&["verify", "--quote", &quote, "--pccs-url", &url]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    assert!(out.contains("TEE:          SGX\n"), "{out}");
    assert!(out.contains("\nMeasurement:  "), "{out}");
    assert!(
        out.contains("\nTCB status:   unknown (not evaluated: no collateral: "),
        "{out}"
    );
    assert!(out.contains("\n  [ OK ] quote_format\n"), "{out}");
    assert!(
        out.contains("\n  [FAIL] quote_signature: not evaluated: no collateral: "),
        "{out}"
    );
    assert!(out.contains("\n  [ OK ] debug\n"), "{out}");
    assert!(out.ends_with("Verdict:      NOT TRUSTED\n"), "{out}");
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "Error: {quote} is NOT trusted: not evaluated: no collateral: "
        )),
        "{err}"
    );
}

#[test]
fn a_later_failure_still_prints_the_tcb_status() {
    let o = verify_sim_cert(true, &["--fingerprint", &hex::encode([0u8; 32])]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("\nTCB status:   UpToDate\n"), "{out}");
    assert!(out.contains("\n  [ OK ] tcb_status\n"), "{out}");
    assert!(out.contains("\n  [FAIL] debug: "), "{out}");
    assert!(out.contains("\n  [FAIL] measurement: "), "{out}");
}
