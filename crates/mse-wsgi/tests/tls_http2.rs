//! TLS from PEM files, HTTP/2 negotiated by ALPN (curl --http2), for WSGI and ASGI.
mod common;

use common::*;

#[test]
fn http2_over_tls_wsgi_and_asgi() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls = ["--tls-cert", cert, "--tls-key", key];
    let s = Serve::start("environ_app:app", &tls);
    let resolve = format!("localhost:{}:127.0.0.1", s.addr.port());
    let base = ["--cacert", cert, "--resolve", resolve.as_str()];

    let mut args = base.to_vec();
    let url = s.https_url("/env");
    args.extend_from_slice(&["--http2", "-w", "\n%{http_version}", &url]);
    let out = curl_ok(&args);
    let (json, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2");
    assert!(json.contains(r#""SERVER_PROTOCOL": "HTTP/2""#), "{json}");
    assert!(json.contains(r#""wsgi.url_scheme": "https""#), "{json}");
    assert!(
        json.contains(&format!(r#""HTTP_HOST": "localhost:{}""#, s.addr.port())),
        "{json}"
    );

    // HTTP/1.1 over TLS still works (ALPN http/1.1).
    let mut args = base.to_vec();
    args.extend_from_slice(&["--http1.1", "-w", "\n%{http_version}", &url]);
    let out = curl_ok(&args);
    assert!(out.ends_with("\n1.1"), "{out}");
    assert!(out.contains(r#""SERVER_PROTOCOL": "HTTP/1.1""#), "{out}");

    // A POST body over HTTP/2.
    let mut args = base.to_vec();
    let url = s.https_url("/input/read5");
    args.extend_from_slice(&["--http2", "--data-binary", "hello h2 world", &url]);
    assert_eq!(curl_ok(&args), r#"["hello", " h2 world"]"#);
    drop(s);

    let s = Serve::start("fastapi_app:app", &tls);
    let resolve = format!("localhost:{}:127.0.0.1", s.addr.port());
    let url = s.https_url("/items/3");
    let out = curl_ok(&["--cacert", cert, "--resolve", &resolve, "--http2", &url]);
    assert_eq!(
        out,
        r#"{"id":3,"q":null,"started":true,"http_version":"2","path":"/items/3"}"#
    );
}

#[test]
fn bad_tls_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mse-serve"))
        .args(["hello_raw:app", "--bind", "127.0.0.1:0", "--app-dir"])
        .arg(apps_dir())
        .arg("--venv")
        .arg(venv())
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "mse-serve: error: TLS certificate file {}: ",
            missing.display()
        )),
        "{err}"
    );
}
