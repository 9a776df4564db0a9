//! What the host can and cannot do to the backing store: wrong key, tampering, canary, quota.

mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use common::{TestMount, backing_files, errno, only_backing_file};
use mse_sealfs::{HEADER_LEN, SealFsOptions, SealKey, check_key};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 199) as u8 + 1).collect()
}

#[test]
fn wrong_key_gives_eio_everywhere_and_never_plaintext() {
    let mut t = TestMount::new();
    fs::create_dir(t.p("dir")).unwrap();
    fs::write(t.p("dir/secret"), b"top secret").unwrap();
    fs::write(t.p("root-file"), b"also secret").unwrap();
    t.mount_with([0x13; 32]);
    assert_eq!(errno(&fs::read_dir(t.mnt()).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::read(t.p("root-file")).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::read(t.p("dir/secret")).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::write(t.p("new"), b"x").unwrap_err()), libc::EIO);
    assert_eq!(
        errno(&fs::create_dir(t.p("newdir")).unwrap_err()),
        libc::EIO
    );
    let err = check_key(&t.backing(), &SealKey::from_bytes([0x13; 32])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "backing directory {}: directory id failed authentication (wrong key or tampered store)",
            t.backing().display()
        )
    );
    // The right key still opens everything, untouched.
    t.mount_with(common::KEY);
    check_key(&t.backing(), &SealKey::from_bytes(common::KEY)).unwrap();
    assert_eq!(fs::read(t.p("dir/secret")).unwrap(), b"top secret");
}

#[test]
fn tampered_block_fails_only_where_touched() {
    let mut t = TestMount::new();
    let data = pattern(3 * 4096 + 100);
    fs::write(t.p("f"), &data).unwrap();
    let f = t.unmount_and_open_backing();
    let at = (HEADER_LEN + mse_sealfs::CIPHER_BLOCK_SIZE + 100) as u64;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 1], at).unwrap();
    drop(f);
    t.remount();
    assert_eq!(errno(&fs::read(t.p("f")).unwrap_err()), libc::EIO);
    // Block 0 alone is intact and readable; block 1 is not.
    let mut f = fs::File::open(t.p("f")).unwrap();
    let mut first = vec![0u8; 4096];
    f.read_exact(&mut first).unwrap();
    assert_eq!(first, data[..4096]);
    let mut buf = [0u8; 10];
    assert_eq!(errno(&f.read_at(&mut buf, 5000).unwrap_err()), libc::EIO);
}

#[test]
fn tampered_header_and_truncation_are_detected() {
    let mut t = TestMount::new();
    fs::write(t.p("h"), pattern(9000)).unwrap();
    t.unmount();
    let backing = only_backing_file(&t.backing());
    let original = fs::read(&backing).unwrap();

    // A flipped bit in the file id: the header no longer authenticates.
    let mut bad = original.clone();
    bad[5] ^= 0x80;
    fs::write(&backing, &bad).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read(t.p("h")).unwrap_err()), libc::EIO);

    // Cut at a block boundary: the new last block was not sealed as last.
    t.unmount();
    fs::write(
        &backing,
        &original[..HEADER_LEN + 2 * mse_sealfs::CIPHER_BLOCK_SIZE],
    )
    .unwrap();
    t.remount();
    assert_eq!(fs::metadata(t.p("h")).unwrap().len(), 8192);
    assert_eq!(errno(&fs::read(t.p("h")).unwrap_err()), libc::EIO);

    // Cut inside a block.
    t.unmount();
    fs::write(&backing, &original[..original.len() - 10]).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read(t.p("h")).unwrap_err()), libc::EIO);

    // A zeroed block is not taken for a hole.
    t.unmount();
    let mut zeroed = original.clone();
    zeroed[HEADER_LEN..HEADER_LEN + mse_sealfs::CIPHER_BLOCK_SIZE].fill(0);
    fs::write(&backing, &zeroed).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read(t.p("h")).unwrap_err()), libc::EIO);

    // Restored: readable again.
    t.unmount();
    fs::write(&backing, &original).unwrap();
    t.remount();
    assert_eq!(fs::read(t.p("h")).unwrap(), pattern(9000));
}

