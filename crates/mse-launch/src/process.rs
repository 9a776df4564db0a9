//! The process launcher: `mse-enclave` as a host process with the simulated TEE (or, on a host
//! that is itself a TEE guest, its attester). The node and `mse localtest` both launch through
//! it; the enclave's command line is assembled here and nowhere else.
//!
//! How a launch goes: the command line carries only [`LaunchInputs`] (`--spec -` and host
//! paths); the spec's canonical bytes go to the enclave's stdin, which it reads to the end
//! before it starts any thread, so the CPU pinning set on its pid in between applies to every
//! thread it will have. Every enclave is started by the shared spawner ([`crate::spawner`]), so
//! it is SIGKILLed when the launcher's process dies.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::{
    BoxFuture, Digest32, Disposal, Exit, Instance, LaunchError, LaunchInputs, LaunchSpec, Launcher,
    Metrics, OutputSink, Runtime, TeeKind,
};

/// How long a stopped enclave gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// How long the output of an ended enclave is drained before its exit is reported.
const DRAIN: Duration = Duration::from_secs(2);

/// The `mse-enclave` arguments for `inputs` (the spec itself goes to stdin: `--spec -`).
pub fn enclave_args(inputs: &LaunchInputs) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--spec".into(), "-".into()];
    let mut push = |flag: &str, value: OsString| {
        args.push(flag.into());
        args.push(value);
    };
    push("--package", inputs.package.clone().into());
    push("--env", inputs.environment.clone().into());
    if let Some(cert) = &inputs.owner_certificate {
        push("--certificate", cert.clone().into());
    }
    push("--host", inputs.host.clone().into());
    push("--port", inputs.port.to_string().into());
    push("--state-dir", inputs.state_dir.clone().into());
    if let Some(seed) = &inputs.sim_seed {
        push("--sim-seed", seed.clone().into());
    }
    if let Some(t) = inputs.config_timeout_secs {
        push("--timeout", t.to_string().into());
    }
    args
}

