//! A client that goes away mid-response is logged at debug, one line without a traceback; an
//! application exception stays an ERROR with its traceback (issue 15.4).
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Starts a response that never ends, reads a little of it, and hangs up.
fn hang_up_mid_response(s: &Serve, path: &str) {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = 0;
    let mut buf = [0u8; 65536];
    while got < 200_000 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "server closed first");
        got += n;
    }
    drop(c);
}

fn check(app: &str, forever: &str, boom: &str, boom_log: &str) {
    let s = Serve::start_env(app, &[], &[("RUST_LOG", "info,mse_wsgi::app=debug")]);
    hang_up_mid_response(&s, forever);
    let line = format!("GET {forever}: client disconnected");
    assert!(s.wait_log(&line), "{}", s.log_text());
    let log = s.log_text();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("Traceback"), "{log}");
    assert_eq!(log.matches("client disconnected").count(), 1, "{log}");
    // A real failure is still an error with its traceback.
    let code = http_code(&s.url(boom));
    assert_eq!(code, "500");
    assert!(s.wait_log(boom_log), "{}", s.log_text());
    let log = s.log_text();
    assert!(
        log.contains(&format!("ERROR mse_wsgi::app: GET {boom}: application error\nTraceback (most recent call last):\n")),
        "{log}"
    );
}

#[test]
fn client_disconnect_is_not_an_error_wsgi() {
    check(
        "environ_app:app",
        "/write-forever",
        "/boom",
        "ValueError: secret-detail-xyz",
    );
}

#[test]
fn client_disconnect_is_not_an_error_asgi() {
    check(
        "fastapi_app:app",
        "/forever",
        "/boom",
        "ValueError: asgi-secret-detail",
    );
}