#[test]
fn tampered_or_moved_names_are_detected() {
    let mut t = TestMount::new();
    fs::create_dir(t.p("a")).unwrap();
    fs::create_dir(t.p("b")).unwrap();
    fs::write(t.p("a/file"), b"in a").unwrap();
    t.unmount();
    let a_dir = backing_files(&t.backing())
        .into_iter()
        .find(|p| fs::read(p).map(|c| c.len()).unwrap_or(0) > 44)
        .unwrap();
    let a_backing_dir = a_dir.parent().unwrap().to_path_buf();
    let stored = a_dir.file_name().unwrap().to_str().unwrap().to_string();
    // Change one character of the encrypted name.
    let mut chars: Vec<char> = stored.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    fs::rename(&a_dir, a_backing_dir.join(&tampered)).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read_dir(t.p("a")).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::read(t.p("a/file")).unwrap_err()), libc::ENOENT);

    // Moving the (valid) stored name into directory b: b's listing fails.
    t.unmount();
    let b_backing_dir = fs::read_dir(t.backing())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && *p != a_backing_dir)
        .unwrap();
    fs::rename(a_backing_dir.join(&tampered), b_backing_dir.join(&stored)).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read_dir(t.p("b")).unwrap_err()), libc::EIO);
    assert_eq!(fs::read_dir(t.p("a")).unwrap().count(), 0);
}

#[test]
fn backing_store_never_contains_the_canary() {
    const CANARY: &[u8] = b"CANARY-7f3a9c1e-plaintext-must-not-leak";
    let canary = std::str::from_utf8(CANARY).unwrap();
    let mut t = TestMount::new();
    fs::create_dir(t.p(canary)).unwrap();
    fs::write(t.p(&format!("{canary}/{canary}")), CANARY).unwrap();
    let mut big = Vec::new();
    for _ in 0..5000 {
        big.extend_from_slice(CANARY);
    }
    fs::write(t.p("big"), &big).unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(t.p("log"))
        .unwrap();
    for _ in 0..100 {
        f.write_all(CANARY).unwrap();
    }
    drop(f);
    std::os::unix::fs::symlink(canary, t.p("link")).unwrap();
    let check = |t: &TestMount| {
        for p in backing_files(&t.backing()) {
            let rel = p
                .strip_prefix(t.backing())
                .unwrap()
                .to_string_lossy()
                .to_string();
            assert!(!rel.contains(canary), "name leaks: {rel}");
            let content = if p.is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                fs::read(&p).unwrap()
            };
            assert!(
                !content.windows(CANARY.len()).any(|w| w == CANARY),
                "content leaks in {rel}"
            );
            // Not even a 16-byte piece of it.
            assert!(!content.windows(16).any(|w| w == &CANARY[..16]), "{rel}");
        }
    };
    check(&t);
    t.unmount();
    check(&t);
    t.remount();
    assert_eq!(fs::read(t.p("big")).unwrap(), big);
}

#[test]
fn quota_gives_enospc_and_frees_on_unlink() {
    let opts = SealFsOptions {
        quota_bytes: 1024 * 1024,
        ..Default::default()
    };
    let t = TestMount::with(common::KEY, opts);
    fs::write(t.p("a"), vec![1u8; 1024 * 1024 - 10]).unwrap();
    let mut f = OpenOptions::new().append(true).open(t.p("a")).unwrap();
    f.write_all(&[2u8; 10]).unwrap();
    assert_eq!(errno(&f.write_all(&[3u8; 1]).unwrap_err()), libc::ENOSPC);
    drop(f);
    assert_eq!(errno(&fs::write(t.p("b"), b"x").unwrap_err()), libc::ENOSPC);
    let stat = rustix::fs::statvfs(t.mnt()).unwrap();
    assert_eq!(stat.f_bavail, 0);
    // Unlinked while open: space comes back only at the last close.
    let held = fs::File::open(t.p("a")).unwrap();
    fs::remove_file(t.p("a")).unwrap();
    assert_eq!(errno(&fs::write(t.p("b"), b"x").unwrap_err()), libc::ENOSPC);
    drop(held);
    fs::write(t.p("b"), vec![5u8; 512 * 1024]).unwrap();
    let f = OpenOptions::new().write(true).open(t.p("b")).unwrap();
    assert_eq!(
        errno(&f.set_len(2 * 1024 * 1024).unwrap_err()),
        libc::ENOSPC
    );
    f.set_len(1024).unwrap();
    drop(f);
    fs::write(t.p("c"), vec![6u8; 1024 * 1024 - 1024]).unwrap();
    assert_eq!(fs::metadata(t.p("c")).unwrap().len(), 1024 * 1024 - 1024);
    // The usage is recounted from the backing store at mount.
    let mut t = t;
    t.remount();
    assert_eq!(errno(&fs::write(t.p("d"), b"x").unwrap_err()), libc::ENOSPC);
    fs::remove_file(t.p("c")).unwrap();
    fs::write(t.p("d"), vec![7u8; 4096]).unwrap();
}

