//! Shared by the `mse verify` tests: mse-attest-sim's RA-TLS test support (a sim node, a TLS
//! server serving its certificate) and the `mse` binary run without a PCCS from the environment.
#![allow(dead_code)]

#[path = "../../../mse-attest-sim/tests/ratls_support/mod.rs"]
mod ratls_support;

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

/// Asserts that `o`'s stdout contains `want` (showing the whole stdout if not).
#[track_caller]
pub fn assert_stdout_has(o: &Output, want: &str) {
    let out = stdout(o);
    assert!(out.contains(want), "{out}");
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
