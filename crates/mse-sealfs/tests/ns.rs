//! The namespace/tmpfs helpers, run in a fresh single-threaded process (the dev binary), since
//! `unshare(CLONE_NEWNS)` must happen before any other thread exists.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mse-sealfs");

fn mounted_here(dir: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == dir.to_str())
}

#[test]
fn tmp_is_a_private_tmpfs_of_a_quarter_of_memory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tmp");
    let out = Command::new(BIN)
        .args(["memdir-check", "--dir"])
        .arg(&dir)
        .args(["--memory", &(64u64 * 1024 * 1024).to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "isolation=namespace size=16777216 mounted=true written=16777216 error=ENOSPC\n"
    );
    // Never visible from outside the namespace, and removed at the end.
    assert!(!mounted_here(&dir));
    assert!(!dir.exists());
}

#[test]
fn without_privileges_falls_back_to_plain_directories_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tmp");
    // Root without CAP_SYS_ADMIN cannot create a mount namespace.
    let out = Command::new("setpriv")
        .arg("--bounding-set=-sys_admin")
        .arg(BIN)
        .args(["memdir-check", "--dir"])
        .arg(&dir)
        .args(["--memory", "1048576"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "isolation=plain size=262144 mounted=false written=0 error=none\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "no mount-namespace privileges (cannot create a private mount namespace: \
             Operation not permitted (os error 1)): $TMP_PATH and $MODULE_PATH fall back to \
             plain per-app directories (not in memory, not size-limited) and mounts are visible \
             to the host"
        ),
        "{stderr}"
    );
    assert!(!dir.exists());
}