#[test]
fn unmount_and_wipe_removes_the_backing_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Neither the backing directory nor the mountpoint exists yet: both are created.
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("home/root"));
    let m = common::mount_default(&backing, &mnt).unwrap();
    fs::write(mnt.join("x"), b"data").unwrap();
    m.unmount_and_wipe().unwrap();
    assert!(!backing.exists());
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0);
    // A non-store directory is refused rather than mixed with sealed files.
    fs::create_dir(&backing).unwrap();
    fs::write(backing.join("stray"), b"x").unwrap();
    let err = common::mount_default(&backing, &mnt).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "backing directory {} is not empty and has no sealfs directory id (not a sealfs store?)",
            backing.display()
        )
    );
}

#[test]
fn a_failure_after_an_early_acknowledged_write_surfaces_at_fsync() {
    // Write-through mode (the default); with kernel write-back caching the kernel reports it.
    let mut t = TestMount::with(common::KEY, SealFsOptions::default());
    fs::write(t.p("w"), pattern(3 * 4096)).unwrap();
    let f = t.unmount_and_open_backing();
    let last_block = (HEADER_LEN + 2 * mse_sealfs::CIPHER_BLOCK_SIZE + 40) as u64;
    f.write_all_at(&[0u8; 8], last_block).unwrap();
    drop(f);
    t.remount();
    let f = OpenOptions::new().write(true).open(t.p("w")).unwrap();
    // Large, page-aligned, past the end (the kernel reads nothing first): acknowledged, then
    // re-sealing the old last block (it stops being the last) fails authentication.
    f.write_all_at(&vec![9u8; 256 * 1024], 3 * 4096).unwrap();
    assert_eq!(errno(&f.sync_all().unwrap_err()), libc::EIO);
    // Reported once, like a write-back error.
    f.sync_all().unwrap();
    assert_eq!(fs::metadata(t.p("w")).unwrap().len(), 3 * 4096);
}

#[test]
fn swapped_file_contents_are_detected() {
    let mut t = TestMount::new();
    fs::write(t.p("alice"), b"alice's data").unwrap();
    fs::write(t.p("bob"), b"bob's data").unwrap();
    fs::rename(t.p("alice"), t.p("carol")).unwrap();
    t.unmount();
    let files: Vec<_> = fs::read_dir(t.backing())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != mse_sealfs::DIR_ID_FILE)
        .collect();
    assert_eq!(files.len(), 2);
    let tmp = t.backing().join("swap");
    fs::rename(&files[0], &tmp).unwrap();
    fs::rename(&files[1], &files[0]).unwrap();
    fs::rename(&tmp, &files[1]).unwrap();
    t.remount();
    // Both names still list, but neither opens the other's content.
    assert_eq!(common::sorted_names(&t.mnt()), ["bob", "carol"]);
    assert_eq!(errno(&fs::read(t.p("bob")).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::read(t.p("carol")).unwrap_err()), libc::EIO);
    // Swapped back: both open again (the rename re-sealed carol's header for its new name).
    t.unmount();
    fs::rename(&files[0], &tmp).unwrap();
    fs::rename(&files[1], &files[0]).unwrap();
    fs::rename(&tmp, &files[1]).unwrap();
    t.remount();
    assert_eq!(fs::read(t.p("carol")).unwrap(), b"alice's data");
    assert_eq!(fs::read(t.p("bob")).unwrap(), b"bob's data");
}

