//! The node's shared state and the spawner: one supervising task per app that builds its venv,
//! starts `mse-enclave`, follows its status with probes, and records how it ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mse_launch::process::{is_enclave_of, signal};
use mse_launch::{
    Digest32, Disposal, Instance, LaunchError, LaunchInputs, LaunchSpec, Launcher, PackageRef,
    ProcessLauncher, SPEC_VERSION, SpecError, TlsSpec,
};
use tokio::sync::watch;

use crate::config::{Environment, NodeConfig, Tier};
use crate::digest::DigestCache;
use crate::logs::AppLog;
use crate::probe::{Probe, probe};
use crate::store::{AppRecord, Status, Store, StoreError, now_ms};
use mse_launch::venv::{VenvError, Venvs, requirements_of};

/// Longest a clean shutdown waits for the enclaves to end (SIGTERM grace plus output drain).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(6);

/// Traffic the router carried for an app.
#[derive(Default)]
pub struct Stats {
    /// Connections open now.
    pub active: AtomicU64,
    /// Connections accepted since the app started.
    pub total: AtomicU64,
    /// Bytes from end users to the enclave.
    pub bytes_in: AtomicU64,
    /// Bytes from the enclave to end users.
    pub bytes_out: AtomicU64,
}

/// Where the router splices a connection whose SNI names an app's domain.
#[derive(Clone)]
pub struct Route {
    /// The app's id.
    pub app_id: String,
    /// The enclave's TLS listener on the host.
    pub addr: SocketAddr,
    /// The app's traffic counters, updated by the router.
    pub stats: Arc<Stats>,
}

/// Why a live app is being brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its owner asked (`DELETE /apps/{id}` or stop).
    User,
    /// Its expiration date passed.
    Expired,
}

/// An app whose supervising task runs in this node process.
pub struct Live {
    /// The app's output log.
    pub log: Arc<AppLog>,
    /// The app's router traffic counters.
    pub stats: Arc<Stats>,
    stop: watch::Sender<Option<StopReason>>,
    /// The running instance, once launched.
    instance: Mutex<Option<Arc<dyn Instance>>>,
    /// The enclave's port once handed out (0 before).
    port: std::sync::atomic::AtomicU16,
}

/// What a deploy asks the spawner to run.
pub struct Launch {
    /// The app's row, as inserted by the deploy (status `spawning`).
    pub app: AppRecord,
    /// The environment its `docker` value named.
    pub env: Environment,
    /// The hardware tier it runs on.
    pub tier: Tier,
    /// `module:variable` of the app object.
    pub python_application: String,
    /// Path probed until the app answers, then it is `running`.
    pub healthcheck: String,
    /// `Some` in owner-certificate mode: the full chain's path.
    pub certificate: Option<PathBuf>,
}

/// The node's state, shared by the API, the router and the app supervisors.
pub struct Node {
    /// node.toml, validated and fitted to the open-files limit.
    pub cfg: NodeConfig,
    /// Projects and apps.
    pub store: Store,
    /// `<data_dir>/sim-seed`, created at first start: the simulated PKIs derive from it.
    pub seed: [u8; 32],
    /// Runtime and environment digests for launch specs.
    pub digests: DigestCache,
    venvs: Arc<Venvs>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    routes: RwLock<HashMap<String, Route>>,
    /// The router's actual address (port 0 in the config resolves at bind time).
    pub router_addr: Mutex<Option<SocketAddr>>,
    /// The API's actual address, likewise.
    pub api_addr: Mutex<Option<SocketAddr>>,
    /// Ports handed to live enclaves.
    ports: Mutex<std::collections::HashSet<u16>>,
    /// What starts enclaves (the process launcher; a VM launcher next).
    launcher: Arc<dyn Launcher>,
    /// Set by [`Node::shutdown`] before it signals the enclaves, so that their supervisors record
    /// "node stopped" rather than the SIGTERM the node itself sent.
    stopping: std::sync::atomic::AtomicBool,
}

