//! PEP 3333 details: environ, wsgi.input, start_response/write/exc_info, close(), and an app
//! wrapped in wsgiref.validate.validator.
mod common;

use common::*;

fn env_json(s: &Serve, extra: &[&str], path: &str) -> String {
    let mut args: Vec<&str> = extra.to_vec();
    let url = s.url(path);
    args.push(&url);
    curl_ok(&args)
}

fn field(json: &str, key: &str) -> String {
    python(
        "import json, sys; v = json.loads(sys.argv[1]).get(sys.argv[2]); print('<absent>' if v is None else v, end='')",
        &[json, key],
    )
}

/// Asserts each `(key, value)` of the environ dump `json` (see [`field`]).
#[track_caller]
fn assert_fields(json: &str, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(field(json, key), *value, "{key}");
    }
}

#[test]
fn environ_is_built_from_the_request_only() {
    let s = Serve::start_env(
        "environ_app:app",
        &[],
        &[("MSE_TEST_SECRET_VAR", "top-secret")],
    );
    let j = env_json(
        &s,
        &[
            "-H",
            "X-Multi: a",
            "-H",
            "X-Multi: b",
            "-H",
            "Cookie: c1=1",
            "-H",
            "Cookie: c2=2",
            "-H",
            "X_Spoofed: 1",
        ],
        "/env/a%2Fb/caf%C3%A9?x=1&y=%20",
    );
    assert!(!j.contains("top-secret"), "process environment leaked: {j}");
    assert_fields(
        &j,
        &[
            ("PATH", "<absent>"),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            // PEP 3333: percent-decoded, then latin-1 (so UTF-8 bytes appear as two latin-1 chars).
            ("PATH_INFO", "/env/a/b/cafÃ©"),
            ("QUERY_STRING", "x=1&y=%20"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "127.0.0.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("wsgi.url_scheme", "http"),
            ("HTTP_X_MULTI", "a, b"),
            ("HTTP_COOKIE", "c1=1; c2=2"),
            ("HTTP_X_SPOOFED", "<absent>"),
            ("CONTENT_LENGTH", "<absent>"),
            ("wsgi.input_terminated", "True"),
            ("wsgi.version", "[1, 0]"),
        ],
    );
    assert_eq!(field(&j, "SERVER_PORT"), s.addr.port().to_string());
    assert!(field(&j, "REMOTE_PORT").parse::<u16>().is_ok());

    let j = env_json(&s, &["--http1.0"], "/env");
    assert_eq!(field(&j, "SERVER_PROTOCOL"), "HTTP/1.0");

    let j = env_json(
        &s,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: text/x-test",
            "--data-binary",
            "12345",
        ],
        "/env",
    );
    assert_fields(
        &j,
        &[
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_TYPE", "text/x-test"),
            ("HTTP_CONTENT_TYPE", "<absent>"),
        ],
    );
}