/// Whether process `pid` is alive and one of its arguments contains `needle` (an app id: the
/// state dir of a node's enclave is named after it), so that a recycled pid of another
/// process is never signalled.
pub fn is_enclave_of(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|&b| b == 0)
            .any(|arg| arg.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// Sends `sig` to `pid` (errors ignored: the process may be gone).
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Starts `mse-enclave` processes.
pub struct ProcessLauncher {
    enclave_bin: PathBuf,
    /// Round-robin start for CPU pinning, so apps spread over the host's CPUs.
    next_cpu: AtomicUsize,
    /// The runtime digest, keyed on the binary's size and mtime.
    runtime: Mutex<Option<((u64, std::time::SystemTime), Digest32)>>,
}

impl ProcessLauncher {
    /// A launcher of `enclave_bin`.
    pub fn new(enclave_bin: impl Into<PathBuf>) -> ProcessLauncher {
        ProcessLauncher {
            enclave_bin: enclave_bin.into(),
            next_cpu: AtomicUsize::new(0),
            runtime: Mutex::new(None),
        }
    }

    /// The executable this launcher starts.
    pub fn enclave_bin(&self) -> &Path {
        &self.enclave_bin
    }

    /// `vcpus` CPUs out of those this process may use, taken round-robin; `None` when that is
    /// all of them (no pinning).
    fn cpu_set(&self, vcpus: u32) -> Option<rustix::thread::CpuSet> {
        let mine = rustix::thread::sched_getaffinity(None).ok()?;
        let allowed: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| mine.is_set(c))
            .collect();
        let n = vcpus as usize;
        if n == 0 || n >= allowed.len() {
            return None;
        }
        let start = self.next_cpu.fetch_add(n, Ordering::Relaxed);
        let mut set = rustix::thread::CpuSet::new();
        for i in 0..n {
            set.set(allowed[(start + i) % allowed.len()]);
        }
        Some(set)
    }

    fn command(&self, spec: &LaunchSpec, inputs: &LaunchInputs) -> Command {
        let mut cmd = Command::new(&self.enclave_bin);
        cmd.args(enclave_args(inputs));
        // The enclave gets none of the host's environment but its log filter.
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8");
        if let Ok(filter) = std::env::var("MSE_LOG") {
            cmd.env("MSE_LOG", filter);
        }
        cmd.current_dir(inputs.state_dir.parent().unwrap_or(&inputs.state_dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let _ = spec;
        cmd
    }

    async fn start(
        &self,
        spec: &LaunchSpec,
        inputs: &LaunchInputs,
        sink: Arc<dyn OutputSink>,
    ) -> Result<Arc<dyn Instance>, LaunchError> {
        if !self.supports(spec.tee) {
            return Err(LaunchError::Unsupported {
                launcher: self.name(),
                tee: spec.tee,
            });
        }
        if !matches!(spec.runtime, Runtime::Process { .. }) {
            return Err(LaunchError::RuntimeMismatch {
                launcher: self.name(),
                ours: self.runtime()?,
                theirs: spec.runtime,
            });
        }
        let addr = (inputs.host.as_str(), inputs.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| {
                if a.ip().is_unspecified() {
                    SocketAddr::from(([127, 0, 0, 1], a.port()))
                } else {
                    a
                }
            })
            .ok_or_else(|| {
                LaunchError::Other(format!("host {:?} resolves to no address", inputs.host))
            })?;
        std::fs::create_dir_all(&inputs.state_dir).map_err(|source| LaunchError::Io {
            what: format!("cannot create the state dir {}", inputs.state_dir.display()),
            source,
        })?;
        let mut child = crate::spawner::spawn(self.command(spec, inputs))
            .await
            .map_err(|source| LaunchError::Io {
                what: format!("cannot start {}", self.enclave_bin.display()),
                source,
            })?;
        let pid = child.id().unwrap_or(0);
        // Before the spec is written: the enclave starts no thread until it has read it.
        if let Some(set) = self.cpu_set(spec.vcpus)
            && let Some(p) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            && let Err(e) = rustix::thread::sched_setaffinity(Some(p), &set)
        {
            sink.note(&format!("cannot pin the enclave to its CPUs: {e}"));
        }
        if let Some(mut stdin) = child.stdin.take() {
            let bytes = spec.canonical_bytes();
            // An enclave that died at once reports its exit; a write error says nothing more.
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.shutdown().await;
        }
        let pipes = capture(&mut child, sink.clone());
        let (exit_tx, exit_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(None);
        tokio::spawn(supervise(
            child,
            pipes,
            stop_rx,
            exit_tx,
            inputs.state_dir.clone(),
            sink,
        ));
        Ok(Arc::new(ProcessInstance {
            addr,
            pid,
            exit: exit_rx,
            stop: stop_tx,
            state_dir: inputs.state_dir.clone(),
        }))
    }
}

impl Launcher for ProcessLauncher {
    fn name(&self) -> &'static str {
        "process"
    }

    /// Everything but the simulated SEV-SNP (whose evidence only a VM's firmware gives).
    fn supports(&self, tee: TeeKind) -> bool {
        tee != TeeKind::SimSnp
    }

    fn runtime(&self) -> Result<Runtime, LaunchError> {
        let io = |source| LaunchError::Io {
            what: format!("cannot hash {}", self.enclave_bin.display()),
            source,
        };
        let meta = std::fs::metadata(&self.enclave_bin).map_err(io)?;
        let key = (meta.len(), meta.modified().map_err(io)?);
        let mut cached = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let digest = match *cached {
            Some((k, d)) if k == key => d,
            _ => {
                let d = file_sha256(&self.enclave_bin).map_err(io)?;
                *cached = Some((key, d));
                d
            }
        };
        Ok(Runtime::Process {
            enclave_sha256: digest,
        })
    }

    fn launch<'a>(
        &'a self,
        spec: &'a LaunchSpec,
        inputs: &'a LaunchInputs,
        sink: Arc<dyn OutputSink>,
    ) -> BoxFuture<'a, Result<Arc<dyn Instance>, LaunchError>> {
        Box::pin(self.start(spec, inputs, sink))
    }
}

/// SHA-256 of a file's content, streamed.
pub fn file_sha256(path: &Path) -> std::io::Result<Digest32> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(Digest32(hasher.finalize().into()))
}

