//! The node's shared state and the spawner: one supervising task per app that builds its venv,
//! starts `mse-enclave`, follows its status with probes, and records how it ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::{Environment, NodeConfig, Tier};
use crate::digest::DigestCache;
use crate::logs::AppLog;
use crate::probe::{Probe, probe};
use crate::store::{AppRecord, Status, Store, StoreError, now_ms};
use mse_launch::venv::{Venvs, requirements_of};

/// Traffic the router carried for an app.
#[derive(Default)]
pub struct Stats {
    pub active: AtomicU64,
    pub total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

#[derive(Clone)]
pub struct Route {
    pub app_id: String,
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

/// Why a live app is being brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    User,
    Expired,
}

/// An app whose supervising task runs in this node process.
pub struct Live {
    pub log: Arc<AppLog>,
    pub stats: Arc<Stats>,
    stop: watch::Sender<Option<StopReason>>,
    pub pid: AtomicU64,
    /// The enclave's port once handed out (0 before).
    port: std::sync::atomic::AtomicU16,
}

/// What a deploy asks the spawner to run.
pub struct Launch {
    pub app: AppRecord,
    pub env: Environment,
    pub tier: Tier,
    pub python_application: String,
    pub healthcheck: String,
    /// `Some` in owner-certificate mode: the full chain's path.
    pub certificate: Option<PathBuf>,
}

pub struct Node {
    pub cfg: NodeConfig,
    pub store: Store,
    pub seed: [u8; 32],
    pub digests: DigestCache,
    venvs: Arc<Venvs>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    routes: RwLock<HashMap<String, Route>>,
    /// The router's actual address (port 0 in the config resolves at bind time).
    pub router_addr: Mutex<Option<SocketAddr>>,
    pub api_addr: Mutex<Option<SocketAddr>>,
    /// Ports handed to live enclaves.
    ports: Mutex<std::collections::HashSet<u16>>,
    /// Requests to the spawner thread (see [`spawner_thread`]).
    spawn_tx: Mutex<std::sync::mpsc::Sender<SpawnRequest>>,
    /// Round-robin start for CPU pinning, so apps spread over the node's CPUs.
    next_cpu: std::sync::atomic::AtomicUsize,
    /// Set by [`Node::shutdown`] before it signals the enclaves, so that their supervisors record
    /// "node stopped" rather than the SIGTERM the node itself sent.
    stopping: std::sync::atomic::AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
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
    let store = Store::open(&dir.join("node.db"))?;
    let seed = load_or_create_seed(&dir.join("sim-seed"))?;
    Ok((store, seed))
}

fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("enclave exited with code {code}"),
        (None, Some(sig)) => format!("enclave killed by signal {sig}"),
        _ => format!("enclave ended: {status}"),
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Whether process `pid` is alive and its command line names `app_id` (so a recycled pid of
/// some other process is never touched).
fn is_our_enclave(pid: u32, app_id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|&b| b == 0).any(|arg| arg == app_id.as_bytes()))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

impl Node {
    /// Must be called inside the tokio runtime the node runs on.
    pub fn new(cfg: NodeConfig, store: Store, seed: [u8; 32]) -> Arc<Node> {
        let venvs = Arc::new(Venvs::new(cfg.data_dir.join("venvs")));
        let spawn_tx = spawner_thread(tokio::runtime::Handle::current());
        Arc::new(Node {
            spawn_tx: Mutex::new(spawn_tx),
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
            next_cpu: std::sync::atomic::AtomicUsize::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn app_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("apps").join(id)
    }

    pub fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

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
                && is_our_enclave(pid, &app.id)
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

    /// On a clean node shutdown: every live app's enclave gets SIGTERM and the app is recorded
    /// `on_error` ("node stopped"), its storage kept.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let live: Vec<(String, Arc<Live>)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, l)| (id.clone(), l.clone()))
            .collect();
        for (id, l) in live {
            let pid = l.pid.load(Ordering::Relaxed) as u32;
            if pid != 0 && is_our_enclave(pid, &id) {
                signal(pid, rustix::process::Signal::TERM);
            }
            l.log.note("node stopped: app marked on_error");
            if let Err(e) = self
                .store
                .set_status(&id, Status::OnError, Some("node stopped"))
            {
                tracing::error!(app = %id, "cannot record the node's stop: {e}");
            }
        }
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
            pid: AtomicU64::new(0),
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

    async fn prepare_venv(&self, launch: &Launch, log: &Arc<AppLog>) -> Result<PathBuf, String> {
        let package = self.app_dir(&launch.app.id).join("app.tar");
        let venvs = self.venvs.clone();
        let env = launch.env.clone();
        let log = log.clone();
        tokio::task::spawn_blocking(move || {
            let req = requirements_of(&package)?;
            venvs.for_app(&env, req.as_deref(), log.as_ref())
        })
        .await
        .map_err(|e| format!("virtualenv task failed: {e}"))?
        .map_err(|e| format!("virtualenv: {e}"))
    }

    fn command(&self, launch: &Launch, venv: &Path, port: u16) -> Command {
        let app = &launch.app;
        let dir = self.app_dir(&app.id);
        let mut cmd = Command::new(&self.cfg.enclave_bin);
        cmd.arg("--size")
            .arg(launch.tier.enclave_size.to_string())
            .arg("--san")
            .arg(&app.domain)
            .arg("--id")
            .arg(&app.id)
            .arg("--application")
            .arg(&launch.python_application);
        match &launch.certificate {
            Some(cert) => cmd.arg("--certificate").arg(cert),
            None => cmd
                .arg("--expiration")
                .arg((app.expires_at / 1000).to_string()),
        };
        cmd.arg("--package")
            .arg(dir.join("app.tar"))
            .arg("--env")
            .arg(venv)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--tee")
            .arg(&self.cfg.tee)
            .arg("--state-dir")
            .arg(dir.join("state"));
        if self.cfg.tee == "sim" {
            cmd.arg("--sim-seed")
                .arg(self.cfg.data_dir.join("sim-seed"));
        }
        // The enclave gets none of the node's environment.
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The runtime's log filter (`MSE_LOG`), so an operator can raise enclave logging.
        if let Ok(filter) = std::env::var("MSE_LOG") {
            cmd.env("MSE_LOG", filter);
        }
        let cpus = self.cpu_set(launch.tier.cores);
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // async-signal-safe prctl and sched_setaffinity syscalls on values computed before the
        // fork; it allocates nothing and touches no shared state.
        unsafe {
            cmd.pre_exec(move || {
                // The enclave dies with the node, so none outlives the process that owns its pipes.
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                if let Some(set) = &cpus {
                    rustix::thread::sched_setaffinity(None, set)?;
                }
                Ok(())
            });
        }
        cmd
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

    /// Starts `cmd` on the spawner thread.
    async fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?
    }

    /// The tier's number of CPUs out of those the node may use, taken round-robin; `None`
    /// when the tier has at least as many cores as the node (no pinning).
    fn cpu_set(&self, cores: u32) -> Option<rustix::thread::CpuSet> {
        let mine = rustix::thread::sched_getaffinity(None).ok()?;
        let allowed: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| mine.is_set(c))
            .collect();
        let cores = cores as usize;
        if cores == 0 || cores >= allowed.len() {
            return None;
        }
        let start = self.next_cpu.fetch_add(cores, Ordering::Relaxed);
        let mut set = rustix::thread::CpuSet::new();
        for i in 0..cores {
            set.set(allowed[(start + i) % allowed.len()]);
        }
        Some(set)
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
            Err(e) => return (Status::OnError, e),
        };
        let digest = {
            let (node, venv) = (self.clone(), venv.clone());
            tokio::task::spawn_blocking(move || node.digests.environment(&venv))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        match digest {
            Ok(d) => {
                if let Err(e) = self.store.set_environment_digest(&app.id, &d) {
                    return (
                        Status::OnError,
                        format!("cannot record the environment digest: {e}"),
                    );
                }
            }
            Err(e) => {
                return (
                    Status::OnError,
                    format!("environment digest of {}: {e}", venv.display()),
                );
            }
        }
        if let Some(reason) = *stop_rx.borrow() {
            return stopped(reason);
        }
        let port = match self.free_port() {
            Ok(p) => p,
            Err(e) => return (Status::OnError, format!("no free port: {e}")),
        };
        live.port.store(port, Ordering::Relaxed);
        if let Err(e) = std::fs::create_dir_all(self.app_dir(&app.id).join("state")) {
            return (Status::OnError, format!("cannot create the state dir: {e}"));
        }
        let mut child = match self.spawn(self.command(launch, &venv, port)).await {
            Ok(c) => c,
            Err(e) => {
                return (
                    Status::OnError,
                    format!("cannot start {}: {e}", self.cfg.enclave_bin.display()),
                );
            }
        };
        let pid = child.id().unwrap_or(0);
        live.pid.store(u64::from(pid), Ordering::Relaxed);
        log.note(&format!("enclave started (pid {pid}, port {port})"));
        let pipes = capture(&mut child, log.clone());
        if let Err(e) = self.store.set_process(&app.id, port, pid) {
            tracing::error!(app = %app.id, "cannot record the enclave's pid: {e}");
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.set_routes(
            app,
            Some(Route {
                app_id: app.id.clone(),
                addr,
                stats: live.stats.clone(),
            }),
        );
        let outcome = self
            .follow(launch, live, &mut child, &mut stop_rx, addr)
            .await;
        // Drain what the enclave wrote last, so the log has it before the status changes.
        let _ = tokio::time::timeout(Duration::from_secs(2), pipes).await;
        outcome
    }

    async fn follow(
        &self,
        launch: &Launch,
        live: &Arc<Live>,
        child: &mut Child,
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
        loop {
            let interval = match status {
                Status::Spawning => Duration::from_millis(50),
                _ => Duration::from_millis(250),
            };
            tokio::select! {
                exit = child.wait() => {
                    if self.stopping.load(Ordering::SeqCst) {
                        return (Status::OnError, "node stopped".to_owned());
                    }
                    return match exit {
                        Ok(s) => (Status::OnError, exit_reason(s)),
                        Err(e) => (Status::OnError, format!("cannot wait for the enclave: {e}")),
                    };
                }
                _ = stop_rx.changed() => {
                    let reason = (*stop_rx.borrow()).unwrap_or(StopReason::User);
                    terminate(child, &live.log).await;
                    return stopped(reason);
                }
                _ = &mut expiry => {
                    if now_ms() < app.expires_at {
                        expiry.as_mut().reset(tokio::time::Instant::now() + until_expiry());
                        continue;
                    }
                    terminate(child, &live.log).await;
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
                        terminate(child, &live.log).await;
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
            let pid = live.pid.load(Ordering::Relaxed);
            if pid != 0 {
                if let Some(cpu) = cpu_seconds(pid) {
                    put("cpu_time", cpu.into());
                }
                if let Some(rss) = rss_bytes(pid) {
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

type SpawnRequest = (
    Command,
    tokio::sync::oneshot::Sender<std::io::Result<Child>>,
);

/// A thread that lives as long as the node and forks every enclave. The parent-death signal an
/// enclave gets fires when the *thread* that forked it exits, and tokio retires and replaces
/// its threads (`block_in_place`, idle blocking threads); forking from this thread only means
/// enclaves die with the node process and never earlier.
fn spawner_thread(runtime: tokio::runtime::Handle) -> std::sync::mpsc::Sender<SpawnRequest> {
    let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("mse-node-spawner".into())
        .spawn(move || {
            // tokio's child handling (its SIGCHLD reaper) needs the runtime's context.
            let _guard = runtime.enter();
            while let Ok((mut cmd, reply)) = rx.recv() {
                let _ = reply.send(cmd.spawn());
            }
        })
        .expect("cannot start the spawner thread");
    tx
}

fn stopped(reason: StopReason) -> (Status, String) {
    match reason {
        StopReason::User => (Status::Stopped, "stopped by its owner".to_owned()),
        StopReason::Expired => (Status::Stopped, "expired".to_owned()),
    }
}

/// SIGTERM, then SIGKILL if the enclave has not exited within 3 s.
async fn terminate(child: &mut Child, log: &AppLog) {
    if let Some(pid) = child.id() {
        signal(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(Duration::from_secs(3), child.wait())
            .await
            .is_ok()
        {
            return;
        }
        log.note("enclave ignored SIGTERM for 3 s: killing it");
    }
    let _ = child.kill().await;
}

/// Copies the child's stdout and stderr into the app log; resolves when both are closed.
fn capture(child: &mut Child, log: Arc<AppLog>) -> tokio::task::JoinHandle<()> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let pump = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, log: Arc<AppLog>| async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => log.push(&buf[..n]),
                }
            }
        };
        let a = stdout.map(|s| tokio::spawn(pump(Box::new(s), log.clone())));
        let b = stderr.map(|s| tokio::spawn(pump(Box::new(s), log.clone())));
        if let Some(a) = a {
            let _ = a.await;
        }
        if let Some(b) = b {
            let _ = b.await;
        }
    })
}

fn cpu_seconds(pid: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    Some((utime + stime) as f64 / ticks as f64)
}

fn rss_bytes(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
