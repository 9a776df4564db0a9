//! The app venv layered over a real base venv (the pinned test venv): requirements already
//! satisfied by the base, so pip needs no network.

mod common;

use common::*;
use serde_json::json;

#[test]
fn requirements_txt_gets_a_cached_layered_venv() {
    let base = std::env::var("MSE_TEST_VENV")
        .expect("MSE_TEST_VENV must name the pinned test venv (the Makefile sets it)");
    let node = TestNode::start(&format!(
        "[[environment]]\nname = \"real\"\nvenv = {base:?}\n"
    ));
    let token = node.project("alpha");
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("app.py.enc", &b"ciphertext"[..]),
        ("requirements.txt", &b"flask\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let pkg = b.into_inner().unwrap();
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
    // Flask is importable in the layered venv.
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import flask, sys; print(sys.prefix)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, logs) = node.get(&format!("/apps/{id}/logs"), Some(&token));
    assert!(
        logs["stdout"]
            .as_str()
            .unwrap()
            .contains("pip install -r requirements.txt (wheels only)")
    );
}