#[test]
fn wsgi_input_semantics() {
    let s = Serve::start("environ_app:app", &[]);
    for chunked in [false, true] {
        let mut base = vec!["-X", "POST"];
        if chunked {
            base.extend_from_slice(&["-H", "Transfer-Encoding: chunked"]);
        }
        let post = |path: &str, data: &str| {
            let mut args = base.clone();
            args.extend_from_slice(&["--data-binary", data]);
            let url = s.url(path);
            args.push(&url);
            curl_ok(&args)
        };
        // read(5) then read() returns the rest (Granian 2.8.7 loses it).
        assert_eq!(
            post("/input/read5", "hello world"),
            r#"["hello", " world"]"#
        );
        assert_eq!(
            post("/input/lines", "line1\nline2\nline3\nend"),
            r#"["line1\n", "lin", ["e2\n", "line3\n", "end"]]"#
        );
        assert_eq!(post("/input/readlines", "a\nb\n"), r#"["a\n", "b\n"]"#);
    }
    // Without a body (GET, or POST with Content-Length: 0) every read is empty.
    for method in ["GET", "POST"] {
        let read = |path: &str| curl_ok(&["-X", method, "-H", "Content-Length: 0", &s.url(path)]);
        assert_eq!(read("/input/read5"), r#"["", ""]"#);
        assert_eq!(read("/input/lines"), r#"["", "", []]"#);
        assert_eq!(read("/input/readlines"), "[]");
    }
}

#[test]
fn start_response_write_lazy_exc_info_and_close() {
    let s = Serve::start("environ_app:app", &[]);
    assert_eq!(curl_ok(&[&s.url("/write")]), "written-returned");
    let out = curl_ok(&["-i", &s.url("/lazy")]);
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    assert!(out.contains("x-lazy: yes\r\n"), "{out}");
    let out = curl_ok(&["-i", &s.url("/empty-then-late")]);
    assert!(out.starts_with("HTTP/1.1 202 Accepted\r\n"), "{out}");
    assert!(out.ends_with("late"), "{out}");
    let out = curl_ok(&["-i", &s.url("/excinfo")]);
    assert!(
        out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{out}"
    );
    assert!(out.ends_with("replaced by the error page"), "{out}");

    assert_eq!(
        curl_ok(&[&s.url("/state")]),
        r#"{"closed": 0, "produced": 0}"#
    );
    assert_eq!(curl_ok(&[&s.url("/close")]), "abc");
    // More bytes than the declared Content-Length: the declared body is sent, the rest dropped.
    let out = curl_ok(&["-i", &s.url("/overlong")]);
    assert!(out.contains("content-length: 3\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nabc"), "{out}");
    assert!(s.wait_log("body longer than its Content-Length; extra bytes dropped"));
    // close() is called even when iteration fails before the head is sent (→ 500).
    let code = http_code(&s.url("/close-fail"));
    assert_eq!(code, "500");
    assert_eq!(
        curl_ok(&[&s.url("/state")]),
        r#"{"closed": 3, "produced": 0}"#
    );
    // A failure after the head was sent truncates the response (curl reports an error).
    let out = curl(&[&s.url("/boom-late")]);
    assert!(!out.status.success());
    assert!(s.wait_log("ValueError: late failure"), "{}", s.log_text());
}

#[test]
fn wsgiref_validator_accepts_the_server() {
    let s = Serve::start("validated:app", &[]);
    assert_eq!(curl_ok(&[&s.url("/")]), "validated HTTP/1.1");
    assert_eq!(curl_ok(&["--http1.0", &s.url("/")]), "validated HTTP/1.0");
    assert_eq!(curl_ok(&["--data-binary", "abc", &s.url("/read")]), "abc");
    assert_eq!(
        curl_ok(&["--data-binary", "l1\nl2\nl3\nl4", &s.url("/lines")]),
        "l1\n|l2\n|l3\n|l4"
    );
    assert_eq!(
        curl_ok(&["--data-binary", "x\ny\n", &s.url("/readlines")]),
        "x\n|y\n"
    );
    assert_eq!(curl_ok(&[&s.url("/write")]), "via write;via iterable");
    assert_eq!(curl_ok(&[&s.url("/gen")]), "one;two;three");
    assert!(!s.log_text().contains("AssertionError"), "{}", s.log_text());
    assert!(!s.log_text().contains("WSGIWarning"), "{}", s.log_text());
}

#[test]
fn blocking_requests_run_concurrently_on_the_pool() {
    // Two requests that each wait for the other inside the app: both pass only if two pool
    // threads run them at once (a spare is woken while the first blocks with the GIL released).
    let s = Serve::start("environ_app:app", &[]);
    let urls = [s.url("/barrier"), s.url("/barrier")];
    let handles: Vec<_> = urls
        .into_iter()
        .map(|u| std::thread::spawn(move || curl_ok(&["-w", " %{http_code}", &u])))
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "passed 200");
    }
}
