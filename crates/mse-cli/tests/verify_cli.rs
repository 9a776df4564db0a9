//! `mse verify` end to end: the built binary against a sim RA-TLS server and a mock PCCS on
//! loopback, and against certificate / quote files.

mod verify_support;

use std::path::Path;
use std::process::Command;

use mse_attest::attester::Attester;
use mse_attest::ratls::report_data_for_key;
use mse_attest_sim::{CollateralOptions, MockPccs};
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use verify_support::*;

/// Writes a sim quote (binary) to `dir/quote.bin`.
fn sim_quote_file(dir: &Path) -> std::path::PathBuf {
    let quote = dir.join("quote.bin");
    std::fs::write(&quote, sim_attester(false).evidence(&[7; 64]).unwrap()).unwrap();
    quote
}

/// A sim RA-TLS server (debug-mode evidence or not) on loopback with the mock PCCS, and where
/// `mse verify --output` writes its certificate.
struct SimServer {
    pccs: mse_attest_sim::MockServer,
    id: mse_attest::ratls::RaTlsIdentity,
    server: TlsServer,
    target: String,
    out_pem: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SimServer {
    fn start(debug: bool) -> Self {
        let pccs = MockPccs::start(&pki(), &CollateralOptions::default()).unwrap();
        let id = identity("127.0.0.1", debug);
        let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
        let dir = tempfile::tempdir().unwrap();
        SimServer {
            pccs,
            id,
            target: format!("127.0.0.1:{}", server.addr.port()),
            server,
            out_pem: dir.path().join("cert.pem"),
            _dir: dir,
        }
    }
}

#[test]
fn verifies_a_sim_server_with_the_mock_pccs_and_writes_the_certificate() {
    let node = SimServer::start(false);
    let (target, out_pem, id) = (&node.target, &node.out_pem, &node.id);
    let url = node.pccs.url();
    for prefix in [&[][..], &["cloud"][..]] {
        let _ = std::fs::remove_file(out_pem);
        let mut args: Vec<&str> = prefix.to_vec();
        let pem_arg = out_pem.display().to_string();
        let fp = hex::encode(MR_ENCLAVE);
        args.extend(["verify", target, "--pccs-url", &url, "--allow-simulation"]);
        args.extend(["--fingerprint", &fp, "--output", &pem_arg]);
        let o = mse(&args);
        let text = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
        assert!(
            text.contains(&format!("Source:       https://{target}")),
            "{text}"
        );
        assert!(text.contains("TEE:          SGX (simulated)"), "{text}");
        assert!(
            text.contains(&format!("Measurement:  {}", hex::encode(MR_ENCLAVE))),
            "{text}"
        );
        assert!(text.contains("TCB status:   UpToDate"), "{text}");
        assert!(
            text.contains(&format!("Enclave key:  {} (X25519)", hex::encode(X25519))),
            "{text}"
        );
        for ok in [
            "report_data_binding",
            "measurement",
            "quote_signature",
            "certificate_validity",
            "certificate_names_host",
        ] {
            assert!(
                text.contains(&format!("  [ OK ] {ok}\n")),
                "missing {ok}: {text}"
            );
        }
        assert!(text.contains("Verdict:      TRUSTED\n"), "{text}");
        assert_eq!(
            std::fs::read(out_pem).unwrap(),
            mse_attest::ratls::RaTlsCert::parse(&id.cert_der)
                .unwrap()
                .pem()
                .into_bytes()
        );
    }
}

#[test]
fn refuses_a_sim_server_without_allow_simulation_and_still_prints_every_check() {
    let node = SimServer::start(true);
    let (server, out_pem) = (&node.server, &node.out_pem);
    let o = mse(&[
        "verify",
        &node.target,
        "--pccs-url",
        &node.pccs.url(),
        "--fingerprint",
        &hex::encode([0u8; 32]),
        "--output",
        &out_pem.display().to_string(),
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "Error: https://127.0.0.1:{} is NOT trusted: evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)\n",
            server.addr.port()
        )
    );
    assert!(text.contains("  [FAIL] simulation: evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)\n"), "{text}");
    assert!(text.contains("  [FAIL] debug: SGX evidence is from a debug-mode TEE (use --allow-debug to accept it)\n"), "{text}");
    assert!(
        text.contains(&format!(
            "  [FAIL] measurement: measurement mismatch: expected {}, evidence has {}\n",
            hex::encode([0u8; 32]),
            hex::encode(MR_ENCLAVE)
        )),
        "{text}"
    );
    assert!(text.contains("  [ OK ] report_data_binding\n"), "{text}");
    assert!(text.ends_with("Verdict:      NOT TRUSTED\n"), "{text}");
    assert!(
        !out_pem.exists(),
        "an untrusted certificate must not be written"
    );
}

#[test]
fn json_report_for_a_certificate_file_with_offline_collateral() {
    let o = verify_sim_cert(false, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trusted"], true);
    assert_eq!(
        v["report"]["kind"],
        serde_json::to_value(mse_attest::EvidenceKind::Sgx).unwrap()
    );
    assert_eq!(v["report"]["measurement"], hex::encode(MR_ENCLAVE));
    assert_eq!(v["report"]["simulated"], true);
    assert_eq!(v["certificate"]["san"][0], "app.example.com");
    assert_eq!(v["certificate"]["x25519_public"], hex::encode(X25519));
    assert_eq!(
        v["certificate"]["checks"][0]["name"],
        "certificate_validity"
    );
    assert_eq!(v["certificate"]["checks"].as_array().unwrap().len(), 1);
    assert!(v["report"]["checks"].as_array().unwrap().len() >= 8);
}

#[test]
fn certificate_whose_quote_does_not_bind_its_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let served = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let quote = sim_attester(false)
        .evidence(&report_data_for_key(other.public_key_raw(), &X25519))
        .unwrap();
    let mut params = CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 2, 840, 113_741, 1337, 6],
        quote,
    )];
    let cert = dir.path().join("forged.der");
    std::fs::write(&cert, params.self_signed(&served).unwrap().der()).unwrap();
    let collateral = collateral_file(dir.path(), &CollateralOptions::default());
    let o = verify_sim("--cert", &cert, &collateral, &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "  [FAIL] report_data_binding: report_data does not bind the expected data: expected "
        ),
        "{text}"
    );
    assert!(text.contains("  [ OK ] quote_signature\n"), "{text}");
}

