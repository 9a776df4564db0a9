//! The VM launcher: one QEMU per app, booted from the guest image, its inputs attached as
//! read-only disks that the guest checks against the spec whose hash is on its kernel command
//! line ([`abi`]). KVM is used when it works (probed once), QEMU's emulation (TCG) otherwise;
//! the app's log says which. The serial console is the app's output; a QEMU that ends by
//! itself (guest refused to start, crash, `kill -9`) ends the instance with its exit.

pub mod abi;
pub mod disks;
pub mod envtar;
pub mod image;
pub mod qemu;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mse_attest::vm_identity::BootDigestError;
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

use crate::{
    BoxFuture, Disposal, Exit, Instance, LaunchError, LaunchInputs, LaunchSpec, Launcher, Metrics,
    OutputSink, Runtime, TeeKind,
};
use abi::{SimDisk, SimSnp};
pub use image::GuestImage;
use qemu::{Accel, QemuArgs, QemuVersion, TeeArgs};

/// How long a stopped QEMU gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What computes the SEV-SNP launch digest of a boot (for `sim-snp`, whose simulated firmware
/// inside the guest reports it as MEASUREMENT), from (the firmware the node publishes, the
/// image's kernel, its initrd, the kernel command line with `mse.spec=`, vCPUs, vCPU model).
/// Wired by the node and `mse localtest` to `mse_attest::vm_identity::snp_boot_digest`.
pub type SnpMeasure = Arc<
    dyn Fn(&Path, &Path, &Path, &str, u32, &str) -> Result<[u8; 48], BootDigestError> + Send + Sync,
>;

/// The VM launcher's settings (node.toml's `[vm]`).
#[derive(Clone)]
pub struct VmConfig {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The guest image directory.
    pub image_dir: PathBuf,
    /// The operator's firmware (SEV-SNP: an OVMF AmdSev build; TDX: a TDVF), if any.
    pub firmware: Option<PathBuf>,
    /// vCPU model of SEV-SNP guests.
    pub vcpu_type: String,
    /// No outbound network for guests.
    pub restrict_net: bool,
    /// `mkfs.ext4` (formats the `$HOME` disk).
    pub mkfs_ext4: PathBuf,
    /// Force an accelerator instead of probing (tests).
    pub accel: Option<Accel>,
    /// `sim-snp`: the launch digest computation.
    pub snp_measure: Option<SnpMeasure>,
}

impl std::fmt::Debug for VmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmConfig")
            .field("qemu", &self.qemu)
            .field("image_dir", &self.image_dir)
            .field("firmware", &self.firmware)
            .field("restrict_net", &self.restrict_net)
            .finish_non_exhaustive()
    }
}

impl VmConfig {
    /// Defaults: `qemu-system-x86_64` and `mkfs.ext4` from the PATH (or /usr/sbin), EPYC-v4.
    pub fn new(image_dir: PathBuf) -> VmConfig {
        VmConfig {
            qemu: PathBuf::from("qemu-system-x86_64"),
            image_dir,
            firmware: None,
            vcpu_type: "EPYC-v4".into(),
            restrict_net: false,
            mkfs_ext4: find_program("mkfs.ext4"),
            accel: None,
            snp_measure: None,
        }
    }
}

