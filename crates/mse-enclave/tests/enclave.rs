//! The real `mse-enclave` binary on loopback with the sim TEE: configuration protocol,
//! validate-before-write, the seeds' example app, a FastAPI app, owner mode, --timeout.

mod common;

use base64::Engine;
use common::{Enclave, ID, Launch};
use mse_attest::Evidence;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn assert_refused(enclave: &Enclave, body: &[u8], reason: &str) {
    let r = enclave.post(body);
    assert_eq!(
        (r.status, r.text()),
        (401, format!("{reason}\n")),
        "{}",
        enclave.log()
    );
    assert_eq!(
        enclave.written(),
        Vec::<String>::new(),
        "something was written"
    );
}

#[test]
fn seed_app_refusals_then_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let (package, key) = common::package("seed_app", dir.path());
    let mut enclave = Enclave::start(Launch::new(&package, "app:app", dir.path()));
    let waiting = enclave.wait_conf_server();
    assert_eq!(waiting.status, 200);
    assert_eq!(waiting.header("mse-status"), Some("Waiting"));
    assert_eq!(
        waiting.text(),
        "Waiting for code secret key and/or ssl private key..."
    );

    // The RA-TLS certificate: SAN, X25519 key bound, MRENCLAVE = the measurement recomputed here.
    let cert = waiting.ratls();
    assert_eq!(cert.san, vec!["localhost".to_owned()]);
    let x25519 = cert.x25519_public().expect("X25519 key in report_data");
    let evidence = Evidence::parse(&cert.quote).unwrap();
    assert_eq!(
        evidence.report_data()[..32],
        cert.expected_report_data[..32]
    );
    // The sim TEE's MRENCLAVE is the launch spec's hash, which `mse` recomputes from the spec.
    assert_eq!(
        evidence.measurement(),
        mse_launch::Digest32::of(&enclave.spec.canonical_bytes()).0
    );

    let good_key = key.to_hex();
    let wrong_key = mse_crypto::CodeKey::generate().to_hex();
    assert_refused(
        &enclave,
        b"{not json",
        "payload is not valid JSON: key must be a string at line 1 column 2",
    );
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"00000000-0000-0000-0000-000000000000","code_secret_key":"{good_key}"}}"#
        )
        .as_bytes(),
        "uuid \"00000000-0000-0000-0000-000000000000\" does not match this enclave's id",
    );
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","code_secret_key":"{wrong_key}","app_secrets":{{"login":"x"}}}}"#
        )
        .as_bytes(),
        "the code key does not decrypt the package: member \"app.py.enc\": integrity check failed: the file was modified or the key is wrong",
    );
    assert_refused(
        &enclave,
        format!(r#"{{"uuid":"{ID}","code_secret_key":"abcd"}}"#).as_bytes(),
        "code_secret_key: expected 64 hex characters (a 32-byte key)",
    );
    assert_refused(
        &enclave,
        format!(r#"{{"uuid":"{ID}"}}"#).as_bytes(),
        "no code_secret_key (neither in the payload nor in app_sealed_secrets)",
    );
    assert_refused(
        &enclave,
        format!(r#"{{"uuid":"{ID}","app_sealed_secrets":"%%%"}}"#).as_bytes(),
        "app_sealed_secrets is not base64url",
    );
    // Sealed to another key: cannot be opened.
    let other = mse_crypto::X25519KeyPair::generate().public();
    let sealed_elsewhere = mse_crypto::seal(&other, br#"{"a":1}"#).unwrap();
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","app_sealed_secrets":"{}"}}"#,
            b64(&sealed_elsewhere)
        )
        .as_bytes(),
        "app_sealed_secrets cannot be opened with this enclave's key",
    );
    let not_object = mse_crypto::seal(&x25519, br#"{"a" 1}"#).unwrap();
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","code_secret_key":"{good_key}","app_sealed_secrets":"{}"}}"#,
            b64(&not_object)
        )
        .as_bytes(),
        "app_sealed_secrets is not valid JSON at line 1 column 6",
    );
    let array = mse_crypto::seal(&x25519, b"[1, 2]").unwrap();
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","code_secret_key":"{good_key}","app_sealed_secrets":"{}"}}"#,
            b64(&array)
        )
        .as_bytes(),
        "app_sealed_secrets does not hold a JSON object",
    );
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","code_secret_key":"{good_key}","ssl_private_key":"-----BEGIN PRIVATE KEY-----"}}"#
        )
        .as_bytes(),
        "ssl_private_key is not accepted: this enclave serves its RA-TLS certificate",
    );
    // Still waiting after all that.
    assert_eq!(
        enclave.wait_conf_server().header("mse-status"),
        Some("Waiting")
    );

    // The correct payload: the code key travels inside the sealed secrets.
    let sealed = mse_crypto::seal(
        &x25519,
        format!(r#"{{"code_secret_key":"{good_key}","token":"t0k"}}"#).as_bytes(),
    )
    .unwrap();
    let ok = enclave.post(
        format!(
            r#"{{"uuid":"{ID}","app_secrets":{{"login":"alice","password":"p"}},"app_sealed_secrets":"{}"}}"#,
            b64(&sealed)
        )
        .as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", enclave.log());

    let whoami = enclave.wait_app("/whoami");
    assert_eq!((whoami.status, whoami.text()), (200, "alice".to_owned()));
    // The app serves the same RA-TLS certificate as the configuration server.
    assert_eq!(whoami.cert, waiting.cert);
    let first = common::request(enclave.port, "GET", "/", b"").unwrap();
    assert_eq!(
        (first.status, first.text()),
        (404, "You should write before read".to_owned())
    );
    assert_eq!(
        common::request(enclave.port, "POST", "/", b"")
            .unwrap()
            .status,
        200
    );
    let date = common::request(enclave.port, "GET", "/", b"").unwrap();
    assert_eq!(date.status, 200);
    assert!(date.text().starts_with("20"), "{}", date.text());
    let again = common::request(enclave.port, "GET", "/", b"").unwrap();
    assert_eq!(
        (again.status, again.text()),
        (404, "You should write before read".to_owned())
    );
    // The sealed secrets are stored without the code key.
    let env = enclave.app_env();
    let stored = std::fs::read_to_string(enclave.inside(&env["SEALED_SECRETS_PATH"])).unwrap();
    assert_eq!(stored, r#"{"token":"t0k"}"#);
    let secrets = std::fs::read_to_string(enclave.inside(&env["SECRETS_PATH"])).unwrap();
    assert_eq!(secrets, r#"{"login":"alice","password":"p"}"#);
    assert!(!enclave.log().contains(&good_key), "the key was logged");
    // The emptiness checks above can fail: now the code and the secrets are there.
    assert!(enclave.written().len() >= 3, "{:?}", enclave.written());
}

#[test]
fn tampered_package_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let (package, key) = common::package("seed_app", dir.path());
    let mut bytes = std::fs::read(&package).unwrap();
    // Flip a ciphertext byte of app.py.enc: its data starts one 512-byte header after its name.
    let pos = bytes
        .windows(b"app.py.enc".len())
        .position(|w| w == b"app.py.enc")
        .unwrap()
        + 512
        + 60;
    bytes[pos] ^= 0x01;
    std::fs::write(&package, &bytes).unwrap();
    let mut enclave = Enclave::start(Launch::new(&package, "app:app", dir.path()));
    enclave.wait_conf_server();
    assert_refused(
        &enclave,
        format!(
            r#"{{"uuid":"{ID}","code_secret_key":"{}","app_secrets":{{}}}}"#,
            key.to_hex()
        )
        .as_bytes(),
        "the code key does not decrypt the package: member \"app.py.enc\": integrity check failed: the file was modified or the key is wrong",
    );
    // Over the body limit, and a method the configuration server does not serve.
    let big = vec![b' '; (8 << 20) + 1];
    assert_refused(&enclave, &big, "payload is over the 8 MiB limit");
    let put = common::request(enclave.port, "PUT", "/", b"{}").unwrap();
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
}

#[test]
fn package_swapped_after_measurement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (package, key) = common::package("seed_app", dir.path());
    let mut enclave = Enclave::start(Launch::new(&package, "app:app", dir.path()));
    enclave.wait_conf_server();
    // Same key, fresh nonces: a package that decrypts fine but is not the measured one.
    // Rewritten in place (the sandbox keeps the measured file's inode visible).
    let files = vec![mse_crypto::PackageFile {
        rel: "app.py".into(),
        abs: common::app_dir("seed_app").join("app.py"),
    }];
    let mut swapped = Vec::new();
    mse_crypto::build_package(&files, &key, None, &mut swapped, &|_| {}).unwrap();
    std::fs::write(&package, &swapped).unwrap();
    assert_refused(
        &enclave,
        format!(r#"{{"uuid":"{ID}","code_secret_key":"{}"}}"#, key.to_hex()).as_bytes(),
        "the package file changed after it was measured",
    );
}

#[test]
fn timeout_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _key) = common::package("seed_app", dir.path());
    let mut enclave = Enclave::start(Launch {
        timeout: Some(1),
        ..Launch::new(&package, "app:app", dir.path())
    });
    let status = enclave.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    // Let the stderr reader finish.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = enclave.log();
    assert_eq!(
        log.lines().last(),
        Some("mse-enclave: error: no valid configuration received within 1 s: stopping"),
        "{log}"
    );
    assert!(log.contains("SIMULATED TEE"), "{log}");
}