#[test]
fn quote_at_rest_with_offline_collateral_and_an_injected_time() {
    let dir = tempfile::tempdir().unwrap();
    let quote = dir.path().join("quote.hex");
    std::fs::write(
        &quote,
        format!(
            "0x{}\n",
            hex::encode(sim_attester(false).evidence(&[7; 64]).unwrap())
        ),
    )
    .unwrap();
    // Collateral valid 2026-01-01 .. 2026-02-01 only.
    let opts = CollateralOptions {
        issue_date: 1_767_225_600,
        next_update: 1_769_904_000,
        ..Default::default()
    };
    let collateral = collateral_file(dir.path(), &opts);
    let at = |time| verify_sim("--quote", &quote, &collateral, &["--at", time]);
    let inside = at("2026-01-15T00:00:00Z");
    assert_eq!(inside.status.code(), Some(0), "{}", stdout(&inside));
    assert_stdout_has(&inside, "  [ -- ] report_data_binding (not applicable)\n");
    let after = at("2026-03-01T00:00:00Z");
    assert_eq!(after.status.code(), Some(1));
    assert_stdout_has(&after, "TCBInfo expired");
    let bad = at("yesterday");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        stderr(&bad),
        "Error: --at \"yesterday\" is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z): the 'year' component could not be parsed\n"
    );
}

