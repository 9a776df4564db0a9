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

/// True (after saying the test is skipped and why) when this process is not root: tests of
/// mounts, namespaces and other users return early then.
pub fn lacks_root(why: &str) -> bool {
    let lacks = !rustix::process::geteuid().is_root();
    if lacks {
        eprintln!("\n!!! SKIPPED: needs root ({why}) !!!\n");
    }
    lacks
}
