//! Helpers shared by tests/vm.rs and examples/vm_bench.rs: a guest image and venv from the
//! environment, a packaged test app, a launch spec, a provisioning client over RA-TLS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mse_crypto::CodeKey;
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

/// Encrypts the enclave tests' seed app (`crates/mse-enclave/tests/apps/seed_app`, which also
/// serves the VM probes) into `dir/app.tar`.
pub fn package(dir: &Path) -> (PathBuf, CodeKey) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mse-enclave/tests/apps/seed_app");
    mse_testkit::package_dir(&src, dir)
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

pub use mse_testkit::{Response, free_port};

/// One HTTP/1.1 request over TLS (`Connection: close`), the server certificate captured.
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    mse_testkit::ratls_request(port, method, path, body, Duration::from_secs(60))
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
            // A short timeout: QEMU's user-mode network accepts the host-side connection at
            // once, and while the guest's network is not up the forwarded one stalls (~11 s).
            mse_testkit::ratls_request(port, "GET", &p, b"", Duration::from_secs(3))
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