#[test]
fn out_of_date_tcb_needs_accept_tcb() {
    let dir = tempfile::tempdir().unwrap();
    let quote = sim_quote_file(dir.path());
    let opts = CollateralOptions {
        tcb_status: "OutOfDate".into(),
        ..Default::default()
    };
    let collateral = collateral_file(dir.path(), &opts);
    let with = |extra: &[&str]| verify_sim("--quote", &quote, &collateral, extra);
    let refused = with(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_stdout_has(
        &refused,
        "TCB status OutOfDate is not accepted (accepted: UpToDate, SWHardeningNeeded)",
    );
    let accepted = with(&["--accept-tcb", "OutOfDate,ConfigurationNeeded"]);
    assert_eq!(accepted.status.code(), Some(0), "{}", stdout(&accepted));
    let unknown = with(&["--accept-tcb", "Fine"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).starts_with("Error: unknown TCB status \"Fine\""),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn unreachable_server_is_one_clear_error_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = mse(&[
        "verify",
        &format!("127.0.0.1:{port}"),
        "--pccs-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("Error: TLS connection to 127.0.0.1:{port}: ")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let none = mse(&["verify"]);
    assert_eq!(none.status.code(), Some(2), "clap usage error");
}

#[test]
fn real_sgx_quote_with_its_collateral_inside_its_window() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mse-attest/tests/data/dcap");
    let quote = data.join("sgx_quote").display().to_string();
    let collateral = data.join("sgx_quote_collateral.json").display().to_string();
    let base = [
        "verify",
        "--quote",
        &quote,
        "--collateral",
        &collateral,
        "--at",
        "2025-07-01T00:00:00Z",
    ];
    let refused = mse(&base);
    assert_eq!(refused.status.code(), Some(1));
    let text = stdout(&refused);
    assert!(
        text.contains("Advisories:   INTEL-SA-00289, INTEL-SA-00615\n"),
        "{text}"
    );
    assert!(text.contains("  [FAIL] tcb_status: TCB status ConfigurationAndSWHardeningNeeded is not accepted (accepted: UpToDate, SWHardeningNeeded)\n"), "{text}");
    let accepted = mse(&[
        &base[..],
        &["--accept-tcb", "ConfigurationAndSWHardeningNeeded"],
    ]
    .concat());
    assert_eq!(accepted.status.code(), Some(0), "{}", stdout(&accepted));
    assert!(stdout(&accepted).contains("TEE:          SGX\n"));
    // Allowing simulation adds the mock root; Intel's root stays trusted.
    let with_sim = mse(&[
        &base[..],
        &[
            "--accept-tcb",
            "ConfigurationAndSWHardeningNeeded",
            "--allow-simulation",
        ],
    ]
    .concat());
    assert_eq!(with_sim.status.code(), Some(0));
}

#[test]
fn real_sev_snp_report_with_its_vcek() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mse-attest/tests/data/sev-snp");
    let report = data.join("report_milan.hex").display().to_string();
    let vcek = data.join("vcek_milan.der").display().to_string();
    let o = mse(&["verify", "--quote", &report, "--collateral", &vcek]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("Platform TCB: bl3/tee0/snp8/ucode115\n"));
    // Without the VCEK, what the report alone shows is still checked and printed.
    let missing = mse(&["verify", "--quote", &report]);
    assert_eq!(missing.status.code(), Some(1));
    let why = "not evaluated: no collateral: SEV-SNP evidence needs --collateral with the VCEK certificate (PEM or DER)";
    assert_eq!(
        stderr(&missing),
        format!("Error: {report} is NOT trusted: {why}\n")
    );
    let text = stdout(&missing);
    assert!(
        text.contains(&format!("\n  [FAIL] collateral: {why}\n")),
        "{text}"
    );
    assert!(text.contains("\n  [ OK ] debug\n"), "{text}");
    assert!(
        text.contains("Platform TCB: bl3/tee0/snp8/ucode115\n"),
        "{text}"
    );
}

#[test]
fn expired_certificate_fails_the_validity_check() {
    let dir = tempfile::tempdir().unwrap();
    let params = mse_attest::ratls::RaTlsParams {
        not_after: time::OffsetDateTime::from_unix_timestamp(1_735_689_600).unwrap(),
        ..params("app.example.com")
    };
    let id = mse_attest::ratls::generate(&sim_attester(false), &params).unwrap();
    let cert = dir.path().join("ratls.pem");
    std::fs::write(&cert, id.cert_pem()).unwrap();
    let collateral = collateral_file(dir.path(), &CollateralOptions::default());
    let c = cert.display().to_string();
    let base = [
        "verify",
        "--cert",
        &c,
        "--collateral",
        &collateral,
        "--allow-simulation",
    ];
    let late = mse(&[&base[..], &["--at", "2026-01-01T00:00:00Z"]].concat());
    assert_eq!(late.status.code(), Some(1));
    let text = stdout(&late);
    assert!(text.contains("  [FAIL] certificate_validity: the certificate is valid from 2024-01-01T00:00:00Z to 2025-01-01T00:00:00Z, not at 2026-01-01T00:00:00Z\n"), "{text}");
    assert!(text.ends_with("Verdict:      NOT TRUSTED\n"), "{text}");
    let early = mse(&[&base[..], &["--at", "2024-06-01T00:00:00Z"]].concat());
    assert_eq!(early.status.code(), Some(0), "{}", stdout(&early));
}

#[test]
fn sim_root_pins_one_mock_pki() {
    let dir = tempfile::tempdir().unwrap();
    let quote = sim_quote_file(dir.path());
    let collateral = collateral_file(dir.path(), &CollateralOptions::default());
    let own = dir.path().join("own-root.pem");
    std::fs::write(&own, mse_attest_sim::to_pem(&pki().root_der)).unwrap();
    let other = dir.path().join("other-root.der");
    let other_pki = mse_attest_sim::SimPki::from_seed(&[0x99; 32]).unwrap();
    std::fs::write(&other, &other_pki.root_der).unwrap();
    let ok = verify_sim(
        "--quote",
        &quote,
        &collateral,
        &["--sim-root", &own.display().to_string()],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains(
            "Warning:      simulated TEE: no hardware protection, for local testing only\n"
        )
    );
    let pinned_other = verify_sim(
        "--quote",
        &quote,
        &collateral,
        &["--sim-root", &other.display().to_string()],
    );
    assert_eq!(pinned_other.status.code(), Some(1));
    assert_stdout_has(&pinned_other, "  [FAIL] certificate_chain: ");
    let without_allow = mse(&[
        "verify",
        "--quote",
        quote.to_str().unwrap(),
        "--collateral",
        &collateral,
        "--sim-root",
        &own.display().to_string(),
    ]);
    assert_eq!(
        without_allow.status.code(),
        Some(2),
        "clap: --sim-root requires --allow-simulation"
    );
}

#[test]
fn the_written_certificate_works_with_curl_cacert() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: skipping");
        return;
    }
    let node = SimServer::start(false);
    let (target, pem) = (&node.target, node.out_pem.display().to_string());
    let o = mse(&[
        "verify",
        target,
        "--pccs-url",
        &node.pccs.url(),
        "--allow-simulation",
        "-o",
        &pem,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let body = mse_testkit::run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--noproxy",
                "*",
                "--cacert",
                &pem,
            ])
            .arg(format!("https://{target}/")),
    );
    assert_eq!(body, "ok");
}

