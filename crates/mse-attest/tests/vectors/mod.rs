//! Shared by the tests that read the recorded evidence in tests/data.
#![allow(dead_code)] // each test crate uses its own subset

use std::time::{Duration, UNIX_EPOCH};

use mse_attest::Policy;

/// A file of tests/data.
pub fn data(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// The default policy evaluated at `unix` seconds.
pub fn at(unix: u64) -> Policy {
    Policy {
        now: Some(UNIX_EPOCH + Duration::from_secs(unix)),
        ..Policy::default()
    }
}
