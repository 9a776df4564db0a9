//! Broken pipes: a closed stdout ends `mse` quietly (as a Unix filter), a broken socket is an
//! error like any other (one line, exit code 1), never a silent death by SIGPIPE (exit 141).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mse"))
        .args(["scaffold", "demo"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `mse scaffold demo | true`: the reader is gone before mse writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    // The work itself was done.
    assert!(tmp.path().join("demo/mse.toml").is_file());
}

/// `mse verify` against a server that hangs up at once (plain HTTP or worse): one line, exit 1.
#[test]
fn a_socket_closed_by_the_peer_is_one_error_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut c, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 5];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        }
    });
    for _ in 0..3 {
        let out = Command::new(env!("CARGO_BIN_EXE_mse"))
            .args(["verify", &format!("app.example.com:{port}")])
            .args(["--connect", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("Error: TLS connection to 127.0.0.1:{port}: ")),
            "{stderr}"
        );
    }
    server.join().unwrap();
}