/// `name` on the PATH, else in /usr/sbin or /sbin (not on a normal user's PATH).
fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `qemu --version`.
fn qemu_version(qemu: &Path) -> Result<QemuVersion, LaunchError> {
    let mut cmd = std::process::Command::new(qemu);
    cmd.arg("--version").stdin(Stdio::null());
    // Waited for here: dies with this process even if it is killed meanwhile.
    crate::spawner::die_with_this_process(&mut cmd);
    let out = cmd.output().map_err(|source| LaunchError::Io {
        what: format!("cannot run {} --version", qemu.display()),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    qemu::parse_version(&text).ok_or_else(|| {
        LaunchError::Other(format!(
            "{} --version: cannot read a version in {:?}",
            qemu.display(),
            text.lines().next().unwrap_or_default()
        ))
    })
}

/// Why [`probe_kvm`] found KVM unusable.
#[derive(Debug, thiserror::Error)]
pub enum KvmProbeError {
    /// `/dev/kvm` cannot be opened read-write.
    #[error("/dev/kvm: {0}")]
    DevKvm(#[source] std::io::Error),
    /// QEMU cannot be started.
    #[error("cannot run {}: {source}", qemu.display())]
    Spawn {
        /// The QEMU binary.
        qemu: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// QEMU ended early without saying why.
    #[error("QEMU cannot run a KVM vCPU ({0})")]
    Exited(std::process::ExitStatus),
    /// QEMU ended early with this first line on stderr.
    #[error("QEMU cannot run a KVM vCPU: {0}")]
    Refused(String),
    /// QEMU's status cannot be read.
    #[error("{}: {source}", qemu.display())]
    Wait {
        /// The QEMU binary.
        qemu: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Whether KVM works: QEMU boots the same kind of machine and vCPU the launcher uses (no disk:
/// the firmware just waits) and must still be running after [`KVM_PROBE_TIME`]; the reason if
/// not. Opening `/dev/kvm` is not enough: on some hosts it opens but QEMU aborts when it sets the
/// vCPU's registers up.
pub fn probe_kvm(qemu: &Path) -> Result<(), KvmProbeError> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Err(KvmProbeError::DevKvm(e));
    }
    let mut cmd = std::process::Command::new(qemu);
    // Waited for (and killed) here: dies with this process even if it is killed meanwhile.
    crate::spawner::die_with_this_process(&mut cmd);
    let mut child = cmd
        .args([
            "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "32",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KvmProbeError::Spawn {
            qemu: qemu.to_owned(),
            source,
        })?;
    let started = std::time::Instant::now();
    while started.elapsed() < KVM_PROBE_TIME {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut err);
                }
                let first = err
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("qemu-system-x86_64: ")
                    .to_owned();
                return Err(if first.is_empty() {
                    KvmProbeError::Exited(status)
                } else {
                    KvmProbeError::Refused(first)
                });
            }
            Err(source) => {
                return Err(KvmProbeError::Wait {
                    qemu: qemu.to_owned(),
                    source,
                });
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// How long the KVM probe's QEMU must survive.
pub const KVM_PROBE_TIME: Duration = Duration::from_millis(1500);

/// The VM launcher.
pub struct VmLauncher {
    config: VmConfig,
    image: GuestImage,
    version: QemuVersion,
    accel: Accel,
    /// Why TCG (when it is).
    accel_note: String,
}

impl std::fmt::Debug for VmLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmLauncher")
            .field("config", &self.config)
            .field("version", &self.version)
            .field("accel", &self.accel)
            .finish_non_exhaustive()
    }
}

impl VmLauncher {
    /// Opens the image, checks QEMU (at least 10.0) and probes KVM.
    pub fn new(config: VmConfig) -> Result<VmLauncher, LaunchError> {
        let image =
            GuestImage::open(&config.image_dir).map_err(|e| LaunchError::Other(e.to_string()))?;
        let version = qemu_version(&config.qemu)?;
        qemu::check_version(version, TeeKind::Sim, &config.qemu)?;
        let (accel, accel_note) = match config.accel {
            Some(a) => (a, "forced by configuration".to_string()),
            None => match probe_kvm(&config.qemu) {
                Ok(()) => (Accel::Kvm, "/dev/kvm works".to_string()),
                Err(why) => (Accel::Tcg, format!("KVM unusable: {why}")),
            },
        };
        Ok(VmLauncher {
            config,
            image,
            version,
            accel,
            accel_note,
        })
    }

    /// The accelerator in use.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The guest image.
    pub fn image(&self) -> &GuestImage {
        &self.image
    }

    /// The QEMU argument vector for `spec` (after checks), without the program.
    pub fn qemu_args(
        &self,
        spec: &LaunchSpec,
        inputs: &LaunchInputs,
        disks: Vec<qemu::DiskArg>,
    ) -> Result<QemuArgs, LaunchError> {
        let tee = match spec.tee {
            TeeKind::Sim | TeeKind::SimSnp => TeeArgs::None,
            TeeKind::SevSnp | TeeKind::Tdx => {
                if self.accel != Accel::Kvm {
                    return Err(LaunchError::Other(format!(
                        "TEE {} needs KVM on an {} host ({})",
                        spec.tee,
                        if spec.tee == TeeKind::Tdx {
                            "Intel TDX"
                        } else {
                            "AMD SEV-SNP"
                        },
                        self.accel_note
                    )));
                }
                let firmware = self.config.firmware.clone().ok_or_else(|| {
                    LaunchError::Other(format!(
                        "TEE {} needs the operator's firmware file ([vm] firmware in node.toml)",
                        spec.tee
                    ))
                })?;
                if spec.tee == TeeKind::Tdx {
                    TeeArgs::Tdx { firmware }
                } else {
                    TeeArgs::SevSnp {
                        firmware,
                        vcpu_type: self.config.vcpu_type.clone(),
                    }
                }
            }
            TeeKind::GramineSgx => {
                return Err(LaunchError::Unsupported {
                    launcher: "vm",
                    tee: spec.tee,
                });
            }
        };
        let spec_hash = spec.hash();
        Ok(QemuArgs {
            name: format!("mse-{}", spec.app_id),
            accel: self.accel,
            memory_mb: spec.memory_mb,
            vcpus: spec.vcpus,
            kernel: self.image.kernel.clone(),
            initrd: self.image.initrd.clone(),
            append: self.image.cmdline(&spec_hash),
            disks,
            host_addr: inputs.host.clone(),
            host_port: inputs.port,
            guest_port: crate::vm::GUEST_PORT,
            restrict_net: self.config.restrict_net,
            tee,
            spec_hash,
        })
    }

    fn sim_disk(
        &self,
        spec: &LaunchSpec,
        inputs: &LaunchInputs,
    ) -> Result<Option<SimDisk>, LaunchError> {
        if !spec.tee.is_simulated() {
            return Ok(None);
        }
        let seed = inputs.sim_seed.as_ref().ok_or_else(|| {
            LaunchError::Other(format!("TEE {} needs the node's sim seed", spec.tee))
        })?;
        let snp = if spec.tee == TeeKind::SimSnp {
            let measure = self.config.snp_measure.as_ref().ok_or_else(|| {
                LaunchError::Other("sim-snp: no SNP launch digest computation is wired".into())
            })?;
            let firmware = self.config.firmware.as_ref().ok_or_else(|| {
                LaunchError::Other(
                    "sim-snp needs the firmware the node publishes ([vm] firmware)".into(),
                )
            })?;
            let append = self.image.cmdline(&spec.hash());
            let digest = measure(
                firmware,
                &self.image.kernel,
                &self.image.initrd,
                &append,
                spec.vcpus,
                &self.config.vcpu_type,
            )
            .map_err(|e| LaunchError::Other(format!("sim-snp launch digest: {e}")))?;
            Some(SimSnp {
                measurement: hex::encode(digest),
                host_data: spec.hash(),
            })
        } else {
            None
        };
        Ok(Some(SimDisk {
            version: 1,
            sim_seed: disks::seed_hex(seed)?,
            snp,
        }))
    }
}

/// The guest's port (configuration server, then the app).
pub const GUEST_PORT: u16 = 443;

impl Launcher for VmLauncher {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn supports(&self, tee: TeeKind) -> bool {
        !matches!(tee, TeeKind::GramineSgx)
    }

    fn runtime(&self) -> Result<Runtime, LaunchError> {
        Ok(Runtime::Vm {
            image_sha256: self.image.image_sha256,
        })
    }

    fn launch<'a>(
        &'a self,
        spec: &'a LaunchSpec,
        inputs: &'a LaunchInputs,
        sink: Arc<dyn OutputSink>,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, LaunchError>> {
        Box::pin(async move {
            let ours = self.runtime()?;
            if spec.runtime != ours {
                return Err(LaunchError::RuntimeMismatch {
                    launcher: "vm",
                    ours,
                    theirs: spec.runtime,
                });
            }
            if !self.supports(spec.tee) {
                return Err(LaunchError::Unsupported {
                    launcher: "vm",
                    tee: spec.tee,
                });
            }
            qemu::check_version(self.version, spec.tee, &self.config.qemu)?;
            let sim = self.sim_disk(spec, inputs)?;
            let (spec2, inputs2, mkfs) =
                (spec.clone(), inputs.clone(), self.config.mkfs_ext4.clone());
            let disks = tokio::task::spawn_blocking(move || {
                disks::build(&spec2, &inputs2, sim.as_ref(), &mkfs)
            })
            .await
            .map_err(|e| LaunchError::Other(format!("building the disks: {e}")))??;
            let args = self.qemu_args(spec, inputs, disks)?;
            sink.note(&format!(
                "VM: QEMU {} with {} ({}), {} MB, {} vCPU(s), TEE {}, spec {}",
                self.version,
                match self.accel {
                    Accel::Kvm => "KVM",
                    Accel::Tcg => "TCG software emulation",
                },
                self.accel_note,
                spec.memory_mb,
                spec.vcpus,
                spec.tee,
                spec.hash()
            ));
            let addr = (inputs.host.as_str(), inputs.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    LaunchError::Other(format!("{}:{} is not an address", inputs.host, inputs.port))
                })?;
            let mut qemu = tokio::process::Command::new(&self.config.qemu);
            qemu.args(args.to_args())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            // Through the shared spawner: the guest is SIGKILLed when the launcher's process dies.
            let mut child =
                crate::spawner::spawn(qemu)
                    .await
                    .map_err(|source| LaunchError::Io {
                        what: format!("cannot start {}", self.config.qemu.display()),
                        source,
                    })?;
            let pid = child.id();
            let (tx, rx) = watch::channel(None);
            let state = Arc::new(VmState {
                pid,
                addr,
                exit: rx,
                stopping: Mutex::new(false),
                state_dir: inputs.state_dir.clone(),
            });
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            let sink2 = sink.clone();
            let state2 = state.clone();
            tokio::spawn(async move {
                // Output is read while QEMU runs (a full pipe would stall the guest's console)
                // and drained before the exit is reported.
                let (status, (), ()) = tokio::join!(
                    child.wait(),
                    pump(stdout, sink2.clone()),
                    pump(stderr, sink2.clone())
                );
                let exit = match status {
                    Ok(s) => {
                        use std::os::unix::process::ExitStatusExt as _;
                        match (s.code(), s.signal()) {
                            (Some(c), _) => Exit::Code(c),
                            (None, Some(sig)) => Exit::Signal(sig),
                            _ => Exit::Lost("unknown exit status".into()),
                        }
                    }
                    Err(e) => Exit::Lost(e.to_string()),
                };
                let stopping = *state2.stopping.lock().unwrap_or_else(|p| p.into_inner());
                let exit = if stopping { Exit::Stopped } else { exit };
                if !stopping {
                    sink2.note(&format!("VM ended: QEMU {}", describe(&exit)));
                }
                let _ = tx.send(Some(exit));
            });
            Ok(Arc::new(VmInstance { state }) as Arc<dyn Instance>)
        })
    }
}

fn describe(exit: &Exit) -> String {
    match exit {
        Exit::Code(0) => "exited (the guest powered off)".into(),
        Exit::Code(c) => format!("exited with code {c}"),
        Exit::Signal(s) => format!("killed by signal {s}"),
        Exit::Stopped => "stopped".into(),
        Exit::Lost(e) => format!("lost: {e}"),
    }
}

/// Copies a pipe into the sink until it closes.
async fn pump<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>, sink: Arc<dyn OutputSink>) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => sink.output(&buf[..n]),
        }
    }
}

