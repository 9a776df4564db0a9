//! `mse-serve` start-up errors: one clear line, exit code 1.
mod common;

use std::process::Command;

use common::*;

fn serve_err(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mse-serve"))
        .args(["--bind", "127.0.0.1:0", "--app-dir"])
        .arg(apps_dir())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn venv_of_another_python_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pyvenv.cfg"),
        "home = /usr/bin\nversion = 2.7.18\n",
    )
    .unwrap();
    // `--venv venv` is refused with "virtualenv <venv>: <why>".
    let refused = |venv: &std::path::Path, why: &str| {
        let err = serve_err(&[
            "hello_raw:app".as_ref(),
            "--venv".as_ref(),
            venv.as_os_str(),
        ]);
        let want = format!("mse-serve: error: virtualenv {}: {why}\n", venv.display());
        assert!(err.ends_with(&want), "{err}");
    };
    refused(
        &dir.path().canonicalize().unwrap(),
        "created by Python 2.7.18, but mse-wsgi embeds Python 3.11",
    );
    refused(
        &dir.path().join("nope"),
        "No such file or directory (os error 2)",
    );
}

#[test]
fn missing_app_module_is_one_clear_error() {
    let v = venv();
    let err = serve_err(&["no_such_mod:app".as_ref(), "--venv".as_ref(), v.as_os_str()]);
    assert!(
        err.contains("mse-serve: error: cannot load application no_such_mod:app: "),
        "{err}"
    );
    assert!(
        err.contains("ModuleNotFoundError: No module named 'no_such_mod'"),
        "{err}"
    );
}
