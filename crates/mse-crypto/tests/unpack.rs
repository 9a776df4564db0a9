//! Unpacking hostile packages: every refusal names what was wrong, and nothing is left behind.

use std::path::Path;

use mse_crypto::{CodeKey, UnpackError, UnpackLimits, encrypt_file, unpack_package};

fn key() -> CodeKey {
    CodeKey::from_bytes([42; 32])
}

fn enc(data: &[u8]) -> Vec<u8> {
    encrypt_file(&key(), &[7; 24], data)
}

/// One raw tar entry; the name bytes go straight into the header so that hostile names
/// (absolute, `..`) can be written, which the tar crate's safe setters refuse.
fn entry(name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    let raw = &mut h.as_gnu_mut().unwrap().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, tar::EntryType::Regular, data, None)
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Unpacks into `<tmp>/out` and checks that a failure leaves the parent directory empty.
fn unpack(
    tar: &[u8],
    limits: &UnpackLimits,
) -> (
    tempfile::TempDir,
    Result<mse_crypto::UnpackSummary, UnpackError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let res = unpack_package(tar, &key(), &dir.path().join("out"), limits);
    if res.is_err() {
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "something was left behind"
        );
    }
    (dir, res)
}

fn refused(tar: &[u8]) -> String {
    unpack(tar, &UnpackLimits::default())
        .1
        .unwrap_err()
        .to_string()
}

#[test]
fn a_good_package_unpacks() {
    let tar = archive(&[
        entry("pkg/", tar::EntryType::Directory, b"", None),
        file("app.py.enc", &enc(b"print(1)\n")),
        file("pkg/mod.py.enc", &enc(b"x = 2\n")),
        file("requirements.txt", b"flask\n"),
    ]);
    let (dir, res) = unpack(&tar, &UnpackLimits::default());
    let out = dir.path().join("out");
    assert_eq!(res.unwrap().files, 3);
    assert_eq!(std::fs::read(out.join("app.py")).unwrap(), b"print(1)\n");
    assert_eq!(std::fs::read(out.join("pkg/mod.py")).unwrap(), b"x = 2\n");
    assert_eq!(
        std::fs::read(out.join("requirements.txt")).unwrap(),
        b"flask\n"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn into_an_existing_empty_directory_but_not_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let tar = archive(&[file("app.py.enc", &enc(b"a"))]);
    unpack_package(&tar[..], &key(), &out, &UnpackLimits::default()).unwrap();
    let err = unpack_package(&tar[..], &key(), &out, &UnpackLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "output directory {} already exists and is not empty",
            out.display()
        )
    );
}

#[test]
fn absolute_and_parent_paths_are_refused() {
    for name in [
        "/etc/cron.d/x.enc",
        "../escape.enc",
        "a/../../b.enc",
        "./a.enc",
        "a//b.enc",
    ] {
        let msg = refused(&archive(&[file(name, &enc(b"x"))]));
        assert_eq!(
            msg,
            format!("member {name:?}: unsafe path (absolute, empty, `.` or `..` component)")
        );
    }
}

#[test]
fn links_devices_and_fifos_are_refused() {
    let cases = [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
        (tar::EntryType::Fifo, "FIFO"),
    ];
    for (kind, what) in cases {
        let link =
            matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link).then_some("/etc/passwd");
        let msg = refused(&archive(&[entry("evil.enc", kind, b"", link)]));
        assert_eq!(
            msg,
            format!("member \"evil.enc\": {what} entries are not allowed in a code package")
        );
    }
}

#[test]
fn duplicates_and_clashes_are_refused() {
    let a = file("app.py.enc", &enc(b"1"));
    assert_eq!(
        refused(&archive(&[a.clone(), a])),
        "member \"app.py.enc\" appears twice or clashes with another member"
    );
    let clash = archive(&[file("x.enc", &enc(b"1")), file("x/y.enc", &enc(b"2"))]);
    assert_eq!(
        refused(&clash),
        "member \"x/y.enc\" appears twice or clashes with another member"
    );
    let clear_and_enc = archive(&[
        file("requirements.txt", b"a"),
        file("requirements.txt.enc", &enc(b"b")),
    ]);
    assert_eq!(
        refused(&clear_and_enc),
        "member \"requirements.txt.enc\" appears twice or clashes with another member"
    );
}

#[test]
fn size_limits() {
    let limits = UnpackLimits {
        max_member_bytes: 100,
        max_total_bytes: 150,
        max_entries: 3,
    };
    let big = archive(&[file("big.enc", &enc(&[0; 80]))]);
    assert_eq!(
        unpack(&big, &limits).1.unwrap_err().to_string(),
        "member \"big.enc\" is 120 bytes, over the limit of 100 bytes"
    );
    let total = archive(&[file("a.enc", &enc(&[0; 50])), file("b.enc", &enc(&[0; 50]))]);
    assert_eq!(
        unpack(&total, &limits).1.unwrap_err().to_string(),
        "package holds more than 150 bytes"
    );
    let many: Vec<_> = (0..4)
        .map(|i| file(&format!("{i}.enc"), &enc(b"")))
        .collect();
    assert_eq!(
        unpack(&archive(&many), &limits).1.unwrap_err().to_string(),
        "package holds more than 3 entries"
    );
}

#[test]
fn clear_members_other_than_requirements_are_refused() {
    assert_eq!(
        refused(&archive(&[file("app.py", b"print(1)")])),
        "member \"app.py\" is in clear but only requirements.txt files may be"
    );
}

#[test]
fn tampering_and_wrong_key() {
    let mut bad = enc(b"print('hello')");
    bad[30] ^= 1;
    assert_eq!(
        refused(&archive(&[
            file("a.py.enc", &enc(b"ok")),
            file("b.py.enc", &bad)
        ])),
        "member \"b.py.enc\": integrity check failed: the file was modified or the key is wrong"
    );
    assert_eq!(
        refused(&archive(&[file("short.enc", &[1, 2, 3])])),
        "member \"short.enc\": too short to be an encrypted file (3 bytes, at least 40 expected)"
    );
    let other = encrypt_file(&CodeKey::from_bytes([1; 32]), &[0; 24], b"x");
    assert_eq!(
        refused(&archive(&[file("k.enc", &other)])),
        "member \"k.enc\": integrity check failed: the file was modified or the key is wrong"
    );
}

#[test]
fn garbage_and_truncation_are_malformed() {
    let good = archive(&[file("a.py.enc", &enc(&[5; 2000]))]);
    let msg = refused(&good[..700]);
    assert_eq!(
        msg,
        "malformed package archive: member \"a.py.enc\" is truncated (188 of 2040 bytes)"
    );
    let mut corrupt = good.clone();
    corrupt[150] ^= 0xff; // inside the header: checksum mismatch
    assert!(
        refused(&corrupt).starts_with("malformed package archive:"),
        "{}",
        refused(&corrupt)
    );
}

#[test]
fn nothing_is_written_outside_the_target() {
    let parent = tempfile::tempdir().unwrap();
    let tar = archive(&[
        file("ok.enc", &enc(b"1")),
        file("../../outside.enc", &enc(b"2")),
    ]);
    let target = parent.path().join("a/b/out");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    assert!(unpack_package(&tar[..], &key(), &target, &UnpackLimits::default()).is_err());
    assert!(!Path::new(&parent.path().join("outside")).exists());
    assert_eq!(
        std::fs::read_dir(target.parent().unwrap()).unwrap().count(),
        0
    );
}