/// Names longer than 175 bytes live under a hash-derived alias with their encrypted name in a
/// side file: the host swapping, altering or deleting side files, or swapping the objects
/// behind two long names, is detected like it is for short names.
#[test]
fn long_names_swapped_tampered_or_orphaned_on_the_host_are_detected() {
    let mut t = TestMount::new();
    let (a, b) = ("a".repeat(200), "b".repeat(255));
    fs::write(t.p(&a), b"content of a").unwrap();
    fs::write(t.p(&b), b"content of b").unwrap();
    t.unmount();
    let side = |p: &std::path::Path| {
        let n = p.file_name().unwrap().to_str().unwrap();
        n.starts_with(".mse-sealfs.long.") && n.ends_with(".name")
    };
    let files = backing_files(&t.backing());
    let sides: Vec<_> = files.iter().filter(|p| side(p)).cloned().collect();
    assert_eq!(sides.len(), 2, "{files:?}");
    let objects: Vec<_> = sides
        .iter()
        .map(|s| {
            s.with_file_name(
                s.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim_end_matches(".name"),
            )
        })
        .collect();
    assert!(objects.iter().all(|o| o.is_file()), "{files:?}");
    // Host names are 60 bytes, and no plaintext name appears anywhere.
    for o in &objects {
        assert_eq!(o.file_name().unwrap().len(), 60);
    }
    for p in &files {
        let text = fs::read(p).unwrap();
        assert!(
            !text
                .windows(20)
                .any(|w| w == &a.as_bytes()[..20] || w == &b.as_bytes()[..20])
        );
    }
    let tmp = t.backing().join("swap");
    let swap = |x: &std::path::Path, y: &std::path::Path| {
        fs::rename(x, &tmp).unwrap();
        fs::rename(y, x).unwrap();
        fs::rename(&tmp, y).unwrap();
    };

    // Side files swapped: the alias no longer matches its side file.
    swap(&sides[0], &sides[1]);
    t.remount();
    assert_eq!(errno(&fs::read_dir(t.mnt()).unwrap_err()), libc::EIO);
    t.unmount();
    swap(&sides[0], &sides[1]);

    // The objects behind the two names swapped: each header is bound to its own name.
    swap(&objects[0], &objects[1]);
    t.remount();
    assert_eq!(fs::read_dir(t.mnt()).unwrap().count(), 2);
    assert_eq!(errno(&fs::read(t.p(&a)).unwrap_err()), libc::EIO);
    assert_eq!(errno(&fs::read(t.p(&b)).unwrap_err()), libc::EIO);
    t.unmount();
    swap(&objects[0], &objects[1]);

    // One byte of a side file changed.
    let saved = fs::read(&sides[0]).unwrap();
    let mut changed = saved.clone();
    changed[10] ^= 1;
    fs::set_permissions(
        &sides[0],
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::write(&sides[0], &changed).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read_dir(t.mnt()).unwrap_err()), libc::EIO);
    t.unmount();
    fs::write(&sides[0], &saved).unwrap();

    // A side file deleted: the object it named cannot be listed.
    let saved = fs::read(&sides[1]).unwrap();
    fs::remove_file(&sides[1]).unwrap();
    t.remount();
    assert_eq!(errno(&fs::read_dir(t.mnt()).unwrap_err()), libc::EIO);
    t.unmount();

    // Put back, everything lists and reads as before.
    fs::write(&sides[1], &saved).unwrap();
    t.remount();
    assert_eq!(common::sorted_names(&t.mnt()), [a.clone(), b.clone()]);
    assert_eq!(fs::read(t.p(&a)).unwrap(), b"content of a");
    assert_eq!(fs::read(t.p(&b)).unwrap(), b"content of b");
}
