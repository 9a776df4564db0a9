//! Test harness: a real `mse-node` process on loopback with the fake enclave, a tiny blocking
//! HTTP client for its API, and a TLS client for its router.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mse_launch::Digest32;
use mse_launch::image::ImageManifest;
use serde_json::Value;

pub fn node_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mse-node"))
}

/// The fake enclave example, built by `cargo test` next to the binaries.
pub fn fake_enclave() -> PathBuf {
    let p = node_bin()
        .parent()
        .unwrap()
        .join("examples")
        .join("fake_enclave");
    assert!(
        p.exists(),
        "{} missing: build with `cargo test -p mse-node`",
        p.display()
    );
    p
}

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub api: SocketAddr,
    pub router: SocketAddr,
    /// Extra environment variables of the node process.
    pub env: Vec<(String, String)>,
}

/// A minimal virtualenv layout (only what the node looks at: bin/python, pyvenv.cfg).
fn tiny_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::create_dir_all(venv.join("lib/python3.11/site-packages")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", venv.join("bin/python")).unwrap();
    std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    venv
}

impl TestNode {
    pub fn start(extra: &str) -> TestNode {
        Self::start_with(extra, &fake_enclave())
    }

    /// A node running `enclave` as its enclave runtime.
    pub fn start_with(extra: &str, enclave: &Path) -> TestNode {
        Self::start_with_env(extra, enclave, &[])
    }

    /// Same, with extra environment variables for the node process (and so for its pip).
    pub fn start_with_env(extra: &str, enclave: &Path, env: &[(&str, &str)]) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let venv = tiny_venv(dir.path());
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\napi_bind = \"127.0.0.1:0\"\nrouter_bind = \"127.0.0.1:0\"\nenclave_bin = {:?}\nclient_hello_timeout_ms = 1000\n{extra}\n\n[[environment]]\nname = \"mse-flask\"\nvenv = {:?}\n",
                enclave.display().to_string(),
                venv.display().to_string()
            ),
        )
        .unwrap();
        let mut node = TestNode {
            dir,
            config,
            child: None,
            api: "127.0.0.1:1".parse().unwrap(),
            router: "127.0.0.1:1".parse().unwrap(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        node.spawn();
        node
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the node process and reads its bound addresses from its first stdout line.
    pub fn spawn(&mut self) {
        let (child, api, router) = mse_testkit::spawn_node(
            Command::new(node_bin())
                .args(["serve", "--config"])
                .arg(&self.config)
                .env("RUST_LOG", "warn")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stderr(Stdio::inherit()),
        );
        self.api = api.trim_start_matches("http://").parse().unwrap();
        self.router = router.parse().unwrap();
        self.child = Some(child);
    }

    /// How many app directories the node's data directory holds.
    pub fn app_dirs(&self) -> usize {
        std::fs::read_dir(self.data().join("apps")).unwrap().count()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn project(&self, name: &str) -> String {
        mse_testkit::run_ok(
            Command::new(node_bin())
                .args(["project", "create", name, "--config"])
                .arg(&self.config),
        )
        .trim()
        .to_owned()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        http(self.api, "GET", path, token, None, &[])
    }

    /// The app's stdout as its owner reads it from `GET /apps/{id}/logs`.
    pub fn stdout_of(&self, token: &str, id: &str) -> String {
        let (_, logs) = self.get(&format!("/apps/{id}/logs"), Some(token));
        logs["stdout"].as_str().unwrap().to_owned()
    }

    pub fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        http(self.api, "POST", path, token, None, &[])
    }

    /// `POST /apps` with a package and a conf.
    pub fn deploy(&self, token: &str, package: &[u8], conf: &Value) -> (u16, Value) {
        let (ct, body) = multipart(&[
            ("code", "app.tar", package),
            ("conf", "", conf.to_string().as_bytes()),
        ]);
        http(self.api, "POST", "/apps", Some(token), Some(&ct), &body)
    }

    /// Polls the app until `pred` holds (at most `secs`), returning it.
    pub fn wait_app(
        &self,
        token: &str,
        id: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, app) = self.get(&format!("/apps/{id}"), Some(token));
            assert_eq!(code, 200, "{app}");
            if pred(&app) {
                return app;
            }
            assert!(Instant::now() < deadline, "timed out; app is {app}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_status(&self, token: &str, id: &str, status: &str, secs: u64) -> Value {
        self.wait_app(token, id, secs, |a| a["status"] == status)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A self-signed certificate for `name` (PEM).
pub fn self_signed_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.self_signed(&key).unwrap().pem()
}

pub fn conf(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "project": null,
        "dev_mode": false,
        "healthcheck_endpoint": "/health",
        "python_application": "app:app",
        "expires_at": null,
        "ssl_certificate": null,
        "domain_name": null,
        "hardware": "4g-eu-001",
        "docker": "ghcr.io/cosmian/mse-flask:20230124182826",
    })
}

