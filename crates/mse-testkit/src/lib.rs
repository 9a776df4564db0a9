//! Helpers that integration tests of several crates share (a dev-dependency only).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// Runs `cmd` to completion, fails the test with its stderr unless it succeeded, and returns
/// its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Spawns `cmd` with stdout piped and returns the child with the first line it printed
/// (servers announce their addresses or mount points there).
pub fn spawn_first_line(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Spawns `mse-node serve` (`cmd`) and returns it with its API and router addresses, read
/// from its first line: `mse-node: API on http://A , router on R , data in D`.
pub fn spawn_node(cmd: &mut Command) -> (Child, String, String) {
    let (child, line) = spawn_first_line(cmd);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len() >= 8, "the node did not start: {line:?}");
    assert_eq!(words[..3], ["mse-node:", "API", "on"], "{line}");
    (child, words[3].to_owned(), words[7].to_owned())
}

/// The names in directory `dir`; none if it does not exist.
pub fn dir_names(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default()
}

/// True (after saying the test is skipped and why) when this process is not root: tests of
/// mounts, namespaces and other users return early then.
pub fn lacks_root(why: &str) -> bool {
    let lacks = !rustix::process::geteuid().is_root();
    if lacks {
        eprintln!("\n!!! SKIPPED: needs root ({why}) !!!\n");
    }
    lacks
}

#[cfg(feature = "enclave")]
mod ratls;
#[cfg(feature = "enclave")]
pub use ratls::{Response, ratls_request};

/// Encrypts every file of directory `src` (sorted by name) into `dir/app.tar` with a new key;
/// returns its path and the key.
#[cfg(feature = "enclave")]
pub fn package_dir(
    src: &std::path::Path,
    dir: &std::path::Path,
) -> (std::path::PathBuf, mse_crypto::CodeKey) {
    let mut files: Vec<mse_crypto::PackageFile> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| mse_crypto::PackageFile {
            rel: e.file_name().to_string_lossy().into_owned(),
            abs: e.path(),
        })
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let key = mse_crypto::CodeKey::generate();
    let out = dir.join("app.tar");
    let f = std::fs::File::create(&out).unwrap();
    mse_crypto::build_package(&files, &key, None, f, &|_| {}).unwrap();
    (out, key)
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
