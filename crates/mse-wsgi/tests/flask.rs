//! Flask through real clients (curl and Python requests), errors, access log, body limits.
mod common;

use common::*;

#[test]
fn flask_hello_via_curl_and_requests() {
    let s = Serve::start("hello_flask:app", &[]);
    assert_eq!(curl_ok(&[&s.url("/")]), "Hello, World!");
    let out = python(
        "import sys, requests\n\
         s = requests.Session()\n\
         for i in range(3):\n    r = s.get(sys.argv[1] + '/')\n    assert r.status_code == 200, r.status_code\n\
         r = s.post(sys.argv[1] + '/echo', data=b'payload-123')\n\
         print(r.status_code, r.text, r.headers['Content-Type'])",
        &[&s.url("")],
    );
    assert_eq!(out.trim(), "200 payload-123 text/html; charset=utf-8");
    // One access-log line per request: method, path, status, bytes.
    assert!(s.wait_log("\"GET / HTTP/1.1\" 200 13 "), "{}", s.log_text());
    assert!(
        s.wait_log("\"POST /echo HTTP/1.1\" 200 11 "),
        "{}",
        s.log_text()
    );
}

#[test]
fn chunked_upload_reaches_flask() {
    // Also covers --batch-io (the I/O threads' scheduling policy changes nothing visible).
    let s = Serve::start("hello_flask:app", &["--batch-io"]);
    let body = curl_ok(&[
        "-X",
        "POST",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "chunked-body-data",
        &s.url("/echo"),
    ]);
    assert_eq!(body, "chunked-body-data");
}

#[test]
fn app_exception_is_500_with_traceback_only_in_log() {
    let s = Serve::start("environ_app:app", &[]);
    let out = curl_ok(&["-i", &s.url("/boom")]);
    assert!(
        out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nInternal Server Error\n"), "{out}");
    assert!(!out.contains("secret-detail-xyz"));
    assert!(
        s.wait_log("ValueError: secret-detail-xyz"),
        "{}",
        s.log_text()
    );
    assert!(s.log_text().contains("Traceback (most recent call last)"));
    // Still serving.
    assert_eq!(curl_ok(&[&s.url("/lazy")]), "lazy body");
    // An invalid status from the app is an app error too.
    let out = http_code(&s.url("/bad-status"));
    assert_eq!(out, "500");
    assert!(s.wait_log("invalid WSGI status \"OK\""), "{}", s.log_text());
}

#[test]
fn text_io_is_utf8_whatever_the_locale() {
    let s = Serve::start_env("environ_app:app", &[], &[("LC_ALL", "C"), ("LANG", "C")]);
    let out = curl_ok(&[&s.url("/utf8")]);
    assert_eq!(
        out,
        r#"{"errors": "utf-8", "preferred": "utf-8", "stdout": "utf-8", "text": "h\u00e9llo \u2713"}"#
    );
    assert!(
        s.wait_log("stdout: h\u{e9}llo \u{2713}"),
        "{}",
        s.log_text()
    );
}

#[test]
fn body_over_limit_is_413() {
    let s = Serve::start("environ_app:app", &["--max-body", "1000"]);
    let big = "a".repeat(1001);
    let code = |extra: &[&str]| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"];
        args.extend_from_slice(extra);
        let url = s.url("/upload");
        args.push(&url);
        curl_ok(&args)
    };
    // Declared length over the limit: refused before the app runs.
    assert_eq!(code(&["--data-binary", &big]), "413");
    // Chunked body crossing the limit while the app reads it.
    assert_eq!(
        code(&["-H", "Transfer-Encoding: chunked", "--data-binary", &big]),
        "413"
    );
    // At the limit: accepted.
    let ok = "a".repeat(1000);
    assert_eq!(code(&["--data-binary", &ok]), "200");
}