/// A tar with one file, standing in for an encrypted package.
pub fn package() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"not really ciphertext";
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "app.py.enc", &data[..]).unwrap();
    b.into_inner().unwrap()
}

pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "mse-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if filename.is_empty() {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/tar\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let (status, body) = http_raw(addr, method, path, token, content_type, body);
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, json)
}

pub fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading everything: ignore a reset on write.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"))
        .parse()
        .unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = text[..split].to_ascii_lowercase();
    let mut body = resp[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTPS request through the router with SNI `host`, the certificate (the fake enclave's
/// self-signed one) accepted as is. `Err` when the router closes the connection.
pub fn https(
    router: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String, String), String> {
    https_body(router, host, method, path, None)
}

/// `POST /` with a JSON body through the router (what provisioning looks like).
pub fn https_post_json(
    router: SocketAddr,
    host: &str,
    json: &str,
) -> Result<(u16, String, String), String> {
    https_body(router, host, "POST", "/", Some(json))
}

/// A TLS client for `host` that accepts any certificate (the fake enclave's is self-signed).
pub fn any_cert_client(host: &str) -> rustls::ClientConnection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

fn https_body(
    router: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String, String), String> {
    let mut conn = any_cert_client(host);
    let mut tcp = TcpStream::connect(router).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let body = if method == "POST" {
        body.unwrap_or("{}")
    } else {
        ""
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    match tls.read_to_end(&mut resp) {
        Ok(_) => {}
        // hyper closes without close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .ok_or("empty answer")?
        .parse()
        .map_err(|_| "bad status")?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    Ok((status, head.to_ascii_lowercase(), body.to_owned()))
}

/// Pid of the process whose command line holds `arg` (the fake enclave of an app id).
/// The fake enclave whose command line has an argument containing `arg` (an app id: its
/// state dir is named after it).
pub fn pid_with_arg(arg: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && cmd
                .split(|&b| b == 0)
                .any(|a| a.windows(arg.len()).any(|w| w == arg.as_bytes()))
            && cmd.starts_with(fake_enclave().as_os_str().as_encoded_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// `GET path` with one raw header line; returns the status and the body text.
pub fn http_raw_headers(addr: SocketAddr, path: &str, header: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{header}\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// An `image.json` for these kernel and initrd bytes.
pub fn image_manifest(kernel: &[u8], initrd: &[u8]) -> ImageManifest {
    ImageManifest {
        version: 1,
        kernel_sha256: Digest32::of(kernel).to_hex(),
        initrd_sha256: Digest32::of(initrd).to_hex(),
        cmdline: "console=ttyS0 quiet panic=-1 mse.spec={spec}".into(),
        kernel_version: "6.12.95+deb12-cloud-amd64".into(),
        modules: vec![
            "/lib/modules/6.12.95+deb12-cloud-amd64/kernel/drivers/virt/coco/tsm.ko".into(),
        ],
        lock_sha256: Digest32::of(b"lock").to_hex(),
        packages: vec![mse_launch::image::LockedPackage {
            name: "libc6".into(),
            version: "2.36-9+deb12u14".into(),
            sha256: Digest32::of(b"libc6.deb").to_hex(),
        }],
    }
}

/// node.toml lines publishing a small VM image written under `dir` (`vm_image`, `vm_firmware`
/// and, with `tdx`, the TDX reference values `[0x11; 48]`, `[0x20..=0x22; 48]`).
pub fn published_image(dir: &Path, tdx: bool) -> String {
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::write(image.join("vmlinuz"), b"k").unwrap();
    std::fs::write(image.join("initrd.img"), b"i").unwrap();
    std::fs::write(
        image.join("image.json"),
        image_manifest(b"k", b"i").to_bytes(),
    )
    .unwrap();
    let firmware = dir.join("OVMF.fd");
    std::fs::write(&firmware, b"firmware volume").unwrap();
    let mut lines = format!(
        "vm_image = {:?}\nvm_firmware = {:?}\n",
        image.display().to_string(),
        firmware.display().to_string()
    );
    if tdx {
        let h = |b: u8| hex::encode([b; 48]);
        lines.push_str(&format!(
            "[vm]\ntdx_mrtd = \"{}\"\ntdx_rtmr0 = \"{}\"\ntdx_rtmr1 = \"{}\"\ntdx_rtmr2 = \"{}\"\n",
            h(0x11),
            h(0x20),
            h(0x21),
            h(0x22)
        ));
    }
    lines
}
