//! Malformed requests get a 4xx from hyper or from the body reader, and the server stays healthy.
mod common;

use std::time::Duration;

use common::*;

fn healthy(s: &Serve) {
    assert_eq!(curl_ok(&[&s.url("/")]), "Hello, World!");
}

#[test]
fn malformed_requests_are_refused_and_server_stays_healthy() {
    let s = Serve::start("hello_raw:app", &[]);
    let t = Duration::from_secs(5);
    let r = raw(s.addr, b"GARBAGE\r\n\r\n", t);
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    healthy(&s);
    let r = raw(s.addr, b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", t);
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    healthy(&s);
    let r = raw(
        s.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        t,
    );
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    healthy(&s);
    // Oversized head (100 KiB header, limit 64 KiB).
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let r = raw(s.addr, &big, t);
    assert_eq!(
        status_line(&r),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    healthy(&s);
    // Conflicting framing.
    let r = raw(
        s.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        t,
    );
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    healthy(&s);
}

#[test]
fn invalid_chunk_size_is_400() {
    let s = Serve::start("environ_app:app", &[]);
    let t = Duration::from_secs(5);
    let r = raw(
        s.addr,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        t,
    );
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    let r = raw(
        s.addr,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n",
        t,
    );
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    assert_eq!(curl_ok(&[&s.url("/lazy")]), "lazy body");
}

#[test]
fn pipelined_requests_answered_in_order() {
    let s = Serve::start("environ_app:app", &[]);
    let r = raw(
        s.addr,
        b"GET /lazy HTTP/1.1\r\nHost: x\r\n\r\nGET /write HTTP/1.1\r\nHost: x\r\n\r\nGET /lazy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&r);
    let statuses: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 201 Created",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 201 Created"
        ]
    );
    let lazy = text.find("lazy body").unwrap();
    let written = text.find("written-\r\n8\r\nreturned").unwrap();
    assert!(lazy < written && text.rfind("lazy body").unwrap() > written);
}

#[test]
fn graceful_shutdown_drains_in_flight_requests() {
    let mut s = Serve::start("environ_app:app", &[]);
    let url = s.url("/sleep?1");
    let pending = std::thread::spawn(move || curl_ok(&["-w", " %{http_code}", &url]));
    // Wait (bounded) until the request is inside the app (it sleeps 1 s; SIGTERM arrives then).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while curl_ok(&[&s.url("/sleeping")]) != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "request never reached the app"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = s.terminate().expect("exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(pending.join().unwrap(), "slept 200");
}

#[test]
fn connection_cap_makes_extra_clients_wait() {
    let s = Serve::start("hello_raw:app", &["--max-connections", "1"]);
    // A served keep-alive connection that stays open holds the only slot.
    let mut idle = std::net::TcpStream::connect(s.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut idle, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"Hello, World!") {
        let n = std::io::Read::read(&mut idle, &mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let out = curl(&["--max-time", "1", &s.url("/")]);
    assert_eq!(out.status.code(), Some(28), "expected a curl timeout");
    drop(idle);
    assert_eq!(curl_ok(&[&s.url("/")]), "Hello, World!");
}

/// How a connection ended: `Closed(bytes)` when the server closed it (EOF or reset) before
/// `wait`, `Open(bytes)` when it was still open then.
#[derive(Debug, PartialEq)]
enum End {
    Closed(String),
    Open(String),
}

fn send_then_wait(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> End {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return End::Closed(status_line(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return End::Closed(status_line(&got));
            }
            Err(_) => return End::Open(status_line(&got)),
        }
    }
}

#[test]
fn a_connection_without_a_request_head_in_time_is_closed_but_a_slow_app_is_not_cut() {
    let s = Serve::start("environ_app:app", &["--header-timeout", "0.5"]);
    // Well past the deadline and its sweep, far from a hang.
    let wait = Duration::from_secs(8);
    // A head trickled in and never finished (slowloris): closed without an answer.
    assert_eq!(
        send_then_wait(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n", wait),
        End::Closed(String::new())
    );
    // A connection that never sends anything.
    assert_eq!(
        send_then_wait(s.addr, b"", wait),
        End::Closed(String::new())
    );
    // An idle keep-alive connection, after its answered request.
    assert_eq!(
        send_then_wait(s.addr, b"GET /sleep?0 HTTP/1.1\r\nHost: x\r\n\r\n", wait),
        End::Closed("HTTP/1.1 200 OK".into())
    );
    // A request in flight is never cut, however slow the app: 1.5 s against the 0.5 s deadline.
    assert_eq!(curl_ok(&[&s.url("/sleep?1.5")]), "slept");
    // The flag's value is checked.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mse-serve"))
        .args(["x:app", "--header-timeout", "0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "invalid value '0' for '--header-timeout <HEADER_TIMEOUT>': \"0\" is not a positive number of seconds"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_idle_h2c_connection_is_not_under_the_head_deadline() {
    // HTTP/2 with prior knowledge on the plain port: a PING answered after the deadline
    // passed proves the connection stayed open.
    let s = Serve::start("hello_raw:app", &["--header-timeout", "0.3"]);
    let out = python(
        r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
time.sleep(1.5)
s.sendall(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"pingpong")
data = b""
while b"pingpong" not in data:
    chunk = s.recv(4096)
    if not chunk:
        print("closed")
        break
    data += chunk
else:
    print("ping answered")
"#,
        &[&s.addr.port().to_string()],
    );
    assert_eq!(out.trim(), "ping answered");
}
