//! `mse localtest` (also `mse cloud localtest`): run the app in the same runtime as a node
//! (`mse-enclave`, simulated TEE, same sandbox, paths and rules), go through the whole
//! attestation and provisioning protocol, then run the app's tests against it.
//!
//! Localtest is the node's launcher on a laptop, not a second implementation: the app's venv
//! comes from mse-launch's venv builder (the node's pip rules: wheels only), the enclave from
//! mse-launch's process launcher with a sim `LaunchSpec`.
//!
//! Steps: the app's venv (cached) → package with a fresh key → a random sim seed and an
//! in-process mock PCCS from it → launch spec → `mse-enclave` through the process launcher →
//! attest it with `attest::attest_enclave` (simulation explicitly allowed here, and said so; the
//! measurement is the spec hash) → send the code key and secrets pinned to that certificate →
//! wait for the healthcheck → tests venv → `tests_cmd` with TEST_REMOTE_URL and
//! REQUESTS_CA_BUNDLE. The enclave is always stopped, also on Ctrl-C.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use mse_attest::ratls::{CaptureVerifier, anchors_for_collateral};
use mse_attest::{Evidence, Policy};
use mse_attest_sim::{CollateralOptions, MockPccs, SimPki};
use mse_conf::AppConf;
use mse_crypto::CodeKey;
use mse_launch::venv::{EnvSource, Environment, Venvs, requirements_in_dir};
use mse_launch::{
    ConfPayload, Digest32, Disposal, Exit, Instance, LaunchInputs, LaunchSpec, Launcher,
    OutputSink, PackageRef, ProcessLauncher, SPEC_VERSION, TeeKind, TlsSpec,
};
use sha2::{Digest, Sha256};

/// Packages the default environment (the `docker` of a scaffolded app) provides.
const BASE_PACKAGES: &[&str] = &["flask"];
/// Name of localtest's base environment in the venv cache.
const BASE_ENV: &str = "localtest-base";
/// Cache layout version (bump when the venv recipe changes).
const CACHE_VERSION: &str = "mse-localtest-venv-v1";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// A VM under software emulation boots in tens of seconds on a loaded machine.
const VM_READY_TIMEOUT: Duration = Duration::from_secs(600);
const SAN: &str = "localhost";

#[derive(Args, Debug)]
pub struct LocaltestArgs {
    /// Path to the app's mse.toml.
    #[arg(long, default_value = "mse.toml")]
    pub path: PathBuf,
    /// Do not run the tests: keep the app running and stream its log until Ctrl-C.
    #[arg(long)]
    pub no_tests: bool,
    /// Local port of the app.
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Run the app in a VM booted from the guest image (the node's `launcher = "vm"`), with the
    /// simulated TEE inside, instead of a host process.
    #[arg(long)]
    pub vm: bool,
    /// The guest image directory for --vm (vmlinuz, initrd.img, image.json); default
    /// `$MSE_VM_IMAGE`.
    #[arg(long, value_name = "DIR", requires = "vm")]
    pub vm_image: Option<PathBuf>,
    /// The simulated TEE: `sim` (mock SGX), or with --vm `sim-snp` (mock SEV-SNP: the launch
    /// digest of the VM's boot, recomputed here from the image, is its measurement).
    #[arg(long, value_name = "TEE", default_value = "sim", value_parser = ["sim", "sim-snp"])]
    pub tee: String,
}

/// The enclave, launched by the node's process launcher; stopped (SIGTERM, then SIGKILL; its
/// state dir deleted) when dropped.
struct LaunchedEnclave {
    rt: tokio::runtime::Runtime,
    instance: Arc<dyn Instance>,
}

impl LaunchedEnclave {
    /// How it ended, if it has.
    fn exited(&self) -> Option<Exit> {
        self.rt.block_on(async {
            tokio::time::timeout(Duration::ZERO, self.instance.wait())
                .await
                .ok()
        })
    }

