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