/// The supervisor of one enclave: waits for its exit or a stop request, terminates it, drains
/// its output, disposes of its state, then publishes how it ended.
async fn supervise(
    mut child: Child,
    pipes: tokio::task::JoinHandle<()>,
    mut stop_rx: watch::Receiver<Option<Disposal>>,
    exit_tx: watch::Sender<Option<Exit>>,
    state_dir: PathBuf,
    sink: Arc<dyn OutputSink>,
) {
    let (exit, disposal) = tokio::select! {
        status = child.wait() => (exit_of(status), None),
        disposal = stop_requested(&mut stop_rx) => {
            terminate(&mut child, sink.as_ref()).await;
            (Exit::Stopped, disposal)
        }
    };
    let _ = tokio::time::timeout(DRAIN, pipes).await;
    if disposal == Some(Disposal::Delete) {
        dispose(&state_dir, sink.as_ref());
    }
    exit_tx.send_replace(Some(exit));
}

/// The disposal of the first stop request. A dropped instance (no stop will ever come) never
/// resolves: the enclave runs on until it exits.
async fn stop_requested(rx: &mut watch::Receiver<Option<Disposal>>) -> Option<Disposal> {
    let asked = match rx.wait_for(Option::is_some).await {
        Ok(d) => *d,
        Err(_) => None,
    };
    match asked {
        Some(d) => Some(d),
        None => std::future::pending().await,
    }
}

fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Lost(s.to_string()),
        },
        Err(e) => Exit::Lost(e.to_string()),
    }
}

fn dispose(state_dir: &Path, sink: &dyn OutputSink) {
    if let Err(e) = std::fs::remove_dir_all(state_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        sink.note(&format!("cannot delete {}: {e}", state_dir.display()));
    }
}

/// SIGTERM, then SIGKILL if the enclave has not exited within [`TERM_GRACE`].
async fn terminate(child: &mut Child, sink: &dyn OutputSink) {
    if let Some(pid) = child.id() {
        signal(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_ok() {
            return;
        }
        sink.note("enclave ignored SIGTERM for 3 s: killing it");
    }
    let _ = child.kill().await;
}

/// Copies the child's stdout and stderr into the sink; resolves when both are closed.
fn capture(child: &mut Child, sink: Arc<dyn OutputSink>) -> tokio::task::JoinHandle<()> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let pump = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    sink: Arc<dyn OutputSink>| async move {
            let mut buf = vec![0u8; 8192];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.output(&buf[..n]),
                }
            }
        };
        let a = stdout.map(|s| tokio::spawn(pump(Box::new(s), sink.clone())));
        let b = stderr.map(|s| tokio::spawn(pump(Box::new(s), sink.clone())));
        if let Some(a) = a {
            let _ = a.await;
        }
        if let Some(b) = b {
            let _ = b.await;
        }
    })
}

/// A running `mse-enclave` process.
struct ProcessInstance {
    addr: SocketAddr,
    pid: u32,
    exit: watch::Receiver<Option<Exit>>,
    stop: watch::Sender<Option<Disposal>>,
    state_dir: PathBuf,
}

impl ProcessInstance {
    async fn ended(&self) -> Exit {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(exit) => exit
                .clone()
                .unwrap_or(Exit::Lost("no exit recorded".into())),
            Err(_) => Exit::Lost("the supervisor is gone".into()),
        }
    }
}

