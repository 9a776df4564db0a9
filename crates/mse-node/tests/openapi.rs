//! The node's OpenAPI document (`GET /openapi.json`, generated from the code) against the live
//! node: PyPI schemathesis (pinned in tests/requirements.txt, venv MSE_TEST_VENV) fuzzes every
//! operation, authenticated, with every check but `positive_data_acceptance`: no answer is a 5xx,
//! every answer (status, content type, headers, body) is one the document describes, invalid
//! input is refused, authentication is not ignored. (`POST /apps` refuses schema-valid confs
//! whose hardware or environment this node does not offer, or whose expiry is past: what a
//! static schema cannot say.)

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

#[test]
fn the_document_is_served_and_describes_the_api() {
    let node = TestNode::start("");
    let (code, doc) = node.get("/openapi.json", None);
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "mse-node API");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/apps",
        "/apps/default",
        "/apps/{id}",
        "/apps/{id}/stop",
        "/apps/{id}/logs",
        "/apps/{id}/metrics",
        "/projects",
        "/hardwares",
        "/hardwares/{name}",
        "/environments",
        "/users/me",
        "/oauth/token",
        "/openapi.json",
        "/image",
        "/image/{file}",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // The fields the original client requires are in the schemas, generated from the types.
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("ProjectView", "is_default"),
        ("ProjectView", "owner_id"),
        ("ProjectView", "description"),
        ("UserView", "given_name"),
        ("UserView", "email_verified"),
        ("AppView", "config_domain_name"),
        ("Tier", "enclave_size"),
        ("ImageView", "vcpu_type"),
        ("TdxView", "rtmrs"),
    ] {
        assert!(
            schemas[schema]["required"]
                .as_array()
                .unwrap()
                .contains(&json!(field)),
            "{schema}.{field}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // An empty status filter means any status (it was an undocumented 400).
    let token = node.project("alpha");
    let (code, apps) = node.get("/apps?status=", Some(&token));
    assert_eq!((code, apps), (200, json!([])));
}

#[test]
fn schemathesis_finds_nothing() {
    let venv = std::env::var("MSE_TEST_VENV")
        .expect("MSE_TEST_VENV must name the pinned test venv (the Makefile sets it)");
    let st = Path::new(&venv).join("bin").join("schemathesis");
    assert!(st.is_file(), "{} missing: run `make setup`", st.display());
    // A published VM image, so that /image answers with real objects too.
    let image = tempfile::tempdir().unwrap();
    let node = TestNode::start(&published_image(image.path(), true));
    let token = node.project("alpha");
    // One app, so that list and stop answer with real objects too.
    let (code, app) = node.deploy(&token, &package(), &conf("web"));
    assert_eq!(code, 201, "{app}");
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(st)
        .arg("run")
        .arg(format!("http://{}/openapi.json", node.api))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--report-dir",
        ])
        .arg(reports.path())
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        // schemathesis keeps a cache (.schemathesis/) in its working directory.
        .current_dir(reports.path())
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Test cases:" then "N generated, N passed" (nothing failed, errored or was skipped).
    let counts = stdout
        .lines()
        .skip_while(|l| l.trim() != "Test cases:")
        .nth(1)
        .unwrap_or_else(|| panic!("no test case summary: {stdout}"))
        .trim()
        .to_owned();
    let (generated, passed) = counts
        .split_once(" generated, ")
        .unwrap_or_else(|| panic!("{counts:?}"));
    // Cases schemathesis could not send (e.g. NUL bytes in headers) are "skipped".
    let passed = passed.split_once(", ").map_or(passed, |(p, rest)| {
        assert!(rest.ends_with(" skipped"), "{stdout}");
        p
    });
    assert_eq!(passed, format!("{generated} passed"), "{stdout}");
    assert!(generated.parse::<u32>().unwrap() >= 13 * 10, "{stdout}");
}