#[test]
fn real_tdx_quote_inside_and_after_its_window() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mse-attest/tests/data/dcap");
    let quote = data.join("tdx_quote").display().to_string();
    let collateral = data.join("tdx_quote_collateral.json").display().to_string();
    let base = ["verify", "--quote", &quote, "--collateral", &collateral];
    let inside = mse(&[&base[..], &["--at", "2025-07-01T00:00:00Z", "--json"]].concat());
    assert_eq!(inside.status.code(), Some(0), "{}", stdout(&inside));
    let v: serde_json::Value = serde_json::from_slice(&inside.stdout).unwrap();
    assert_eq!(v["report"]["tcb_status"], "UpToDate");
    assert_eq!(v["certificate"], serde_json::Value::Null);
    let after = mse(&[&base[..], &["--at", "2025-08-01T00:00:00Z"]].concat());
    assert_eq!(after.status.code(), Some(1));
    assert_stdout_has(&after, "TCBInfo expired");
}

#[test]
fn simulated_sev_snp_report_needs_allow_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let pki = mse_attest_sim::SimAmdPki::from_seed(&[0x5E; 32]).unwrap();
    let launch = mse_attest_sim::SnpLaunch::new([0x4D; 48], [0x48; 32]);
    let report = dir.path().join("report.bin");
    std::fs::write(&report, pki.report(&launch, &[0x52; 64])).unwrap();
    let chain = dir.path().join("vcek.pem");
    let mut pem = mse_attest_sim::to_pem(&pki.vcek_der);
    pem.push_str(&pki.cert_chain_pem());
    std::fs::write(&chain, pem).unwrap();
    let base = [
        "verify",
        "--quote",
        report.to_str().unwrap(),
        "--collateral",
        chain.to_str().unwrap(),
        "--at",
        "2026-03-01T00:00:00Z",
    ];
    let refused = mse(&base);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert_stdout_has(
        &refused,
        "[FAIL] simulation: evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)\n",
    );
    let allowed = mse(&[&base[..], &["--allow-simulation"]].concat());
    assert_eq!(allowed.status.code(), Some(0), "{}", stdout(&allowed));
    assert!(stdout(&allowed).contains("TEE:          SEV-SNP (simulated)\n"));
    assert!(stdout(&allowed).contains("Signing key:  VCEK (simulation)\n"));
}

/// A VM enclave's certificate (simulated SEV-SNP evidence) verified by DOMAIN from a machine
/// that did not deploy it and without --launch-spec/--node: no partial verdict, one line saying
/// which flags are missing.
#[test]
fn a_vm_enclave_without_its_launch_spec_names_the_missing_flags() {
    // A fake host with no TEE device (the sim attester refuses to run where one exists).
    let host = tempfile::tempdir().unwrap();
    let probe = mse_attest::attester::HostProbe::with_root(host.path());
    let attester =
        mse_attest_sim::SimSnpAttester::with_probe(&probe, &[0x5E; 32], [0x4D; 48], [0x48; 32])
            .unwrap();
    let id = mse_attest::ratls::generate(&attester, &params("127.0.0.1")).unwrap();
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let target = format!("127.0.0.1:{}", server.addr.port());
    let config = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", &target, "--allow-simulation"];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_mse"))
            .args(&args)
            .env("MSE_CONFIG_DIR", config.path())
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        assert_eq!(stdout(&o), "");
        stderr(&o)
    };
    assert_eq!(
        run(&[]),
        "Error: SEV-SNP evidence is a VM enclave's: its expected identity needs --launch-spec FILE and --node URL (no app deployed from here has the domain 127.0.0.1)\n"
    );
    assert_eq!(
        run(&["--node", "http://127.0.0.1:1"]),
        "Error: SEV-SNP evidence is a VM enclave's: its expected identity needs --launch-spec FILE (no app deployed from here has the domain 127.0.0.1)\n"
    );
}
