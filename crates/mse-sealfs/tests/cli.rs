//! The `mse-sealfs mount` development command (used by bench/sealfs.sh and by POSIX suites).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mse-sealfs");
const NOBODY: u32 = 65534;

/// Mounts with `extra` arguments, writes a world-readable file, and returns what user
/// `nobody` gets reading it through the mount: its content, or the error `cat` printed.
fn read_as_nobody(extra: &[&str]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let mnt = dir.path().join("mnt");
    let (mut child, line) = mse_testkit::spawn_first_line(
        Command::new(BIN)
            .arg("mount")
            .arg("--backing")
            .arg(dir.path().join("backing"))
            .arg("--mountpoint")
            .arg(&mnt)
            .arg("--key-file")
            .arg(&key)
            .args(extra)
            .stdin(Stdio::piped()),
    );
    assert_eq!(line, format!("mounted {}\n", mnt.display()));
    let serve = || {
        std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(mnt.join("shared.txt"), b"for everyone").unwrap();
        std::fs::set_permissions(
            mnt.join("shared.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let out = Command::new("cat")
            .arg(mnt.join("shared.txt"))
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    let result = serve();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(!Path::new(&mnt).join("shared.txt").exists());
    let _ = std::io::stderr().flush();
    result
}

#[test]
fn allow_other_lets_other_users_in_and_is_off_by_default() {
    if mse_testkit::lacks_root("FUSE allow_other, switching to user nobody") {
        return;
    }
    assert_eq!(
        read_as_nobody(&["--allow-other"]),
        Ok("for everyone".into())
    );
    let denied = read_as_nobody(&[]).unwrap_err();
    assert!(
        denied.ends_with("shared.txt: Permission denied"),
        "{denied}"
    );
}