    /// Polls `ready` every 50 ms until it holds; bails on Ctrl-C, and fails through `fail`
    /// (which shows the enclave log) when the enclave exits (`stage` says when) or, with
    /// `late`, at `deadline`.
    fn wait_for(
        &self,
        mut ready: impl FnMut() -> bool,
        interrupted: &AtomicBool,
        deadline: Instant,
        fail: impl Fn(String) -> anyhow::Error,
        stage: &str,
        late: String,
    ) -> anyhow::Result<()> {
        while !ready() {
            if let Some(status) = self.exited() {
                return Err(fail(format!("mse-enclave stopped ({status}) {stage}")));
            }
            if interrupted.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                return Err(fail(late));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for LaunchedEnclave {
    fn drop(&mut self) {
        self.rt.block_on(self.instance.stop(Disposal::Delete));
    }
}

/// Where the enclave's output goes: its log file (shown on failure), or stderr with
/// `--no-tests`.
struct EnclaveOutput(std::sync::Mutex<Box<dyn Write + Send>>);

impl OutputSink for EnclaveOutput {
    fn output(&self, bytes: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    fn note(&self, line: &str) {
        self.output(format!("[mse localtest] {line}\n").as_bytes());
    }
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("mse");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/mse"),
        None => std::env::temp_dir().join("mse-cache"),
    }
}

fn python() -> String {
    std::env::var("MSE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A venv with `packages` and the requirement files installed, cached under the hash of all
/// of them; built in place, with a completion marker written last.
/// The virtualenv the app's tests run in (`mse localtest` and `mse test`): `tests_requirements`
/// installed, cached; `MSE_LOCALTEST_TESTS_VENV` (or `MSE_LOCALTEST_VENV`) names a ready one.
pub(crate) fn tests_venv(requirements: &[String]) -> anyhow::Result<PathBuf> {
    match std::env::var_os("MSE_LOCALTEST_TESTS_VENV")
        .or_else(|| std::env::var_os("MSE_LOCALTEST_VENV"))
    {
        Some(v) => Ok(PathBuf::from(v)),
        None => cached_venv("tests", requirements, &[]),
    }
}

/// `PATH` with the venv's `bin` first, so `tests_cmd` finds its tools.
pub(crate) fn path_with_venv(venv: &Path) -> anyhow::Result<std::ffi::OsString> {
    Ok(match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![venv.join("bin")];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).context("PATH")?
        }
        None => venv.join("bin").into_os_string(),
    })
}

fn cached_venv(
    what: &str,
    packages: &[String],
    requirements: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    cached_venv_in(&cache_dir().join("venvs"), what, packages, requirements)
}

fn cached_venv_in(
    root: &Path,
    what: &str,
    packages: &[String],
    requirements: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    let mut hasher = Sha256::new();
    hasher.update(CACHE_VERSION);
    let version = Command::new(python())
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", python()))?;
    hasher.update(&version.stdout);
    for p in packages {
        hasher.update((p.len() as u64).to_be_bytes());
        hasher.update(p);
    }
    for r in requirements {
        let text = fs::read(r).with_context(|| format!("cannot read {}", r.display()))?;
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(&text);
    }
    let hash = hex::encode(&hasher.finalize()[..12]);
    let dir = root.join(&hash);
    // Built in place (a venv's scripts name its absolute path, so it cannot be moved); the
    // marker is written last, so an interrupted build is redone.
    let complete = dir.join(".mse-complete");
    if complete.exists() {
        println!("Using the cached {what} environment {}", dir.display());
        return Ok(dir);
    }
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let _ = fs::remove_dir_all(&dir);
    println!("Building the {what} environment in {} ...", dir.display());
    let built = (|| {
        let install = !packages.is_empty() || !requirements.is_empty();
        let mut venv = Command::new(python());
        venv.args(["-m", "venv"]);
        if !install {
            venv.arg("--without-pip");
        }
        run_quiet(venv.arg(&dir), "python3 -m venv")?;
        if install {
            let mut pip = Command::new(dir.join("bin/python"));
            pip.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"]);
            pip.args(packages);
            for r in requirements {
                pip.arg("-r").arg(r);
            }
            run_quiet(&mut pip, "pip install")?;
        }
        fs::write(&complete, b"").with_context(|| format!("cannot write {}", complete.display()))
    })();
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Prints the venv builder's notes; pip's own output is not shown (its reason is in the error).
struct ConsoleSink;

impl mse_launch::OutputSink for ConsoleSink {
    fn output(&self, _bytes: &[u8]) {}

    fn note(&self, line: &str) {
        // Progress only: a closed stdout must not stop the build.
        let _ = crate::write_stdout(format_args!("  {line}\n"));
    }
}

/// The app's venv, built exactly as a node builds it on deploy: the base environment
/// (`MSE_LOCALTEST_VENV`, or python3 with Flask), plus the code dir's `requirements.txt`
/// layered on top with the same rules (plain specifiers, wheels only, wheel hashes recorded).
fn app_venv(code: &Path) -> anyhow::Result<PathBuf> {
    let source = match std::env::var_os("MSE_LOCALTEST_VENV") {
        Some(v) => EnvSource::Venv(PathBuf::from(v)),
        None => EnvSource::Packages {
            python: python(),
            packages: BASE_PACKAGES.iter().map(|s| s.to_string()).collect(),
            find_links: None,
        },
    };
    let env = Environment {
        name: BASE_ENV.to_owned(),
        source,
    };
    let requirements = requirements_in_dir(code)?;
    let venvs = Venvs::new(cache_dir().join("venvs"));
    let venv = venvs.for_app(&env, requirements.as_deref(), &ConsoleSink)?;
    println!("Using the app environment {}", venv.display());
    Ok(venv)
}

fn run_quiet(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("{what} failed ({}): {last}", out.status);
    }
    Ok(())
}

/// The enclave size for a hardware name such as `4g-eu-001` (MB); 2048 when unknown.
fn size_mb(hardware: &str) -> u64 {
    let digits: String = hardware.chars().take_while(char::is_ascii_digit).collect();
    match (
        digits.parse::<u64>(),
        hardware[digits.len()..].chars().next(),
    ) {
        (Ok(n), Some('g' | 'G')) if n > 0 => n * 1024,
        _ => 2048,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A minimal HTTP/1.1 exchange over TLS (`Connection: close`) with 127.0.0.1:`port`.
struct Reply {
    status: u16,
    mse_status: bool,
    body: String,
}

fn https(
    port: u16,
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Reply> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(SAN)?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {SAN}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    tls.write_all(body)?;
    tls.flush()?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw)
        && (e.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty())
    {
        return Err(e.into());
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("bad HTTP status line")?;
    let mse_status = lines.any(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("mse-status"))
    });
    Ok(Reply {
        status,
        mse_status,
        body: body.to_owned(),
    })
}

pub fn run(args: &LocaltestArgs) -> anyhow::Result<ExitCode> {
    let conf = AppConf::load(&args.path)?;
    for w in &conf.warnings {
        eprintln!("{w}");
    }
    let cloud = conf.cloud()?;
    let enclave_bin = std::env::current_exe()
        .context("cannot locate the mse executable")?
        .with_file_name("mse-enclave");
    if !enclave_bin.is_file() {
        bail!(
            "{} not found: mse-enclave is installed next to mse",
            enclave_bin.display()
        );
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(tokio::signal::ctrl_c());
                    flag.store(true, Ordering::SeqCst);
                }
            })
            .context("cannot watch for Ctrl-C")?;
    }

