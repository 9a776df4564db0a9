//! Files the CLI reads are bounded before they are read (issue 16.6): an endless mse.toml,
//! certificate or quote fails after its limit with one line, and an error quotes at most a short
//! prefix of a bad value.

use std::path::Path;
use std::process::{Command, Output};

fn mse(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mse"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .output()
        .expect("run mse")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `mse package` of `dir/mse.toml`, expected to fail (exit 1): its stderr.
fn package_error(dir: &Path) -> String {
    let o = mse(dir, &["package", "--path", "mse.toml", "--output", "out"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    stderr(&o)
}

#[test]
fn package_with_mse_toml_on_dev_zero_fails_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("mse.toml");
    std::os::unix::fs::symlink("/dev/zero", &toml).unwrap();
    assert_eq!(
        package_error(tmp.path()),
        "Error: mse.toml: cannot read: more than the 1 MiB limit for this file\n"
    );
    // A regular file over the limit is refused from its size, before reading.
    std::fs::remove_file(&toml).unwrap();
    let f = std::fs::File::create(&toml).unwrap();
    f.set_len(3 << 30).unwrap();
    assert_eq!(
        package_error(tmp.path()),
        "Error: mse.toml: cannot read: 3221225472 bytes is over the 1 MiB limit for this file\n"
    );
}

#[test]
fn verify_cert_or_quote_on_dev_zero_fails_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for flag in ["--cert", "--quote"] {
        let o = mse(tmp.path(), &["verify", flag, "/dev/zero"]);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        assert_eq!(
            stderr(&o),
            "Error: cannot read /dev/zero: more than the 1 MiB limit for this file\n",
            "{flag}"
        );
    }
}

#[test]
fn a_long_bad_value_is_quoted_short() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "n".repeat(500_000);
    std::fs::write(
        tmp.path().join("mse.toml"),
        format!(
            "name = \"{name}\"\npython_application = \"app:app\"\nhealthcheck_endpoint = \"/\"\n"
        ),
    )
    .unwrap();
    assert_eq!(
        package_error(tmp.path()),
        format!(
            "Error: mse.toml:1: name must be 1 to 255 characters, got \"{}…\" (500000 characters)\n",
            "n".repeat(64)
        )
    );
}