struct VmState {
    pid: Option<u32>,
    addr: SocketAddr,
    exit: watch::Receiver<Option<Exit>>,
    stopping: Mutex<bool>,
    state_dir: PathBuf,
}

/// One running VM.
pub struct VmInstance {
    state: Arc<VmState>,
}

impl VmInstance {
    async fn wait_exit(&self) -> Exit {
        let mut rx = self.state.exit.clone();
        loop {
            if let Some(exit) = rx.borrow_and_update().clone() {
                return exit;
            }
            if rx.changed().await.is_err() {
                return rx
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| Exit::Lost("the VM's supervisor ended".into()));
            }
        }
    }

    fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = self
            .state
            .pid
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

impl Instance for VmInstance {
    fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    fn pid(&self) -> Option<u32> {
        self.state.pid
    }

    fn wait(&self) -> BoxFuture<'_, Exit> {
        Box::pin(self.wait_exit())
    }

    fn stop(&self, disposal: Disposal) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            let running = self.state.exit.borrow().is_none();
            if running {
                *self
                    .state
                    .stopping
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = true;
                self.signal(rustix::process::Signal::TERM);
                if tokio::time::timeout(STOP_GRACE, self.wait_exit())
                    .await
                    .is_err()
                {
                    self.signal(rustix::process::Signal::KILL);
                }
            }
            let exit = self.wait_exit().await;
            let disks = self.state.state_dir.join(disks::DISK_DIR);
            let _ = std::fs::remove_dir_all(&disks);
            if disposal == Disposal::Delete {
                let _ = std::fs::remove_dir_all(&self.state.state_dir);
            }
            exit
        })
    }

    fn metrics(&self) -> Metrics {
        let Some(pid) = self.state.pid else {
            return Metrics::default();
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
        let cpu_seconds = match (ticks(11), ticks(12)) {
            (Some(u), Some(s)) => Some((u + s) / 100.0),
            _ => None,
        };
        let memory_bytes = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * 4096);
        Metrics {
            cpu_seconds,
            memory_bytes,
        }
    }
}
