//! The `$HOME` storage trait with today's implementation (sealfs): keyed from a key source,
//! mounted at a path, torn down (unmounted and wiped) even while the app still holds it busy.

use std::path::{Path, PathBuf};

use mse_sandbox::{HomeError, HomeStorage, KeySource, SealFsHome};
use zeroize::Zeroizing;

fn mounted(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == dir.to_str())
}

struct Unavailable;

impl KeySource for Unavailable {
    fn home_key(&self) -> Result<Zeroizing<[u8; 32]>, HomeError> {
        Err(HomeError::Key("no sealing key in this test".into()))
    }
}

/// A backing directory and a `$HOME` path in a fresh scratch directory (kept while the guard
/// lives), or None (the test skipped) without root for a FUSE mount.
fn scratch_dirs() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if mse_testkit::lacks_root("FUSE mount") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backing, home) = (dir.path().join("backing"), dir.path().join("home"));
    Some((dir, backing, home))
}

#[test]
fn sealfs_home_is_keyed_mounted_and_torn_down_even_when_busy() {
    let Some((_dir, backing, home)) = scratch_dirs() else {
        return;
    };
    let storage = SealFsHome::default();
    assert_eq!(storage.describe(), "sealed, quota 10 GiB");
    let mounted_home = storage.mount(&backing, &[9u8; 32], &home).unwrap();
    assert_eq!(mounted_home.mountpoint(), home);
    assert!(mounted(&home));
    std::fs::write(home.join("notes.txt"), b"private").unwrap();
    assert!(backing.is_dir());
    // The app still holds a file open: tearing down aborts and detaches, then wipes.
    let held = std::fs::File::open(home.join("notes.txt")).unwrap();
    mounted_home.tear_down().unwrap();
    drop(held);
    assert!(!mounted(&home));
    assert!(!backing.exists());
}

#[test]
fn sealfs_home_refuses_another_key_and_a_failing_key_source() {
    let Some((dir, backing, home)) = scratch_dirs() else {
        return;
    };
    let fs = mse_sealfs::mount(
        &backing,
        &home,
        &mse_sealfs::SealKey::from_bytes([1; 32]),
        &Default::default(),
    )
    .unwrap();
    std::fs::write(home.join("f"), b"x").unwrap();
    fs.unmount().unwrap();

    let err = SealFsHome::default()
        .mount(&backing, &[2u8; 32], &home)
        .err()
        .expect("another key");
    assert_eq!(
        err.to_string(),
        format!(
            "backing directory {}: directory id failed authentication (wrong key or tampered store)",
            backing.display()
        )
    );
    let err = SealFsHome::default()
        .mount(&dir.path().join("new"), &Unavailable, &home)
        .err()
        .expect("no key");
    assert_eq!(
        err.to_string(),
        "cannot get the key of $HOME: no sealing key in this test"
    );
    assert!(!dir.path().join("new").exists());
    assert!(!mounted(&home));
}
