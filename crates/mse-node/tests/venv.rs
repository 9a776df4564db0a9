//! The app venv layered over a real base venv (the pinned test venv): requirements already
//! satisfied by the base, so pip needs no network.

mod common;

use common::*;
use serde_json::json;

/// What the node (on deploy) and `mse localtest` both say about a requirement that has no
/// wheel (crates/mse-cli/tests/localtest.rs asserts the same text).
const SDIST_ONLY_REFUSAL: &str = "virtualenv: pip install -r requirements.txt (wheels only) failed (exit status: 1): ERROR: No matching distribution found for docopt==0.6.2";

/// A pip "find links" directory holding only a real, buildable sdist of docopt 0.6.2 (had pip
/// been allowed to build sdists, it would install it).
fn sdist_only_links(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("docopt-0.6.2");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("setup.py"),
        "from setuptools import setup\nsetup(name='docopt', version='0.6.2', py_modules=[])\n",
    )
    .unwrap();
    let links = dir.join("links");
    std::fs::create_dir_all(&links).unwrap();
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(links.join("docopt-0.6.2.tar.gz"))
        .arg("-C")
        .arg(dir)
        .arg("docopt-0.6.2")
        .status()
        .unwrap();
    assert!(status.success());
    links
}

fn package_with(requirements: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("app.py.enc", &b"ciphertext"[..]),
        ("requirements.txt", requirements),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn an_sdist_only_requirement_is_refused_on_deploy() {
    let base = std::env::var("MSE_TEST_VENV")
        .expect("MSE_TEST_VENV must name the pinned test venv (the Makefile sets it)");
    let tmp = tempfile::tempdir().unwrap();
    let links = sdist_only_links(tmp.path());
    let node = TestNode::start_with_env(
        &format!("[[environment]]\nname = \"real\"\nvenv = {base:?}\n"),
        &fake_enclave(),
        &[
            ("PIP_NO_INDEX", "1"),
            ("PIP_FIND_LINKS", links.to_str().unwrap()),
        ],
    );
    let token = node.project("alpha");
    let mut c = conf("sdist");
    c["docker"] = json!("real");
    let (code, app) = node.deploy(&token, &package_with(b"docopt==0.6.2\n"), &c);
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let app = node.wait_app(&token, &id, 120, |a| a["status"] != "spawning");
    assert_eq!(app["status"], "on_error", "{app}");
    assert_eq!(app["exit_reason"], SDIST_ONLY_REFUSAL, "{app}");
    // Nothing half-built is left to be reused.
    let venvs = mse_testkit::dir_names(&node.data().join("venvs"));
    assert!(venvs.is_empty(), "{venvs:?}");
}

#[test]
fn requirements_txt_gets_a_cached_layered_venv() {
    let base = std::env::var("MSE_TEST_VENV")
        .expect("MSE_TEST_VENV must name the pinned test venv (the Makefile sets it)");
    let node = TestNode::start(&format!(
        "[[environment]]\nname = \"real\"\nvenv = {base:?}\n"
    ));
    let token = node.project("alpha");
    let pkg = package_with(b"flask\n");
    let mut c = conf("layered");
    c["docker"] = json!("real");
    let (code, app) = node.deploy(&token, &pkg, &c);
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let app = node.wait_app(&token, &id, 120, |a| a["status"] != "spawning");
    assert_eq!(app["status"], "initializing", "{app}");
    let venvs: Vec<_> = std::fs::read_dir(node.data().join("venvs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(venvs.len(), 1);
    let venv = &venvs[0];
    assert!(venv.join(".mse-ready").exists());
    let pid = pid_with_arg(&id).unwrap();
    let cmdline =
        String::from_utf8(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).unwrap();
    assert!(
        cmdline.contains(&format!("--env\0{}\0", venv.display())),
        "{cmdline:?}"
    );
    // Flask is importable in the layered venv, which is its own prefix.
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import flask, sys; print(sys.prefix)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", venv.display()),
        "{out:?}"
    );
    // pip installed nothing (the base venv has Flask): the wheel list is empty, not missing.
    assert_eq!(
        std::fs::read_to_string(venv.join("mse-wheels.txt")).unwrap(),
        "\n"
    );
    assert!(
        node.stdout_of(&token, &id)
            .contains("pip install -r requirements.txt (wheels only)")
    );
}