impl Instance for ProcessInstance {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn pid(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.pid)
    }

    fn wait(&self) -> BoxFuture<'_, Exit> {
        Box::pin(self.ended())
    }

    fn stop(&self, disposal: Disposal) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            if self.exit.borrow().is_some() {
                // Already ended by itself: only the disposal is left to do.
                if disposal == Disposal::Delete {
                    let _ = std::fs::remove_dir_all(&self.state_dir);
                }
                return self.ended().await;
            }
            self.stop.send_if_modified(|d| {
                if d.is_none() {
                    *d = Some(disposal);
                    true
                } else {
                    false
                }
            });
            let exit = self.ended().await;
            if disposal == Disposal::Delete {
                let _ = std::fs::remove_dir_all(&self.state_dir);
            }
            exit
        })
    }

    fn metrics(&self) -> Metrics {
        Metrics {
            cpu_seconds: cpu_seconds(self.pid),
            memory_bytes: rss_bytes(self.pid),
        }
    }
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    Some((utime + stime) as f64 / ticks as f64)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<u8>>);

    impl OutputSink for Collect {
        fn output(&self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
        fn note(&self, line: &str) {
            self.output(format!("[note] {line}\n").as_bytes());
        }
    }

    impl Collect {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn spec(tee: TeeKind) -> LaunchSpec {
        LaunchSpec {
            tee,
            ..LaunchSpec::example()
        }
    }

    /// A stand-in enclave: saves its arguments and its stdin (the spec) next to its state dir,
    /// says hello on stdout and stderr, then sleeps or exits with the code in its name.
    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("enclave.sh");
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"$@\" > args\ncat > spec\necho out; echo err >&2\n{body}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }

    fn inputs(dir: &Path) -> LaunchInputs {
        LaunchInputs {
            package: dir.join("app.tar"),
            environment: dir.join("venv"),
            owner_certificate: None,
            host: "0.0.0.0".into(),
            port: 4443,
            state_dir: dir.join("app").join("state"),
            sim_seed: Some(dir.join("seed")),
            config_timeout_secs: Some(5),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn launch_hands_over_the_spec_then_stop_deletes_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = ProcessLauncher::new(script(dir.path(), "exec sleep 30"));
        let sink = Arc::new(Collect::default());
        let spec = spec(TeeKind::Sim);
        let inputs = inputs(dir.path());
        let instance = launcher.launch(&spec, &inputs, sink.clone()).await.unwrap();
        assert_eq!(instance.addr(), "127.0.0.1:4443".parse().unwrap());
        let spec_file = dir.path().join("app/spec");
        // The script has read all of stdin once it said hello on both outputs.
        let said_hello = |t: String| t.lines().filter(|l| *l == "out" || *l == "err").count() == 2;
        while !said_hello(sink.text()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read(&spec_file).unwrap(), spec.canonical_bytes());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app/args")).unwrap(),
            format!(
                "--spec - --package {d}/app.tar --env {d}/venv --host 0.0.0.0 --port 4443 --state-dir {d}/app/state --sim-seed {d}/seed --timeout 5\n",
                d = dir.path().display()
            )
        );
        assert!(instance.pid().is_some());
        assert!(instance.metrics().cpu_seconds.is_some());
        assert!(inputs.state_dir.is_dir());
        assert_eq!(instance.stop(Disposal::Delete).await, Exit::Stopped);
        assert!(!inputs.state_dir.exists());
        assert_eq!(instance.wait().await, Exit::Stopped);
        assert_eq!(
            sink.text()
                .lines()
                .filter(|l| *l == "out" || *l == "err")
                .count(),
            2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_exit_is_reported_and_keep_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = ProcessLauncher::new(script(dir.path(), "exit 3"));
        let sink = Arc::new(Collect::default());
        let inputs = inputs(dir.path());
        let instance = launcher
            .launch(&spec(TeeKind::Sim), &inputs, sink.clone())
            .await
            .unwrap();
        assert_eq!(instance.wait().await, Exit::Code(3));
        // Output is drained before the exit is reported.
        assert!(sink.text().contains("out\n") && sink.text().contains("err\n"));
        assert_eq!(instance.stop(Disposal::Keep).await, Exit::Code(3));
        assert!(inputs.state_dir.is_dir());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = ProcessLauncher::new(dir.path().join("missing"));
        let sink = Arc::new(Collect::default());
        let inputs = inputs(dir.path());
        let err = |r: Result<Arc<dyn Instance>, LaunchError>| match r {
            Ok(_) => panic!("launched"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err(launcher
                .launch(&spec(TeeKind::SimSnp), &inputs, sink.clone())
                .await),
            "the process launcher cannot run TEE sim-snp"
        );
        assert_eq!(
            err(launcher
                .launch(&spec(TeeKind::Sim), &inputs, sink.clone())
                .await),
            format!(
                "cannot start {}: No such file or directory (os error 2)",
                dir.path().join("missing").display()
            )
        );
        assert_eq!(
            launcher.runtime().unwrap_err().to_string(),
            format!(
                "cannot hash {}: No such file or directory (os error 2)",
                dir.path().join("missing").display()
            )
        );
    }
}
