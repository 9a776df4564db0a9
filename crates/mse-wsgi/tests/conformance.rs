//! RFC 9112 (HTTP/1.1 message syntax) and RFC 9113 (HTTP/2 connection start) cases that hyper
//! alone lets through: raw requests on loopback, exact status lines or bytes.
mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(5);

fn status(s: &Serve, request: &[u8]) -> String {
    status_line(&raw(s.addr, request, T))
}

#[test]
fn host_field_missing_or_repeated_is_400() {
    let s = Serve::start("hello_raw:app", &[]);
    assert_eq!(
        status(&s, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(
            &s,
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(
            &s,
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.1 400 Bad Request"
    );
    // One Host is fine; HTTP/1.0 may omit it.
    assert_eq!(
        status(
            &s,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(status(&s, b"GET / HTTP/1.0\r\n\r\n"), "HTTP/1.0 200 OK");
}

const CHUNKED: &str = "Host: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

fn chunked(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\n{CHUNKED}{body}").into_bytes()
}

#[test]
fn whitespace_after_chunk_size_is_400() {
    let s = Serve::start("environ_app:app", &[]);
    // The app reads the body, and the app does not (/lazy answers without reading).
    for path in ["/upload", "/lazy"] {
        assert_eq!(
            status(&s, &chunked(path, "5\r\nhello\r\n0 \r\n\r\n")),
            "HTTP/1.1 400 Bad Request",
            "{path}"
        );
        assert_eq!(
            status(&s, &chunked(path, "5\t\r\nhello\r\n0\r\n\r\n")),
            "HTTP/1.1 400 Bad Request",
            "{path}"
        );
    }
    let r = raw(s.addr, &chunked("/upload", "5\r\nhello\r\n0\r\n\r\n"), T);
    let text = String::from_utf8_lossy(&r);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(r#"{"len": 5, "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#), "{text}");
}

#[test]
fn bare_cr_in_chunk_extension_is_400_even_if_the_app_ignores_the_body() {
    let s = Serve::start("hello_raw:app", &[]);
    assert_eq!(
        status(&s, &chunked("/", "5;ext=a\rb\r\nhello\r\n0\r\n\r\n")),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(&s, &chunked("/", "5;ext=ab\r\nhello\r\n0\r\n\r\n")),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn forbidden_trailer_fields_are_refused() {
    let s = Serve::start("environ_app:app", &[]);
    for field in [
        "Content-Length: 5",
        "Transfer-Encoding: chunked",
        "Host: evil",
        "Authorization: Basic eDp5",
    ] {
        for path in ["/upload", "/lazy"] {
            let body = format!("5\r\nhello\r\n0\r\n{field}\r\n\r\n");
            assert_eq!(
                status(&s, &chunked(path, &body)),
                "HTTP/1.1 400 Bad Request",
                "{field} {path}"
            );
        }
    }
    // Other trailer fields are accepted (and, like all trailers, not shown to the app).
    let r = raw(
        s.addr,
        &chunked("/upload", "5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"),
        T,
    );
    assert_eq!(status_line(&r), "HTTP/1.1 200 OK");
}

#[test]
fn connect_is_405() {
    let s = Serve::start("hello_raw:app", &[]);
    let r = raw(
        s.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
        T,
    );
    let text = String::from_utf8_lossy(&r);
    assert_eq!(status_line(&r), "HTTP/1.1 405 Method Not Allowed", "{text}");
    assert!(
        text.contains("\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n"),
        "{text}"
    );
}

/// Sends `payload` over TLS with ALPN `alpn`; prints what comes back as hex, and the protocol.
const TLS_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.set_alpn_protocols([sys.argv[3]])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(bytes.fromhex(sys.argv[4]))
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except (ssl.SSLError, OSError):
            pass
        print(s.selected_alpn_protocol(), out.hex())
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn alpn_h2_with_an_invalid_preface_is_goaway_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let s = Serve::start("hello_raw:app", &["--tls-cert", cert, "--tls-key", key]);
    let port = s.addr.port().to_string();
    let http1 = hex(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let out = python(TLS_CLIENT, &[cert, &port, "h2", &http1]);
    // SETTINGS (empty), then GOAWAY: last stream 0, error code 1 (PROTOCOL_ERROR); then close.
    assert_eq!(
        out.trim_end(),
        concat!(
            "h2 ",
            "000000040000000000", // SETTINGS: length 0, type 4, flags 0, stream 0
            "000008070000000000", // GOAWAY: length 8, type 7, flags 0, stream 0
            "00000000",           // last stream id
            "00000001",           // PROTOCOL_ERROR
        )
    );
    // ALPN http/1.1 is HTTP/1.1 only: an HTTP/2 preface there is not HTTP/2.
    let out = python(TLS_CLIENT, &[cert, &port, "http/1.1", &http1]);
    let (alpn, body) = out.trim_end().split_once(' ').unwrap();
    assert_eq!(alpn, "http/1.1");
    assert!(body.starts_with(&hex(b"HTTP/1.1 200 OK\r\n")), "{out}");
    let preface = hex(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let out = python(TLS_CLIENT, &[cert, &port, "http/1.1", &preface]);
    // hyper's HTTP/1 parser closes on an HTTP/2 preface without an answer (no SETTINGS frame).
    assert_eq!(out.trim_end(), "http/1.1");
    // A real HTTP/2 client still works.
    assert_eq!(curl_h2_root(cert, s.addr.port()), "Hello, World! 2");
}

#[test]
fn plain_port_keeps_http11_and_h2c_prior_knowledge() {
    let s = Serve::start("hello_raw:app", &[]);
    let url = s.url("/");
    let out = curl_ok(&["--http2-prior-knowledge", "-w", " %{http_version}", &url]);
    assert_eq!(out, "Hello, World! 2");
    let out = curl_ok(&["--http1.1", "-w", " %{http_version}", &url]);
    assert_eq!(out, "Hello, World! 1.1");
}
