//! Test harness: packages an app, spawns the real `mse-enclave` binary on loopback with the sim
//! TEE, and talks HTTP/1.1 over TLS to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mse_crypto::CodeKey;
use mse_launch::{Digest32, LaunchInputs, LaunchSpec, PackageRef, Runtime, TeeKind, TlsSpec};

pub const ID: &str = "123e4567-e89b-12d3-a456-426614174000";

pub fn venv() -> PathBuf {
    PathBuf::from(std::env::var("MSE_TEST_VENV").unwrap_or_else(|_| "/work/main/.venv".into()))
}

pub fn app_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
}

/// Encrypt every file of `tests/apps/<name>` into `<dir>/app.tar`; returns its path and key.
pub fn package(name: &str, dir: &Path) -> (PathBuf, CodeKey) {
    mse_testkit::package_dir(&app_dir(name), dir)
}

/// A running enclave; killed on drop. Its stderr is collected.
pub struct Enclave {
    pub child: Child,
    pub port: u16,
    pub state: PathBuf,
    pub log: Arc<Mutex<String>>,
    /// The spec it was launched with.
    pub spec: LaunchSpec,
}

pub struct Launch<'a> {
    pub package: &'a Path,
    pub application: &'a str,
    pub dir: &'a Path,
    /// Owner mode: the certificate chain (else self mode, expiring at 4000000000).
    pub certificate: Option<PathBuf>,
    /// `--timeout`.
    pub timeout: Option<u64>,
}

impl<'a> Launch<'a> {
    /// The usual launch: self mode (expiration-based TLS), no timeout.
    pub fn new(package: &'a Path, application: &'a str, dir: &'a Path) -> Launch<'a> {
        Launch {
            package,
            application,
            dir,
            certificate: None,
            timeout: None,
        }
    }
}

pub const SEED_HEX: &str = "0101010101010101010101010101010101010101010101010101010101010101";

/// SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Digest32 {
    mse_launch::process::file_sha256(path).unwrap()
}

/// The launch spec of `l`, for the sim TEE, as a node would write it.
pub fn spec_of(l: &Launch<'_>) -> LaunchSpec {
    LaunchSpec {
        version: 1,
        app_id: ID.into(),
        san: "localhost".into(),
        application: l.application.into(),
        memory_mb: 1024,
        vcpus: 1,
        tee: TeeKind::Sim,
        tls: match &l.certificate {
            Some(c) => TlsSpec::OwnerCertificateSha256(sha256_file(c)),
            None => TlsSpec::Expiration(4_000_000_000),
        },
        package: PackageRef {
            sha256: sha256_file(l.package),
            size: std::fs::metadata(l.package).unwrap().len(),
        },
        environment_sha256: Digest32(mse_attest::measurement::environment_digest(&venv()).unwrap()),
        runtime: Runtime::Process {
            enclave_sha256: sha256_file(Path::new(env!("CARGO_BIN_EXE_mse-enclave"))),
        },
    }
}

/// The host-local inputs of `l` on `port`.
pub fn inputs_of(l: &Launch<'_>, port: u16) -> LaunchInputs {
    let seed = l.dir.join("seed");
    std::fs::write(&seed, SEED_HEX).unwrap();
    LaunchInputs {
        package: l.package.to_path_buf(),
        environment: venv(),
        owner_certificate: l.certificate.clone(),
        host: "127.0.0.1".into(),
        port,
        state_dir: l.dir.join("state"),
        sim_seed: Some(seed),
        config_timeout_secs: l.timeout,
    }
}

/// Runs mse-enclave with the process launcher's command line and `spec` on stdin.
pub fn spawn_enclave(spec: &LaunchSpec, inputs: &LaunchInputs) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mse-enclave"))
        .args(mse_launch::process::enclave_args(inputs))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&spec.canonical_bytes());
    drop(stdin);
    child
}

impl Enclave {
    pub fn start(l: Launch<'_>) -> Enclave {
        let spec = spec_of(&l);
        Self::start_spec(&l, spec)
    }

    /// Starts the enclave with `spec` (which may differ from what `l` attaches).
    pub fn start_spec(l: &Launch<'_>, spec: LaunchSpec) -> Enclave {
        let port = free_port();
        let inputs = inputs_of(l, port);
        let mut child = spawn_enclave(&spec, &inputs);
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        Enclave {
            child,
            port,
            state: inputs.state_dir,
            log,
            spec,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the configuration server answers GET with `Mse-Status: Waiting`.
    pub fn wait_conf_server(&mut self) -> Response {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = request(self.port, "GET", "/", b"") {
                return r;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("enclave exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no conf server:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until `path` answers without `Mse-Status` and with a status other than 503.
    pub fn wait_app(&mut self, path: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = request(self.port, "GET", path, b"")
                && r.header("mse-status").is_none()
                && r.status != 503
            {
                return r;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("enclave exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "app not ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn post(&self, body: &[u8]) -> Response {
        request(self.port, "POST", "/", body).unwrap()
    }

    /// The app's variables, from the enclave's `app environment:` log line.
    pub fn app_env(&self) -> std::collections::BTreeMap<String, String> {
        let log = self.log();
        let line = log
            .lines()
            .find_map(|l| {
                l.split_once("app environment: ")
                    .map(|(_, rest)| rest.to_owned())
            })
            .unwrap_or_else(|| panic!("no app environment line:\n{log}"));
        line.split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// `path` as the enclave sees it (through its mount namespace, if it has one).
    pub fn inside(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.child.id()))
    }

    /// Everything under the app's directories (must stay empty on refusal).
    pub fn written(&self) -> Vec<String> {
        let env = self.app_env();
        let mut out = Vec::new();
        for var in ["HOME", "MODULE_PATH", "KEY_PATH", "TMP_PATH"] {
            let d = self.inside(&env[var]);
            assert!(d.is_dir(), "{} is not a directory", d.display());
            let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&d).unwrap());
            for e in walk(&d, dev) {
                out.push(e.display().to_string());
            }
        }
        out
    }
}

/// Files (not directories: the sandbox pre-creates some) on device `dev` under `dir`; what the
/// sandbox bind-mounts read-only from the host (the Python installation, the package) lies on
/// another device and is skipped.
fn walk(dir: &Path, dev: u64) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.dev() != dev {
                continue;
            }
            if meta.is_dir() {
                out.extend(walk(&e.path(), dev));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

impl Drop for Enclave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use mse_testkit::{Response, free_port};

/// One HTTP/1.1 request over TLS (`Connection: close`), the certificate captured.
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<Response> {
    mse_testkit::ratls_request(port, method, path, body, Duration::from_secs(30))
}
