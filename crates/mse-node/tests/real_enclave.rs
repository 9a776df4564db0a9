//! mse-node with the real `mse-enclave` (from `MSE_BIN_DIR`, as the Makefile sets it): deploy an
//! encrypted Flask app, provision it through the SNI router the way `mse deploy` does after
//! verifying, and reach it. Skipped, saying so, while the runtime is not built in MSE_BIN_DIR.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;

const APP: &str = r#"
import json, os
from flask import Flask

app = Flask(__name__)

@app.get("/health")
def health():
    return "ok"

@app.get("/whoami")
def whoami():
    with open(os.environ["SECRETS_PATH"]) as f:
        return json.load(f)["login"]
"#;

#[test]
fn a_real_enclave_goes_from_spawning_to_running_behind_the_router() {
    let bin_dir =
        PathBuf::from(std::env::var("MSE_BIN_DIR").expect("MSE_BIN_DIR (the Makefile sets it)"));
    let enclave = bin_dir.join("mse-enclave");
    assert!(
        enclave.exists(),
        "{} not built (cargo build --workspace --bins, as make test does)",
        enclave.display()
    );
    let venv = std::env::var("MSE_TEST_VENV").expect("MSE_TEST_VENV (the Makefile sets it)");
    let node = TestNode::start_with(
        &format!("[[environment]]\nname = \"flask-test\"\nvenv = {venv:?}\n"),
        &enclave,
    );
    let token = node.project("alpha");

    let code = node.dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("app.py"), APP).unwrap();
    let key = mse_crypto::CodeKey::generate();
    let mut tar = Vec::new();
    let files = vec![mse_crypto::PackageFile {
        rel: "app.py".into(),
        abs: code.join("app.py"),
    }];
    mse_crypto::build_package(&files, &key, None, &mut tar, &|_| {}).unwrap();
    let mut c = conf("real");
    c["docker"] = json!("flask-test");
    let (status, app) = node.deploy(&token, &tar, &c);
    assert_eq!(status, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let domain = format!("{id}.localhost");
    let app = node.wait_status(&token, &id, "initializing", 60);
    // The node declares the launch spec the enclave checked its inputs against and whose hash
    // it reports as its measurement; the digests the API lists are the spec's.
    let logs = node.stdout_of(&token, &id);
    let spec: mse_launch::LaunchSpec = serde_json::from_value(app["launch_spec"].clone()).unwrap();
    assert!(
        logs.contains(&format!("measurement={}", spec.hash())),
        "spec hash {} not in the log: {logs}",
        spec.hash()
    );
    assert_eq!(
        app["environment_digest"],
        spec.environment_sha256.to_hex(),
        "{app}"
    );
    let mse_launch::Runtime::Process { enclave_sha256 } = spec.runtime else {
        panic!("{spec:?}")
    };
    assert_eq!(app["runtime_digest"], enclave_sha256.to_hex(), "{app}");
    assert_eq!(spec.app_id, id);
    assert_eq!(spec.san, domain);
    assert_eq!(spec.tee, mse_launch::TeeKind::Sim);
    let (code, head, _) = https(node.router, &domain, "GET", "/").unwrap();
    assert_eq!(code, 200);
    assert!(head.contains("mse-status: waiting"), "{head}");

    let payload = json!({
        "uuid": id,
        "code_secret_key": hex::encode(key.as_bytes()),
        "app_secrets": {"login": "alice"},
    });
    let (code, _, body) = https_post_json(node.router, &domain, &payload.to_string()).unwrap();
    assert_eq!(code, 200, "{body}");
    node.wait_status(&token, &id, "running", 60);
    let (code, _, body) = https(node.router, &domain, "GET", "/whoami").unwrap();
    assert_eq!((code, body.as_str()), (200, "alice"));

    node.post(&format!("/apps/{id}/stop"), Some(&token));
    let app = node.wait_status(&token, &id, "stopped", 20);
    assert_eq!(app["exit_reason"], "stopped by its owner");
    assert!(!node.data().join("apps").join(&id).join("state").exists());
}
