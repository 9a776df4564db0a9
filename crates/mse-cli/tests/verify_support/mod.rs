//! Shared by the `mse verify` tests: mse-attest-sim's RA-TLS test support (a sim node, a TLS
//! server serving its certificate) and the `mse` binary run without a PCCS from the environment.
#![allow(dead_code)]

#[path = "../../../mse-attest-sim/tests/ratls_support/mod.rs"]
mod ratls_support;

use std::path::Path;
use std::process::{Command, Output};

pub use ratls_support::*;

pub fn mse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mse"))
        .args(args)
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("MSE_PCCS_URL")
        .output()
        .expect("run mse")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes the mock PKI's collateral made with `opts` to `dir/collateral.json`; returns its path.
pub fn collateral_file(dir: &Path, opts: &mse_attest_sim::CollateralOptions) -> String {
    let path = dir.join("collateral.json");
    let json = serde_json::to_string(&pki().collateral(opts).unwrap()).unwrap();
    std::fs::write(&path, json).unwrap();
    path.display().to_string()
}

/// `verify_sim --cert` on the PEM certificate of a sim RA-TLS identity for `app.example.com`
/// (debug-mode evidence or not) with the mock PKI's default collateral.
pub fn verify_sim_cert(debug: bool, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ratls.pem");
    std::fs::write(&cert, identity("app.example.com", debug).cert_pem()).unwrap();
    let collateral = collateral_file(dir.path(), &mse_attest_sim::CollateralOptions::default());
    verify_sim("--cert", &cert, &collateral, extra)
}

/// `mse verify FLAG FILE --collateral COLLATERAL --allow-simulation EXTRA...` (FLAG: `--quote`
/// or `--cert`).
pub fn verify_sim(flag: &str, file: &Path, collateral: &str, extra: &[&str]) -> Output {
    let f = file.display().to_string();
    let base = [
        "verify",
        flag,
        &f,
        "--collateral",
        collateral,
        "--allow-simulation",
    ];
    mse(&[&base[..], extra].concat())
}

/// Asserts that `o`'s stdout contains `want` (showing the whole stdout if not).
#[track_caller]
pub fn assert_stdout_has(o: &Output, want: &str) {
    let out = stdout(o);
    assert!(out.contains(want), "{out}");
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