/// Why the data dir could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file or directory of the data dir (or the sim seed) cannot be created or read.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The path at fault.
        path: String,
        /// The I/O error, or a sim seed that is not 32 bytes.
        #[source]
        source: std::io::Error,
    },
    /// The store cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an app's venv or launch spec could not be made; its message becomes the app's error.
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("virtualenv task failed: {0}")]
    VenvTask(#[source] tokio::task::JoinError),
    #[error("virtualenv: {0}")]
    Venv(#[source] VenvError),
    #[error("launch spec task failed: {0}")]
    SpecTask(#[source] tokio::task::JoinError),
    #[error("{what} {}: {source}", path.display())]
    Digest {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(LaunchError),
    #[error("environment digest {0:?} is not hex")]
    EnvironmentDigest(String),
    #[error(transparent)]
    Spec(SpecError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the node's sim seed, creating it (32 random bytes, mode 0600) at first start.
pub fn load_or_create_seed(path: &Path) -> Result<[u8; 32], NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Ok(bytes) => {
            return bytes.as_slice().try_into().map_err(|_| NodeError::DataDir {
                path: path.display().to_string(),
                source: std::io::Error::other(format!(
                    "the sim seed must be exactly 32 bytes, found {}",
                    bytes.len()
                )),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(&seed)
        .and_then(|_| file.sync_all())
        .map_err(io_err(path))?;
    Ok(seed)
}

/// Opens the node's store and directories under `cfg.data_dir` (created mode 0700).
pub fn open_data_dir(cfg: &NodeConfig) -> Result<(Store, [u8; 32]), NodeError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &cfg.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("apps"))
        .map_err(io_err(dir))?;
    let store = Store::open(&dir.join("node.db"), crate::limits::quota(cfg))?;
    let seed = load_or_create_seed(&dir.join("sim-seed"))?;
    Ok((store, seed))
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Node {
    /// A node launching `mse-enclave` processes. Must be called inside the tokio runtime the
    /// node runs on.
    pub fn new(cfg: NodeConfig, store: Store, seed: [u8; 32]) -> Arc<Node> {
        let launcher = Arc::new(ProcessLauncher::new(cfg.enclave_bin.clone()));
        Node::with_launcher(cfg, store, seed, launcher)
    }

    /// The launcher node.toml asks for: the process launcher, or the VM launcher (which checks
    /// its image and QEMU, and probes KVM, here).
    pub fn configured_launcher(
        cfg: &NodeConfig,
    ) -> Result<Arc<dyn Launcher>, mse_launch::LaunchError> {
        Ok(match cfg.launcher {
            crate::config::LauncherKind::Process => {
                Arc::new(ProcessLauncher::new(cfg.enclave_bin.clone()))
            }
            crate::config::LauncherKind::Vm => {
                let image_dir = cfg
                    .vm_image
                    .clone()
                    .unwrap_or_else(|| cfg.data_dir.join("image"));
                let mut vm = mse_launch::vm::VmConfig::new(image_dir.clone());
                vm.qemu = cfg.vm.qemu.clone();
                vm.firmware = cfg.vm_firmware.clone();
                vm.vcpu_type = cfg.vm.vcpu_type.clone();
                vm.restrict_net = cfg.vm.restrict;
                vm.snp_measure = Some(Arc::new(mse_attest::vm_identity::snp_boot_digest));
                let launcher = mse_launch::vm::VmLauncher::new(vm)?;
                tracing::info!(
                    "VM launcher: image {}, accelerator {}",
                    image_dir.display(),
                    launcher.accel().as_str()
                );
                Arc::new(launcher)
            }
        })
    }

    /// The digest of what runs every enclave: the `mse-enclave` executable for the process
    /// launcher, the guest image's `image.json` for the VM launcher (the spec's `runtime`).
    /// Blocking: the first call hashes the executable.
    pub fn runtime_digest(&self) -> Result<Digest32, LaunchError> {
        Ok(match self.launcher.runtime()? {
            mse_launch::Runtime::Process { enclave_sha256 } => enclave_sha256,
            mse_launch::Runtime::Vm { image_sha256 } => image_sha256,
        })
    }

    /// A node launching through `launcher`.
    pub fn with_launcher(
        cfg: NodeConfig,
        store: Store,
        seed: [u8; 32],
        launcher: Arc<dyn Launcher>,
    ) -> Arc<Node> {
        let venvs = Arc::new(Venvs::new(cfg.data_dir.join("venvs")));
        Arc::new(Node {
            launcher,
            ports: Mutex::new(std::collections::HashSet::new()),
            cfg,
            store,
            seed,
            digests: DigestCache::default(),
            venvs,
            live: Mutex::new(HashMap::new()),
            routes: RwLock::new(HashMap::new()),
            router_addr: Mutex::new(None),
            api_addr: Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The work dir of app `id`: `enclave.log`, `app.tar` and the sealed `state/`.
    pub fn app_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("apps").join(id)
    }

    /// The app `id` if this process supervises it.
    pub fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Number of apps this process supervises.
    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The route of a host name (an app domain or custom domain), if an app serves it.
    pub fn route(&self, host: &str) -> Option<Route> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    fn set_routes(&self, app: &AppRecord, route: Option<Route>) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let hosts = std::iter::once(&app.domain).chain(app.custom_domain.as_ref());
        for host in hosts {
            match &route {
                Some(r) => {
                    routes.insert(host.clone(), r.clone());
                }
                None => {
                    if routes.get(host).is_some_and(|r| r.app_id == app.id) {
                        routes.remove(host);
                    }
                }
            }
        }
    }

    /// At start: apps the store thinks alive belong to a previous node process. Their enclave
    /// is killed if it still runs (its stdout went to the old process) and they are marked
    /// `on_error` ("node restarted").
    pub fn recover(&self) -> Result<usize, StoreError> {
        let apps = self.store.live_apps()?;
        for app in &apps {
            if let Some(pid) = app.pid
                && is_enclave_of(pid, &app.id)
            {
                signal(pid, rustix::process::Signal::KILL);
            }
            self.store
                .set_status(&app.id, Status::OnError, Some("node restarted"))?;
            if let Ok(log) = AppLog::open(&self.app_dir(&app.id).join("enclave.log")) {
                log.note("node restarted: app marked on_error");
            }
        }
        Ok(apps.len())
    }

    /// On a clean node shutdown: every live app's enclave is stopped (SIGTERM, then SIGKILL),
    /// its storage kept, and the app recorded `on_error` ("node stopped"). Resolves once they
    /// ended, or after `SHUTDOWN_WAIT`.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let live: Vec<(String, Arc<Live>)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, l)| (id.clone(), l.clone()))
            .collect();
        let mut stops = tokio::task::JoinSet::new();
        for (id, l) in live {
            let instance = l.instance.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(instance) = instance {
                stops.spawn(async move {
                    instance.stop(Disposal::Keep).await;
                });
            }
            l.log.note("node stopped: app marked on_error");
            if let Err(e) = self
                .store
                .set_status(&id, Status::OnError, Some("node stopped"))
            {
                tracing::error!(app = %id, "cannot record the node's stop: {e}");
            }
        }
        let all = async { while stops.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, all).await;
    }

    /// Starts the supervising task of a freshly inserted app.
    pub fn start(self: &Arc<Self>, launch: Launch) -> Result<(), std::io::Error> {
        let dir = self.app_dir(&launch.app.id);
        let log = Arc::new(AppLog::open(&dir.join("enclave.log"))?);
        let (stop, stop_rx) = watch::channel(None);
        let live = Arc::new(Live {
            log,
            stats: Arc::new(Stats::default()),
            stop,
            instance: Mutex::new(None),
            port: std::sync::atomic::AtomicU16::new(0),
        });
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(launch.app.id.clone(), live.clone());
        let node = self.clone();
        tokio::spawn(async move {
            let id = launch.app.id.clone();
            let (status, reason) = node.supervise(&launch, &live, stop_rx).await;
            node.set_routes(&launch.app, None);
            let port = live.port.load(Ordering::Relaxed);
            if port != 0 {
                node.ports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&port);
            }
            // Wiped before the status says stopped, so `stopped` means the storage is gone.
            if status == Status::Stopped {
                node.wipe(&id);
            } else {
                // A failed app keeps its log and sealed state, not its package: it will not
                // run again, and it no longer counts against its project's quota.
                let _ = std::fs::remove_file(node.app_dir(&id).join("app.tar"));
            }
            live.log
                .note(&format!("status {}: {reason}", status.as_str()));
            if let Err(e) = node.store.set_status(&id, status, Some(&reason)) {
                tracing::error!(app = %id, "cannot record the end of the app: {e}");
            }
            node.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            tracing::info!(app = %id, status = status.as_str(), "{reason}");
        });
        Ok(())
    }

    /// Asks a live app to stop; returns false if it is not alive in this process.
    pub fn request_stop(&self, id: &str, reason: StopReason) -> bool {
        match self.live(id) {
            Some(live) => {
                live.stop.send_replace(Some(reason));
                true
            }
            None => false,
        }
    }

    /// Erases an app's sealed storage and its package (the log stays).
    pub fn wipe(&self, id: &str) {
        let dir = self.app_dir(id);
        for path in [dir.join("state"), dir.join("app.tar")] {
            let r = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = r
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(app = %id, "cannot wipe {}: {e}", path.display());
            }
        }
    }

    async fn prepare_venv(
        &self,
        launch: &Launch,
        log: &Arc<AppLog>,
    ) -> Result<PathBuf, PrepareError> {
        let package = self.app_dir(&launch.app.id).join("app.tar");
        let venvs = self.venvs.clone();
        let env = launch.env.clone();
        let log = log.clone();
        tokio::task::spawn_blocking(move || {
            let req = requirements_of(&package)?;
            venvs.for_app(&env, req.as_deref(), log.as_ref())
        })
        .await
        .map_err(PrepareError::VenvTask)?
        .map_err(PrepareError::Venv)
    }

    /// A port free now and not handed to another live enclave (which may not have bound it
    /// yet: the kernel can offer the same free port twice).
    fn free_port(&self) -> std::io::Result<u16> {
        let mut handed = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..32 {
            let port = free_port()?;
            if handed.insert(port) {
                return Ok(port);
            }
        }
        Err(std::io::Error::other(
            "every port offered was already handed out",
        ))
    }

    async fn supervise(
        self: &Arc<Self>,
        launch: &Launch,
        live: &Arc<Live>,
        mut stop_rx: watch::Receiver<Option<StopReason>>,
    ) -> (Status, String) {
        let app = &launch.app;
        let log = &live.log;
        let venv = match self.prepare_venv(launch, log).await {
            Ok(v) => v,
            Err(e) => return (Status::OnError, e.to_string()),
        };
        let digest = {
            let (node, venv) = (self.clone(), venv.clone());
            tokio::task::spawn_blocking(move || node.digests.environment(&venv))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        // The lock of an environment packed from wheels is published with its digest, as the
        // environment's recipe; a pre-built venv has none.
        let lock_path = venv.join(mse_launch::envlock::LOCK_FILE);
        let lock = match std::fs::read_to_string(&lock_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return (Status::OnError, format!("{}: {e}", lock_path.display())),
        };
        let environment = match digest {
            Ok(d) => {
                if let Err(e) = self.store.set_environment(&app.id, &d, lock.as_deref()) {
                    return (
                        Status::OnError,
                        format!("cannot record the environment digest: {e}"),
                    );
                }
                d
            }
            Err(e) => {
                return (
                    Status::OnError,
                    format!("environment digest of {}: {e}", venv.display()),
                );
            }
        };
        if let Some(reason) = *stop_rx.borrow() {
            return stopped(reason);
        }
        let port = match self.free_port() {
            Ok(p) => p,
            Err(e) => return (Status::OnError, format!("no free port: {e}")),
        };
        live.port.store(port, Ordering::Relaxed);
        let spec = match self.spec_of(launch, &environment).await {
            Ok(s) => s,
            Err(e) => return (Status::OnError, e.to_string()),
        };
        if let Err(e) = self.store.set_launch_spec(&app.id, &spec) {
            return (
                Status::OnError,
                format!("cannot record the launch spec: {e}"),
            );
        }
        let dir = self.app_dir(&app.id);
        let inputs = LaunchInputs {
            package: dir.join("app.tar"),
            environment: venv,
            owner_certificate: launch.certificate.clone(),
            host: "127.0.0.1".to_owned(),
            port,
            state_dir: dir.join("state"),
            sim_seed: spec
                .tee
                .is_simulated()
                .then(|| self.cfg.data_dir.join("sim-seed")),
            config_timeout_secs: None,
        };
        let instance = match self.launcher.launch(&spec, &inputs, log.clone()).await {
            Ok(i) => i,
            Err(e) => return (Status::OnError, e.to_string()),
        };
        *live.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(instance.clone());
        let pid = instance.pid().unwrap_or(0);
        log.note(&format!("enclave started (pid {pid}, port {port})"));
        if let Err(e) = self.store.set_process(&app.id, port, pid) {
            tracing::error!(app = %app.id, "cannot record the enclave's pid: {e}");
        }
        let addr = instance.addr();
        self.set_routes(
            app,
            Some(Route {
                app_id: app.id.clone(),
                addr,
                stats: live.stats.clone(),
            }),
        );
        self.follow(launch, live, instance.as_ref(), &mut stop_rx, addr)
            .await
    }

    /// The app's launch spec: what the node was asked for, plus the digests of what it attaches
    /// (package, owner certificate, venv) and of the launcher's runtime.
    async fn spec_of(
        &self,
        launch: &Launch,
        environment: &str,
    ) -> Result<LaunchSpec, PrepareError> {
        let app = &launch.app;
        let package = self.app_dir(&app.id).join("app.tar");
        let certificate = launch.certificate.clone();
        let launcher = self.launcher.clone();
        let (package_ref, tls, runtime) = tokio::task::spawn_blocking(move || {
            let digest_err = |what, path: &Path| {
                let path = path.to_owned();
                move |source| PrepareError::Digest { what, path, source }
            };
            let size = std::fs::metadata(&package)
                .map_err(digest_err("package", &package))?
                .len();
            let sha256 = mse_launch::process::file_sha256(&package)
                .map_err(digest_err("package", &package))?;
            let tls = match &certificate {
                Some(c) => Some(
                    mse_launch::process::file_sha256(c).map_err(digest_err("certificate", c))?,
                ),
                None => None,
            };
            let runtime = launcher.runtime().map_err(PrepareError::Runtime)?;
            Ok::<_, PrepareError>((PackageRef { sha256, size }, tls, runtime))
        })
        .await
        .map_err(PrepareError::SpecTask)??;
        let environment_sha256 = Digest32::from_hex(environment)
            .ok_or_else(|| PrepareError::EnvironmentDigest(environment.to_owned()))?;
        let spec = LaunchSpec {
            version: SPEC_VERSION,
            app_id: app.id.clone(),
            san: app.domain.clone(),
            application: launch.python_application.clone(),
            memory_mb: launch.tier.enclave_size,
            vcpus: launch.tier.cores,
            tee: self.cfg.tee,
            tls: match tls {
                Some(h) => TlsSpec::OwnerCertificateSha256(h),
                None => TlsSpec::Expiration(app.expires_at / 1000),
            },
            package: package_ref,
            environment_sha256,
            runtime,
        };
        spec.validate().map_err(PrepareError::Spec)?;
        Ok(spec)
    }

    async fn follow(
        &self,
        launch: &Launch,
        live: &Arc<Live>,
        instance: &dyn Instance,
        stop_rx: &mut watch::Receiver<Option<StopReason>>,
        addr: SocketAddr,
    ) -> (Status, String) {
        let app = &launch.app;
        let mut status = Status::Spawning;
        let started = tokio::time::Instant::now();
        let spawn_deadline = started + Duration::from_secs(self.cfg.spawn_timeout_secs);
        // Timers are re-armed at most a day ahead: an owner certificate may be valid for years.
        let until_expiry =
            || Duration::from_millis((app.expires_at - now_ms()).clamp(0, 86_400_000) as u64);
        let expiry = tokio::time::sleep(until_expiry());
        tokio::pin!(expiry);
        let exited = instance.wait();
        tokio::pin!(exited);
        loop {
            let interval = match status {
                Status::Spawning => Duration::from_millis(50),
                _ => Duration::from_millis(250),
            };
            tokio::select! {
                exit = &mut exited => {
                    if self.stopping.load(Ordering::SeqCst) {
                        return (Status::OnError, "node stopped".to_owned());
                    }
                    return (Status::OnError, exit.to_string());
                }
                _ = stop_rx.changed() => {
                    let reason = (*stop_rx.borrow()).unwrap_or(StopReason::User);
                    instance.stop(Disposal::Delete).await;
                    return stopped(reason);
                }
                _ = &mut expiry => {
                    if now_ms() < app.expires_at {
                        expiry.as_mut().reset(tokio::time::Instant::now() + until_expiry());
                        continue;
                    }
                    instance.stop(Disposal::Delete).await;
                    return stopped(StopReason::Expired);
                }
                _ = tokio::time::sleep(interval), if status != Status::Running => {
                    let next = match status {
                        Status::Spawning => match probe(addr, &app.domain, "/", Duration::from_secs(2)).await {
                            Probe::Waiting => Some(Status::Initializing),
                            // An app already provisioned (restart with sealed state) answers directly.
                            Probe::App(code) if code != 503 => Some(Status::Running),
                            _ => None,
                        },
                        _ => match probe(addr, &app.domain, &launch.healthcheck, Duration::from_secs(2)).await {
                            Probe::App(code) if code != 503 => Some(Status::Running),
                            _ => None,
                        },
                    };
                    if let Some(next) = next {
                        status = next;
                        live.log.note(&format!("status {}", next.as_str()));
                        if let Err(e) = self.store.set_status(&app.id, next, None) {
                            tracing::error!(app = %app.id, "cannot record status: {e}");
                        }
                        tracing::info!(app = %app.id, "status {}", next.as_str());
                    } else if status == Status::Spawning && tokio::time::Instant::now() > spawn_deadline {
                        instance.stop(Disposal::Keep).await;
                        return (Status::OnError, format!(
                            "the enclave did not start its configuration server within {} s",
                            self.cfg.spawn_timeout_secs
                        ));
                    }
                }
            }
        }
    }

    /// Metrics of a live app, in the original API's `[timestamp, value]` shape.
    pub fn metrics(&self, app: &AppRecord) -> serde_json::Value {
        let ts = now_ms() / 1000;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_owned(), serde_json::json!([ts, v]));
        };
        if let Some(live) = self.live(&app.id) {
            let s = &live.stats;
            put(
                "amount_of_connection",
                s.active.load(Ordering::Relaxed).into(),
            );
            put("total_connections", s.total.load(Ordering::Relaxed).into());
            put("throughput_in", s.bytes_in.load(Ordering::Relaxed).into());
            put("throughput_out", s.bytes_out.load(Ordering::Relaxed).into());
            let instance = live
                .instance
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(instance) = instance {
                let m = instance.metrics();
                if let Some(cpu) = m.cpu_seconds {
                    put("cpu_time", cpu.into());
                }
                if let Some(rss) = m.memory_bytes {
                    put("memory_usage", rss.into());
                }
            }
        }
        put(
            "fs_usage",
            dir_size(&self.app_dir(&app.id).join("state")).into(),
        );
        serde_json::Value::Object(m)
    }
}

fn stopped(reason: StopReason) -> (Status, String) {
    match reason {
        StopReason::User => (Status::Stopped, "stopped by its owner".to_owned()),
        StopReason::Expired => (Status::Stopped, "expired".to_owned()),
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(path) else {
        return 0;
    };
    dir.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
