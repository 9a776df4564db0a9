//! FastAPI (ASGI 3) unchanged, through httpx and curl: lifespan, JSON, body streaming both ways,
//! errors, detection and its override.
mod common;

use common::*;

#[test]
fn fastapi_through_httpx_and_lifespan() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let marker_s = marker.to_str().unwrap();
    let mut s = Serve::start_env("fastapi_app:app", &[], &[("MSE_TEST_MARKER", marker_s)]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "startup;");
    let out = python(
        "import sys, httpx, hashlib\n\
         base = sys.argv[1]\n\
         with httpx.Client() as c:\n\
         \x20   r = c.get(base + '/items/7', params={'q': 'x y'})\n\
         \x20   print(r.status_code, r.text)\n\
         \x20   print(c.get(base + '/sync').text)\n\
         \x20   body = bytes(range(256)) * 4096\n\
         \x20   r = c.post(base + '/echo', content=body)\n\
         \x20   assert r.json() == {'len': len(body), 'sha256': hashlib.sha256(body).hexdigest()}, r.text\n\
         \x20   def gen():\n\
         \x20       for i in range(50):\n\
         \x20           yield b'z' * 10000\n\
         \x20   r = c.post(base + '/stream-upload', content=gen())\n\
         \x20   assert r.json()['len'] == 500000, r.text\n\
         \x20   with c.stream('GET', base + '/stream') as r:\n\
         \x20       print(repr(b''.join(r.iter_bytes())))\n\
         \x20   r = c.get(base + '/boom')\n\
         \x20   print(r.status_code, r.text)\n\
         \x20   print(c.get(base + '/items/8').status_code)\n",
        &[&s.url("")],
    );
    assert_eq!(
        out,
        "200 {\"id\":7,\"q\":\"x y\",\"started\":true,\"http_version\":\"1.1\",\"path\":\"/items/7\"}\n\
         {\"sync\":true}\n\
         b'line 0\\nline 1\\nline 2\\nline 3\\nline 4\\n'\n\
         500 Internal Server Error\n\
         200\n"
    );
    assert!(
        s.wait_log("ValueError: asgi-secret-detail"),
        "{}",
        s.log_text()
    );
    assert!(
        s.wait_log("\"GET /items/7 HTTP/1.1\" 200"),
        "{}",
        s.log_text()
    );
    let status = s.terminate().expect("server exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "startup;shutdown;"
    );
}

#[test]
fn interface_detection_and_override() {
    let s = Serve::start("hello_flask:app", &[]);
    assert_eq!(
        s.banner,
        format!("mse-serve listening on http://{} (Wsgi)", s.addr)
    );
    assert_eq!(curl_ok(&[&s.url("/")]), "Hello, World!");
    drop(s);
    // Forcing WSGI on an ASGI app: calling it the WSGI way fails → 500, server keeps running.
    let s = Serve::start("fastapi_app:app", &[]);
    assert!(s.banner.ends_with(" (Asgi)"), "{}", s.banner);
    drop(s);
    let s = Serve::start("fastapi_app:app", &["--interface", "wsgi"]);
    assert!(s.banner.ends_with(" (Wsgi)"), "{}", s.banner);
    let code = http_code(&s.url("/sync"));
    assert_eq!(code, "500");
    let code = http_code(&s.url("/sync"));
    assert_eq!(code, "500");
}

#[test]
fn bare_asgi_receive_and_send() {
    let s = Serve::start("raw_asgi:app", &[]);
    assert!(s.banner.ends_with(" (Asgi)"), "{}", s.banner);
    let out = curl_ok(&["-s", "-D", "-", "--data-binary", "xyz-body", &s.url("/")]);
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(out.contains("x-len: 8\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nabxyz"), "{out}");
    assert!(
        s.wait_log("raw-asgi: disconnect after the response"),
        "{}",
        s.log_text()
    );
    assert!(!s.log_text().contains("ERROR"), "{}", s.log_text());
}