#[test]
fn fastapi_app_with_sealed_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let (package, key) = common::package("fastapi_app", dir.path());
    let mut enclave = Enclave::start(Launch::new(&package, "main:app", dir.path()));
    let x25519 = enclave.wait_conf_server().ratls().x25519_public().unwrap();
    let sealed = mse_crypto::seal(
        &x25519,
        format!(
            r#"{{"code_secret_key":"{}","db":"postgres://x"}}"#,
            key.to_hex()
        )
        .as_bytes(),
    )
    .unwrap();
    // Padding is optional, as in the original.
    let padded = base64::engine::general_purpose::URL_SAFE.encode(&sealed);
    let ok =
        enclave.post(format!(r#"{{"uuid":"{ID}","app_sealed_secrets":"{padded}"}}"#).as_bytes());
    assert_eq!(ok.status, 200, "{}", enclave.log());
    enclave.wait_app("/health");
    let sealed = common::request(enclave.port, "GET", "/sealed", b"").unwrap();
    assert_eq!(sealed.text(), r#"{"db":"postgres://x"}"#);
    let paths: serde_json::Value = serde_json::from_slice(
        &common::request(enclave.port, "GET", "/paths", b"")
            .unwrap()
            .body,
    )
    .unwrap();
    // The app sees the variables the runtime announced (the seeds' paths in a private mount
    // namespace, per-app directories otherwise).
    let env = enclave.app_env();
    for var in [
        "HOME",
        "SECRETS_PATH",
        "SEALED_SECRETS_PATH",
        "TMP_PATH",
        "MODULE_PATH",
        "KEY_PATH",
    ] {
        assert_eq!(paths[var], env[var], "{var}");
    }
    assert_eq!(
        env["SECRETS_PATH"],
        format!("{}/.cache/mse/secrets.json", env["HOME"])
    );
    // No subprocess inside the enclave: a clean PermissionError, and the app keeps serving.
    let spawn = common::request(enclave.port, "GET", "/spawn", b"").unwrap();
    let error = serde_json::from_slice::<serde_json::Value>(&spawn.body).unwrap()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.ends_with("is not allowed inside the enclave: no fork, no subprocess"),
        "{error}"
    );
    assert_eq!(
        common::request(enclave.port, "GET", "/health", b"")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn owner_mode_needs_the_matching_key_then_serves_the_owner_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (package, key) = common::package("seed_app", dir.path());
    let owner = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let cert_path = dir.path().join("fullchain.pem");
    std::fs::write(&cert_path, owner.cert.pem()).unwrap();
    let mut enclave = Enclave::start(Launch {
        certificate: Some(cert_path.clone()),
        ..Launch::new(&package, "app:app", dir.path())
    });
    let waiting = enclave.wait_conf_server();
    // The configuration server still proves itself with RA-TLS.
    assert!(waiting.ratls().x25519_public().is_some());
    let body = |ssl: Option<String>| {
        let mut v = serde_json::json!({"uuid": ID, "code_secret_key": key.to_hex(),
                                        "app_secrets": {"login": "owner"}});
        if let Some(pem) = ssl {
            v["ssl_private_key"] = pem.into();
        }
        v.to_string()
    };
    assert_refused(
        &enclave,
        body(None).as_bytes(),
        "ssl_private_key is required: this enclave serves the owner's certificate",
    );
    assert_refused(
        &enclave,
        body(Some("not a key".into())).as_bytes(),
        "ssl_private_key is not a PEM private key",
    );
    assert_refused(
        &enclave,
        body(Some(other.serialize_pem())).as_bytes(),
        "ssl_private_key does not match the certificate given with --certificate",
    );
    let ok = enclave.post(body(Some(owner.signing_key.serialize_pem())).as_bytes());
    assert_eq!(ok.status, 200, "{}", enclave.log());
    let whoami = enclave.wait_app("/whoami");
    assert_eq!(whoami.text(), "owner");
    assert_eq!(whoami.cert, owner.cert.der().to_vec());
}

/// Bad launch specs and inputs that do not match the spec: one line naming what is wrong, exit
/// code 1, nothing served, the sandbox never entered.
#[test]
fn bad_launch_specs_and_mismatched_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (package, _key) = common::package("seed_app", dir.path());
    let launch = Launch::new(&package, "app:app", dir.path());
    let good = common::spec_of(&launch);
    let last_line = |child: std::process::Child| {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr)
            .unwrap()
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    let run = |spec: &mse_launch::LaunchSpec| {
        last_line(common::spawn_enclave(spec, &common::inputs_of(&launch, 0)))
    };
    // Not a spec at all.
    let raw = |bytes: &[u8]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mse-enclave"))
            .args(mse_launch::process::enclave_args(&common::inputs_of(
                &launch, 0,
            )))
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        last_line(child)
    };
    assert_eq!(
        raw(br#"{"version":1}"#),
        "mse-enclave: error: launch spec: missing field `app_id` at line 1 column 13"
    );
    assert_eq!(
        raw(String::from_utf8(good.canonical_bytes())
            .unwrap()
            .replace(common::ID, "not-a-uuid-at-all-no")
            .as_bytes()),
        "mse-enclave: error: launch spec: app_id: \"not-a-uuid-at-all-no\" is not a lowercase UUID"
    );

    let mut s = good.clone();
    s.package.sha256 = mse_launch::Digest32([0xee; 32]);
    assert_eq!(
        run(&s),
        format!(
            "mse-enclave: error: the package {} does not match the launch spec: the spec names {}, found {}",
            package.canonicalize().unwrap().display(),
            "ee".repeat(32),
            good.package.sha256
        )
    );
    let mut s = good.clone();
    s.package.size += 1;
    assert_eq!(
        run(&s),
        format!(
            "mse-enclave: error: the package {} does not match the launch spec: the spec names {} bytes, found {} bytes",
            package.canonicalize().unwrap().display(),
            good.package.size + 1,
            good.package.size
        )
    );
    let mut s = good.clone();
    s.environment_sha256 = mse_launch::Digest32([0xee; 32]);
    assert_eq!(
        run(&s),
        format!(
            "mse-enclave: error: the environment {} does not match the launch spec: the spec names {}, found {}",
            common::venv().canonicalize().unwrap().display(),
            "ee".repeat(32),
            good.environment_sha256
        )
    );
    let mut s = good.clone();
    s.runtime = mse_launch::Runtime::Process {
        enclave_sha256: mse_launch::Digest32([0xee; 32]),
    };
    let line = run(&s);
    assert!(
        line.starts_with("mse-enclave: error: this mse-enclave (")
            && line.contains(&format!(
                ") does not match the launch spec: the spec names {}, found ",
                "ee".repeat(32)
            )),
        "{line}"
    );
    let mut s = good.clone();
    s.tls = mse_launch::TlsSpec::Expiration(1_000);
    assert_eq!(
        run(&s),
        "mse-enclave: error: launch spec: tls.expiration 1000 is in the past"
    );
    if !std::path::Path::new("/dev/attestation").exists() {
        let mut s = good.clone();
        s.tee = mse_launch::TeeKind::GramineSgx;
        let no_seed = mse_launch::LaunchInputs {
            sim_seed: None,
            ..common::inputs_of(&launch, 0)
        };
        assert_eq!(
            last_line(common::spawn_enclave(&s, &no_seed)),
            "mse-enclave: error: TEE gramine-sgx: Gramine's /dev/attestation is not available here"
        );
    }
    let short_seed = dir.path().join("short-seed");
    std::fs::write(&short_seed, b"abc").unwrap();
    let inputs = mse_launch::LaunchInputs {
        sim_seed: Some(short_seed.clone()),
        ..common::inputs_of(&launch, 0)
    };
    assert_eq!(
        last_line(common::spawn_enclave(&good, &inputs)),
        format!(
            "mse-enclave: error: {}: a sim seed is 32 raw bytes or 64 hex characters (3 bytes found)",
            short_seed.display()
        )
    );
    assert!(
        !dir.path().join("state").exists(),
        "the sandbox was entered"
    );
}
