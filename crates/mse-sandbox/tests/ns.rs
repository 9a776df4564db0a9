//! The namespace/tmpfs helpers, run in a fresh single-threaded process (`mse-sandbox-memdir`),
//! since `unshare(CLONE_NEWNS)` must happen before any other thread exists.

use std::process::Command;

use mse_testkit::{lacks_root, run_ok};

const BIN: &str = env!("CARGO_BIN_EXE_mse-sandbox-memdir");

fn mounted_here(dir: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == dir.to_str())
}

/// A `tmp` path in a fresh scratch directory (kept while the guard lives), or None (the test
/// skipped) without root for `why`.
fn scratch_tmp(why: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if lacks_root(why) {
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tmp");
    Some((root, dir))
}

#[test]
fn tmp_is_a_private_tmpfs_of_a_quarter_of_memory() {
    let Some((_root, dir)) = scratch_tmp("mount namespace") else {
        return;
    };
    let out = run_ok(
        Command::new(BIN)
            .arg("--dir")
            .arg(&dir)
            .args(["--memory", &(64u64 * 1024 * 1024).to_string()]),
    );
    assert_eq!(
        out,
        "isolation=namespace size=16777216 mounted=true written=16777216 error=ENOSPC\n"
    );
    // Never visible from outside the namespace, and removed at the end.
    assert!(!mounted_here(&dir));
    assert!(!dir.exists());
}

#[test]
fn without_mount_privileges_a_user_namespace_still_gives_a_tmpfs() {
    let Some((_root, dir)) = scratch_tmp("setpriv drops CAP_SYS_ADMIN") else {
        return;
    };
    // Root without CAP_SYS_ADMIN cannot create a mount namespace of its own, but can create a
    // user namespace that owns one.
    let out = run_ok(
        Command::new("setpriv")
            .arg("--bounding-set=-sys_admin")
            .arg("--inh-caps=-sys_admin")
            .arg(BIN)
            .arg("--dir")
            .arg(&dir)
            .args(["--memory", "1048576"])
            .env("NO_COLOR", "1"),
    );
    assert_eq!(
        out,
        "isolation=user-namespace size=262144 mounted=true written=262144 error=ENOSPC\n"
    );
    assert!(!mounted_here(&dir));
    assert!(!dir.exists());
}