    // 1. The app's environment: the node's venv builder and pip rules (wheels only), over the
    //    base venv a node's default environment provides (or MSE_LOCALTEST_VENV).
    let venv = app_venv(&cloud.code).context("virtualenv")?;

    // 2. The package, with a fresh key.
    let work = tempfile::Builder::new()
        .prefix("mse-localtest-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let files = crate::package::code_files(&conf)?;
    let key = CodeKey::generate();
    let package = work.path().join("app.tar");
    let mut out = fs::File::create(&package)
        .with_context(|| format!("cannot create {}", package.display()))?;
    crate::package::encrypt_files(&files, &key, None, &mut out)?;
    let secrets = match &cloud.secrets {
        Some(path) => Some(mse_conf::load_secrets(path)?),
        None => None,
    };

    // 3. The simulated platform: a random node secret, its mock PKI and PCCS.
    let seed = *CodeKey::generate().as_bytes();
    let seed_path = work.path().join("sim-seed");
    write_private(&seed_path, hex::encode(seed).as_bytes())?;
    let pki = SimPki::from_seed(&seed).context("cannot build the simulated PKI")?;
    let pccs = MockPccs::start(&pki, &CollateralOptions::default())
        .context("cannot start the mock PCCS")?;

    // 4. The enclave, launched as a node launches it: its launch spec, its inputs.
    let size = size_mb(&cloud.hardware);
    let expiration = time::OffsetDateTime::now_utc().unix_timestamp() + 24 * 3600;
    let log_path = work.path().join("enclave.log");
    let application = conf.python_application.to_string();
    println!("Warning: SIMULATED TEE: the app runs without hardware protection (local test only)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tee = if args.tee == "sim-snp" {
        if !args.vm {
            bail!("--tee sim-snp needs --vm");
        }
        TeeKind::SimSnp
    } else {
        TeeKind::Sim
    };
    // sim-snp: a synthetic AmdSev-layout firmware, only measured (QEMU boots the kernel).
    let firmware = work.path().join("OVMF.amdsev.fd");
    let mut vm_config = None;
    let launcher: Box<dyn Launcher> = if args.vm {
        let image = args
            .vm_image
            .clone()
            .or_else(|| std::env::var_os("MSE_VM_IMAGE").map(PathBuf::from))
            .context("--vm needs the guest image: --vm-image DIR or MSE_VM_IMAGE (make image builds target/image)")?;
        let mut config = mse_launch::vm::VmConfig::new(image);
        if tee == TeeKind::SimSnp {
            fs::write(&firmware, mse_attest_sim::snp::amdsev_firmware())
                .with_context(|| format!("cannot write {}", firmware.display()))?;
            config.firmware = Some(firmware.clone());
            config.snp_measure = Some(Arc::new(mse_attest::vm_identity::snp_boot_digest));
        }
        vm_config = Some(config.clone());
        let launcher = mse_launch::vm::VmLauncher::new(config)?;
        println!(
            "VM: the app runs in a QEMU VM ({})",
            match launcher.accel() {
                mse_launch::vm::qemu::Accel::Kvm => "KVM",
                mse_launch::vm::qemu::Accel::Tcg => "TCG software emulation: slow to boot",
            }
        );
        Box::new(launcher)
    } else {
        let _guard = rt.enter();
        Box::new(ProcessLauncher::new(&enclave_bin))
    };
    let spec = LaunchSpec {
        version: SPEC_VERSION,
        app_id: uuid::Uuid::new_v4().to_string(),
        san: SAN.to_owned(),
        application: application.clone(),
        memory_mb: size,
        vcpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        tee,
        tls: TlsSpec::Expiration(expiration),
        package: PackageRef {
            sha256: mse_launch::process::file_sha256(&package)
                .with_context(|| format!("cannot hash {}", package.display()))?,
            size: fs::metadata(&package)
                .with_context(|| format!("cannot read {}", package.display()))?
                .len(),
        },
        environment_sha256: Digest32(mse_attest::measurement::environment_digest(&venv)?),
        runtime: launcher.runtime()?,
    };
    let id = spec.app_id.clone();
    let inputs = LaunchInputs {
        package: package.clone(),
        environment: venv.clone(),
        owner_certificate: None,
        host: "127.0.0.1".to_owned(),
        port: args.port,
        state_dir: work.path().join("state"),
        sim_seed: Some(seed_path.clone()),
        config_timeout_secs: Some(300),
    };
    let output: Box<dyn Write + Send> = if args.no_tests {
        Box::new(std::io::stderr())
    } else {
        Box::new(
            fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?,
        )
    };
    let sink = Arc::new(EnclaveOutput(std::sync::Mutex::new(output)));
    let instance = rt.block_on(launcher.launch(&spec, &inputs, sink))?;
    let enclave = LaunchedEnclave { rt, instance };
    let app_log = || fs::read_to_string(&log_path).unwrap_or_default();
    let fail = |what: String| -> anyhow::Error {
        let log = app_log();
        if !log.is_empty() {
            eprintln!("--- enclave log ---\n{log}--- end of enclave log ---");
        }
        anyhow::anyhow!(what)
    };

    // 5. Attest it once its configuration server is up: certificate, evidence, collateral from
    //    the mock PCCS, the measurement recomputed from the launch spec.
    let ready_timeout = if args.vm {
        VM_READY_TIMEOUT
    } else {
        READY_TIMEOUT
    };
    let deadline = Instant::now() + ready_timeout;
    enclave.wait_for(
        || {
            let capture = Arc::new(CaptureVerifier::default());
            matches!(https(args.port, capture.clone(), "GET", "/", b""), Ok(r) if r.mse_status)
                && capture.captured().is_some()
        },
        &interrupted,
        deadline,
        fail,
        "before its configuration server was up",
        format!(
            "the configuration server did not answer on port {} within {} s",
            args.port,
            ready_timeout.as_secs()
        ),
    )?;
    // sim-snp: the VM's identity recomputed from the image files, collateral from a mock KDS.
    let vm = match &vm_config {
        Some(config) if tee == TeeKind::SimSnp => {
            let read =
                |p: &Path| fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            let files = crate::vm_expect::ImageFiles {
                manifest: read(&config.image_dir.join("image.json"))?,
                kernel: read(&config.image_dir.join("vmlinuz"))?,
                initrd: read(&config.image_dir.join("initrd.img"))?,
                firmware: Some(read(&firmware)?),
                vcpu_type: Some(config.vcpu_type.clone()),
                tdx: None,
            };
            Some(crate::vm_expect::expect(&spec, &files)?)
        }
        _ => None,
    };
    let kds = match &vm {
        Some(_) => Some(
            mse_attest_sim::MockKds::start(
                &mse_attest_sim::SimAmdPki::from_seed(&seed)
                    .context("cannot build the simulated AMD PKI")?,
            )
            .context("cannot start the mock KDS")?,
        ),
        None => None,
    };
    let expected = match vm.as_ref().map(|v| &v.expected) {
        Some(crate::vm_expect::Expected::Snp(e)) => e.measurement.to_vec(),
        _ => spec.sim_measurement().to_vec(),
    };
    let policy = Policy {
        allow_simulation: true,
        // A VM identity is compared field by field (MEASUREMENT, HOST_DATA) instead.
        expected_measurement: vm.is_none().then(|| expected.clone()),
        ..Policy::default()
    };
    let pccs_url = pccs.url();
    let trust: crate::attest::TrustFor<'_> = Box::new(|evidence: &Evidence| {
        let collateral = match &kds {
            Some(kds) => mse_attest::fetch_snp_collateral_blocking(
                &kds.url(),
                evidence.raw(),
                Some(mse_attest_sim::snp::SIM_SNP_PRODUCT),
            )
            .context("collateral from the mock KDS")?,
            None => mse_attest::fetch_collateral_blocking(&pccs_url, evidence.raw())
                .context("collateral from the mock PCCS")?,
        };
        Ok((anchors_for_collateral(evidence, &collateral), collateral))
    });
    let port_text = format!("from 127.0.0.1:{}", args.port);
    let attested = crate::attest::attest_enclave(
        &crate::attest::Enclave {
            host: "127.0.0.1",
            port: args.port,
            sni: SAN,
            via: &port_text,
            name: "the enclave",
        },
        trust,
        &policy,
        vm.as_ref(),
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )
    .map_err(|e| fail(format!("{e:#}")))?;
    let cert = &attested.examined.cert;
    println!(
        "Verified the enclave (SIMULATED TEE{}): measurement {} matches the local build",
        if vm.is_some() { ", sim-snp" } else { "" },
        hex::encode(&expected)
    );
    let cert_path = work.path().join("cert.pem");
    fs::write(&cert_path, cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;

    // 6. Provision it over the attested channel.
    let pinned = attested.pinned.clone();
    let payload = ConfPayload {
        uuid: id.clone(),
        code_secret_key: Some(zeroize::Zeroizing::new(key.to_hex())),
        app_secrets: secrets.map(serde_json::Value::Object),
        ..ConfPayload::default()
    };
    let body = payload.to_body();
    drop(payload);
    let reply = https(args.port, pinned.clone(), "POST", "/", &body)
        .map_err(|e| fail(format!("sending the configuration: {e}")))?;
    if reply.status != 200 {
        return Err(fail(format!(
            "the enclave refused the configuration ({}): {}",
            reply.status,
            reply.body.trim()
        )));
    }

    // 7. Wait for the app.
    let url = format!("https://{SAN}:{}", args.port);
    enclave.wait_for(
        || {
            matches!(
                https(args.port, pinned.clone(), "GET", &conf.healthcheck_endpoint, b""),
                Ok(r) if r.status != 503 && !r.mse_status
            )
        },
        &interrupted,
        deadline,
        fail,
        "while the app was starting",
        format!(
            "the app's healthcheck {} did not answer within {} s",
            conf.healthcheck_endpoint,
            ready_timeout.as_secs()
        ),
    )?;
    println!(
        "The app is running at {url} (certificate: {})",
        cert_path.display()
    );

    if args.no_tests {
        println!("Streaming its log; Ctrl-C stops it.");
        while enclave.exited().is_none() && !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(ExitCode::SUCCESS);
    }

    // 8. The tests.
    let Some(tests_cmd) = conf.tests_cmd.as_deref() else {
        println!("No tests_cmd in {}: nothing to test.", conf.file.display());
        return Ok(ExitCode::SUCCESS);
    };
    let tests_dir = cloud.tests.clone().unwrap_or_else(|| {
        conf.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    });
    let tests_venv = tests_venv(&conf.tests_requirements)?;
    let path_var = path_with_venv(&tests_venv)?;
    println!("Running `{tests_cmd}` in {}", tests_dir.display());
    let mut tests = Command::new("sh");
    tests
        .args(["-c", tests_cmd])
        .current_dir(&tests_dir)
        .env("PATH", path_var)
        .env("VIRTUAL_ENV", &tests_venv)
        .env("TEST_REMOTE_URL", &url)
        .env("REQUESTS_CA_BUNDLE", &cert_path)
        .env("SSL_CERT_FILE", &cert_path);
    if let Some(secrets) = &cloud.secrets {
        tests.env("TEST_SECRET_JSON", std::path::absolute(secrets)?);
    }
    let status = tests
        .status()
        .with_context(|| format!("cannot run `{tests_cmd}`"))?;
    if !status.success() {
        return Err(fail(format!("the tests failed ({status})")));
    }
    println!("Tests passed.");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_mb("4g-eu-001"), 4096);
        assert_eq!(size_mb("8G"), 8192);
        assert_eq!(size_mb("tiny"), 2048);
    }

    #[test]
    fn venv_cache_reuses_complete_builds_and_redoes_interrupted_ones() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing to install: no pip, no network.
        let dir = cached_venv_in(tmp.path(), "t", &[], &[]).unwrap();
        assert!(dir.join("bin/python").exists());
        assert!(dir.join(".mse-complete").exists());
        fs::write(dir.join("canary"), b"").unwrap();
        assert_eq!(cached_venv_in(tmp.path(), "t", &[], &[]).unwrap(), dir);
        assert!(dir.join("canary").exists(), "a complete venv was rebuilt");
        // An interrupted build (no marker) is thrown away and redone.
        fs::remove_file(dir.join(".mse-complete")).unwrap();
        assert_eq!(cached_venv_in(tmp.path(), "t", &[], &[]).unwrap(), dir);
        assert!(!dir.join("canary").exists());
    }
}
