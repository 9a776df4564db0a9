//! Helpers shared by tests/vm.rs and examples/vm_bench.rs: a guest image and venv from the
//! environment, a packaged test app, a launch spec, a provisioning client over RA-TLS.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mse_attest::ratls::CaptureVerifier;
use mse_crypto::{CodeKey, PackageFile};
use mse_launch::vm::{VmConfig, VmLauncher};
use mse_launch::{
    Digest32, Instance, LaunchInputs, LaunchSpec, Launcher, OutputSink, PackageRef, TeeKind,
    TlsSpec,
};

pub const ID: &str = "123e4567-e89b-12d3-a456-426614174000";
pub const SEED_HEX: &str = "0101010101010101010101010101010101010101010101010101010101010101";
/// Generous: a TCG boot on a loaded 2-core CI machine.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(240);

pub fn env_path(var: &str, how: &str) -> PathBuf {
    let value = std::env::var_os(var)
        .unwrap_or_else(|| panic!("{var} is not set: {how} (the Makefile sets it)"));
    PathBuf::from(value)
}

pub fn image_dir() -> PathBuf {
    env_path("MSE_VM_IMAGE", "the guest image directory, `make image`")
}

pub fn venv() -> PathBuf {
    env_path("MSE_VM_VENV", "a virtualenv with Flask, `make venv`")
}

#[derive(Default)]
pub struct Log(pub Mutex<Vec<u8>>);

impl OutputSink for Log {
    fn output(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
    fn note(&self, line: &str) {
        let mut l = self.0.lock().unwrap();
        l.extend_from_slice(line.as_bytes());
        l.push(b'\n');
    }
}

impl Log {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Encrypts `tests/apps/vm_app` into `dir/app.tar`.
pub fn package(dir: &Path) -> (PathBuf, CodeKey) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/vm_app");
    let mut files: Vec<PackageFile> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| PackageFile {
            rel: e.file_name().to_string_lossy().into_owned(),
            abs: e.path(),
        })
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let key = CodeKey::generate();
    let out = dir.join("app.tar");
    let f = std::fs::File::create(&out).unwrap();
    mse_crypto::build_package(&files, &key, None, f, &|_| {}).unwrap();
    (out, key)
}

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub launcher: VmLauncher,
    pub spec: LaunchSpec,
    pub inputs: LaunchInputs,
    pub key: CodeKey,
}

impl Setup {
    /// Launches the spec, its output collected in the returned log.
    pub async fn launch(&self) -> (Arc<dyn Instance>, Arc<Log>) {
        let log = Arc::new(Log::default());
        let instance = self
            .launcher
            .launch(&self.spec, &self.inputs, log.clone())
            .await
            .unwrap();
        (instance, log)
    }
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, key) = package(dir.path());
    let bytes = std::fs::read(&pkg).unwrap();
    let seed = dir.path().join("seed");
    std::fs::write(&seed, SEED_HEX).unwrap();
    let mut config = VmConfig::new(image_dir());
    if let Some(q) = std::env::var_os("MSE_QEMU") {
        config.qemu = q.into();
    }
    let launcher = VmLauncher::new(config).unwrap();
    let venv = venv();
    let spec = LaunchSpec {
        version: 1,
        app_id: ID.into(),
        san: "localhost".into(),
        application: "app:app".into(),
        memory_mb: 1024,
        vcpus: 1,
        tee: TeeKind::Sim,
        tls: TlsSpec::Expiration(4_000_000_000),
        package: PackageRef {
            sha256: Digest32::of(&bytes),
            size: bytes.len() as u64,
        },
        environment_sha256: Digest32(mse_attest::measurement::environment_digest(&venv).unwrap()),
        runtime: launcher.runtime().unwrap(),
    };
    let inputs = LaunchInputs {
        package: pkg,
        environment: venv,
        owner_certificate: None,
        host: "127.0.0.1".into(),
        port: free_port(),
        state_dir: dir.path().join("state"),
        sim_seed: Some(seed),
        config_timeout_secs: None,
    };
    Setup {
        _dir: dir,
        launcher,
        spec,
        inputs,
        key,
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub cert: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over TLS (`Connection: close`), the server certificate captured.
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    request_timeout(port, method, path, body, Duration::from_secs(60))
}

/// [`request`] with a read timeout. Readiness probes use a short one: QEMU's user-mode network
/// accepts the host-side connection at once, and while the guest's network is not up yet the
/// forwarded connection stalls (about 11 s) instead of being refused.
pub fn request_timeout(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let capture = Arc::new(CaptureVerifier::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(timeout))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(body)?;
    tls.flush()?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
        cert: capture.captured().unwrap_or_default(),
    })
}

/// Retries `GET path` until `done` accepts the answer, the VM ends, or the deadline passes.
pub async fn poll(
    instance: &Arc<dyn Instance>,
    log: &Log,
    path: &str,
    done: impl Fn(&Response) -> bool,
) -> Response {
    let port = instance.addr().port();
    let deadline = Instant::now() + BOOT_DEADLINE;
    loop {
        let p = path.to_owned();
        if let Ok(Ok(r)) = tokio::task::spawn_blocking(move || {
            request_timeout(port, "GET", &p, b"", Duration::from_secs(3))
        })
        .await
            && done(&r)
        {
            return r;
        }
        if let Ok(exit) = tokio::time::timeout(Duration::from_millis(300), instance.wait()).await {
            panic!("the VM ended ({exit}):\n{}", log.text());
        }
        assert!(
            Instant::now() < deadline,
            "GET {path}: no answer in time:\n{}",
            log.text()
        );
    }
}

pub async fn call(port: u16, method: &'static str, path: &'static str, body: Vec<u8>) -> Response {
    tokio::task::spawn_blocking(move || request(port, method, path, &body))
        .await
        .unwrap()
        .unwrap()
}
