//! Shared by the tests that read the recorded evidence in tests/data, and by the attester
//! detection tests (of mse-attest-sim too).
#![allow(dead_code)] // each test crate uses its own subset

use std::time::{Duration, UNIX_EPOCH};

use mse_attest::{Collateral, Evidence, Policy, Report, TrustAnchors, verify};

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

/// [`at`] `unix`, also accepting the TCB status of the recorded SGX quote's platform
/// (`ConfigurationAndSWHardeningNeeded`).
pub fn at_accepting_config(unix: u64) -> Policy {
    let mut policy = at(unix);
    policy
        .accept_tcb(["ConfigurationAndSWHardeningNeeded"])
        .unwrap();
    policy
}

/// `evidence` verified against Intel's roots under `policy`, no report data expected.
pub fn verify_intel(evidence: &Evidence, collateral: &Collateral, policy: &Policy) -> Report {
    verify(evidence, collateral, &TrustAnchors::intel(), policy, None)
}

/// A fake host root holding `paths`: empty files, or directories when they end with `/`.
pub fn fake_host(paths: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for rel in paths {
        let p = root.path().join(rel);
        if rel.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
    }
    root
}
