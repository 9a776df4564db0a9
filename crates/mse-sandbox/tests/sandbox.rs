//! The sandbox end to end: `mse-sandbox-demo` enters it, locks down and serves `tests/app`
//! (Flask, through mse-wsgi with the audit hook); the tests talk HTTP to it and look at the host
//! side (backing directory, host /tmp, cgroup) from outside.
//!
//! These need root (mount namespace, tmpfs, FUSE, cgroup); elsewhere they say so loudly and pass.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SIZE_MB: u64 = 256;
const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const HOOK: &str = "is not allowed inside the enclave: no fork, no subprocess";

macro_rules! require_root {
    () => {
        if mse_testkit::lacks_root("mount namespace, FUSE, cgroup") {
            return;
        }
    };
}

fn venv() -> PathBuf {
    std::env::var_os("MSE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"))
}

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/app")
}

struct Demo {
    child: Child,
    addr: String,
    stdout: BufReader<ChildStdout>,
    stderr_log: PathBuf,
    state: PathBuf,
    dir: Option<tempfile::TempDir>,
}

#[derive(Default)]
struct Opts {
    key: Option<&'static str>,
    /// Reuse this state directory (instead of a fresh one).
    state: Option<PathBuf>,
    /// Make unshare(2) fail in the child, as on a machine without namespace privileges.
    no_namespaces: bool,
    /// Make only a plain mount namespace fail (a user namespace still works), as for an
    /// unprivileged user on a kernel that allows user namespaces.
    only_user_namespaces: bool,
    /// The app's virtualenv (instead of the test venv).
    venv: Option<PathBuf>,
}

/// Spawns the demo; returns it once it serves, or `Err(stderr)` if it exited first.
fn try_start(opts: Opts) -> Result<Demo, String> {
    let dir = tempfile::tempdir().unwrap();
    let state = opts.state.unwrap_or_else(|| dir.path().join("state"));
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"login": "alice"}"#).unwrap();
    let stderr_log = dir.path().join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mse-sandbox-demo"));
    cmd.arg("--size")
        .arg(SIZE_MB.to_string())
        .arg("--state-dir")
        .arg(&state)
        .arg("--app-dir")
        .arg(app_dir())
        .args([
            "--application",
            "app:app",
            "--home-key",
            opts.key.unwrap_or(KEY_A),
        ])
        .arg("--secrets")
        .arg(&secrets)
        .arg("--venv")
        .arg(opts.venv.unwrap_or_else(venv))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap());
    if opts.no_namespaces || opts.only_user_namespaces {
        let filter = unshare_eperm_filter(opts.only_user_namespaces);
        // SAFETY: runs in the forked child before exec; it only issues prctl and seccomp
        // system calls on a BPF program built (allocated) before the fork.
        unsafe {
            cmd.pre_exec(move || seccompiler::apply_filter(&filter).map_err(std::io::Error::other));
        }
    }
    let mut child = cmd.spawn().expect("spawn mse-sandbox-demo");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        stdout
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let stdout = reader.join().unwrap();
    let Some(addr) = line
        .strip_prefix("serving on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::fs::read_to_string(&stderr_log).unwrap_or_default());
    };
    Ok(Demo {
        child,
        addr,
        stdout,
        stderr_log,
        state,
        dir: Some(dir),
    })
}

fn start(opts: Opts) -> Demo {
    try_start(opts).unwrap_or_else(|stderr| panic!("demo did not start:\n{stderr}"))
}

/// unshare(2) fails with EPERM: always, or only for a bare CLONE_NEWNS.
fn unshare_eperm_filter(only_bare_newns: bool) -> seccompiler::BpfProgram {
    let rules = if only_bare_newns {
        vec![
            seccompiler::SeccompRule::new(vec![
                seccompiler::SeccompCondition::new(
                    0,
                    seccompiler::SeccompCmpArgLen::Qword,
                    seccompiler::SeccompCmpOp::Eq,
                    libc::CLONE_NEWNS as u64,
                )
                .unwrap(),
            ])
            .unwrap(),
        ]
    } else {
        vec![]
    };
    let filter = seccompiler::SeccompFilter::new(
        [(libc::SYS_unshare, rules)].into_iter().collect(),
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    filter.try_into().unwrap()
}

impl Demo {
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    fn get(&self, path: &str) -> String {
        let (status, body) = self.request("GET", path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap()
    }

    /// SIGTERM, then the exit status (within a minute), the rest of stdout and the log (the
    /// temporary directory lives on in the result).
    fn stop(mut self) -> (ExitStatus, String, String, tempfile::TempDir) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let mut waited = Duration::ZERO;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                waited < Duration::from_secs(60),
                "the demo did not exit within 60 s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
            waited += Duration::from_millis(50);
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let log = self.log();
        (status, rest, log, self.dir.take().unwrap())
    }

    /// Stops the demo and asserts it exited cleanly; its log and its temporary directory
    /// (kept so the caller can still look at the state directory).
    fn stop_cleanly(self) -> (String, tempfile::TempDir) {
        let (status, rest, log, dir) = self.stop();
        assert!(status.success(), "{status}\n{log}");
        assert_eq!(rest, "stopped\n");
        (log, dir)
    }

    /// The app sees its directories as plain paths under the state directory `s`.
    fn assert_env_under(&self, s: &str) {
        assert_eq!(
            self.get("/env"),
            format!(
                r#"{{"HOME": "{s}/HOME", "SECRETS_PATH": "{s}/HOME/.cache/mse/secrets.json", "SEALED_SECRETS_PATH": "{s}/HOME/.cache/mse/sealed_secrets.json", "TMP_PATH": "{s}/TMP_PATH", "MODULE_PATH": "{s}/MODULE_PATH", "KEY_PATH": "{s}/KEY_PATH", "TMPDIR": "{s}/TMP_PATH"}}"#
            )
        );
    }

    /// The app writes `canary` to $HOME and reads it back; it is never in clear under `state`.
    fn assert_canary_sealed(&self, state: &Path, canary: &str) {
        let (status, body) = self.request("POST", &format!("/canary/{canary}"));
        assert_eq!((status, body.as_str()), (200, canary));
        assert!(!contains(
            &all_bytes(&state.join("sealed-home")),
            canary.as_bytes()
        ));
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The per-app cgroup named in the log, if one was in force.
fn cgroup_in_log(log: &str) -> Option<PathBuf> {
    let start = log
        .find("memory.limit_in_bytes on ")
        .map(|i| i + 25)
        .or_else(|| log.find("memory.max on ").map(|i| i + 14))?;
    let rest = &log[start..];
    Some(PathBuf::from(rest.split_whitespace().next()?))
}

/// Every file under `dir` (recursively), as bytes.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.extend(std::fs::read(e.path()).unwrap());
                out.extend(e.file_name().as_encoded_bytes());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn process_creation_is_refused_and_the_server_keeps_serving() {
    require_root!();
    let demo = start(Opts::default());
    let cases = [
        (
            "/subprocess",
            format!("PermissionError: subprocess.Popen {HOOK}"),
        ),
        ("/fork", format!("PermissionError: os.fork {HOOK}")),
        ("/system", format!("PermissionError: os.system {HOOK}")),
        (
            "/popen",
            format!("PermissionError: subprocess.Popen {HOOK}"),
        ),
        (
            "/posix_spawn",
            format!("PermissionError: os.posix_spawn {HOOK}"),
        ),
        ("/execv", format!("PermissionError: os.exec {HOOK}")),
        // Linux's default start method forks: the hook names it.
        (
            "/multiprocessing",
            format!("PermissionError: os.fork {HOOK}"),
        ),
        // Below the audit hook: the seccomp filter answers.
        (
            "/multiprocessing-spawn",
            "PermissionError: [Errno 1] Operation not permitted".to_string(),
        ),
        (
            "/posixsubprocess",
            "PermissionError: [Errno 1] Operation not permitted".to_string(),
        ),
        ("/ctypes-fork", r#"{"ret": -1, "errno": 1}"#.to_string()),
        ("/ctypes-execve", r#"{"ret": -1, "errno": 1}"#.to_string()),
        // Threads are not processes: still allowed.
        ("/thread", "thread ran 1".to_string()),
        // Host-level calls a root app could use to undo the sandbox; a FIFO is still fine.
        (
            "/host-calls",
            r#"{"chroot": [-1, 1], "mkfifo": [0, 0], "mknod-char": [-1, 1], "mount": [-1, 1], "unshare": [-1, 1]}"#.to_string(),
        ),
    ];
    for (path, want) in &cases {
        assert_eq!(demo.get(path), *want, "GET {path}");
        assert_eq!(demo.get("/health"), "ok", "after GET {path}");
    }
    let (log, _dir) = demo.stop_cleanly();
    assert!(
        log.contains("seccomp filter on all threads: fork, vfork, execve, execveat and clone without CLONE_THREAD -> EPERM, clone3 -> ENOSYS"),
        "{log}"
    );
}

#[test]
fn allocation_beyond_size_is_a_memory_error_for_the_app_only() {
    require_root!();
    let demo = start(Opts::default());
    assert_eq!(demo.get("/alloc/64"), "returned 67108864");
    assert_eq!(
        demo.get(&format!("/alloc/{}", SIZE_MB + 64)),
        "MemoryError: "
    );
    assert_eq!(demo.get("/health"), "ok");
    assert_eq!(demo.get("/alloc/64"), "returned 67108864");
    let log = demo.log();
    assert!(
        log.contains(&format!("memory limit {SIZE_MB} MiB via cgroup v"))
            || log.contains(&format!("memory limit {SIZE_MB} MiB via RLIMIT_DATA only")),
        "{log}"
    );
    let _dir = demo.stop_cleanly();
}

#[test]
fn seeds_paths_sealed_home_memory_tmp_and_stop_wipes() {
    require_root!();
    // A file in the host's /tmp that the app must not see, and a name the app writes.
    let marker = tempfile::Builder::new()
        .prefix("mse-sandbox-host-marker-")
        .tempfile_in("/tmp")
        .unwrap();
    let marker_name = marker
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let app_file = format!("mse-sandbox-app-file-{}", std::process::id());

    let demo = start(Opts::default());
    assert_eq!(
        demo.get("/env"),
        r#"{"HOME": "/root", "SECRETS_PATH": "/root/.cache/mse/secrets.json", "SEALED_SECRETS_PATH": "/root/.cache/mse/sealed_secrets.json", "TMP_PATH": "/tmp", "MODULE_PATH": "/mse-app", "KEY_PATH": "/key", "TMPDIR": "/tmp"}"#
    );
    assert_eq!(demo.get("/whoami"), "alice");

    // $HOME is sealed: the canary is readable by the app, never in clear on the host.
    let canary = "c4nary-pl4intext-";
    let (status, body) = demo.request("POST", &format!("/canary/{canary}"));
    assert_eq!((status, body.as_str()), (200, canary));
    let backing = demo.state.join("sealed-home");
    let stored = all_bytes(&backing);
    assert!(!stored.is_empty());
    assert!(!contains(&stored, canary.as_bytes()));
    assert!(!contains(&stored, b"canary.txt"));
    assert!(!contains(&stored, b"alice"));

    // $TMP_PATH: a tmpfs of a quarter of the size, private to the enclave.
    assert_eq!(
        demo.get("/statvfs/TMP_PATH"),
        (SIZE_MB * 1024 * 1024 / 4).to_string()
    );
    assert_eq!(demo.get("/tmp-list"), "[]");
    let (status, _) = demo.request("POST", &format!("/tmp-write/{app_file}"));
    assert_eq!(status, 200);
    assert_eq!(demo.get("/tmp-list"), format!("[\"{app_file}\"]"));
    assert!(!Path::new("/tmp").join(&app_file).exists());
    assert!(Path::new("/tmp").join(&marker_name).exists());

    let log = demo.log();
    assert!(log.contains("sandbox: private mount namespace; HOME=/root (sealed, quota 10 GiB), TMP_PATH=/tmp (64 MiB in memory), MODULE_PATH=/mse-app, KEY_PATH=/key; memory limit 256 MiB via "), "{log}");
    let cgroup = cgroup_in_log(&log);
    if let Some(group) = &cgroup {
        assert!(group.is_dir(), "{}", group.display());
        let limit = ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .find_map(|f| std::fs::read_to_string(group.join(f)).ok())
            .unwrap();
        assert_eq!(limit.trim(), (SIZE_MB * 1024 * 1024).to_string());
        let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), demo.child.id().to_string());
    }

    let state = demo.state.clone();
    let (log, _dir) = demo.stop_cleanly();
    assert!(
        log.contains("sandbox: stopped, sealed $HOME wiped"),
        "{log}"
    );
    assert!(!backing.exists(), "backing not wiped");
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    if let Some(group) = cgroup {
        assert!(!group.exists(), "cgroup {} not removed", group.display());
    }
    assert!(!Path::new("/tmp").join(&app_file).exists());
    assert!(Path::new("/tmp").join(&marker_name).exists());
}

/// A virtualenv under `dir` (inside the host's /tmp, as in a checkout cloned to /tmp/x): the
/// test venv itself when it already lives under /tmp, else a venv of the same Python whose
/// site-packages points (a .pth file) at the test venv's.
fn venv_under_tmp(dir: &Path) -> PathBuf {
    let main = venv().canonicalize().expect("the test venv (make setup)");
    if main.starts_with("/tmp") {
        return main;
    }
    let shim = dir.join("x").join(".venv");
    let lib = std::fs::read_dir(main.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .find(|n| n.to_string_lossy().starts_with("python3"))
        .expect("lib/python3.* in the test venv");
    let site = shim.join("lib").join(&lib).join("site-packages");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::create_dir_all(shim.join("bin")).unwrap();
    std::fs::copy(main.join("pyvenv.cfg"), shim.join("pyvenv.cfg")).unwrap();
    let python = std::fs::read_link(main.join("bin/python"))
        .map(|t| main.join("bin").join(t))
        .unwrap_or_else(|_| main.join("bin/python"));
    std::os::unix::fs::symlink(python, shim.join("bin/python")).unwrap();
    let main_site = main.join("lib").join(&lib).join("site-packages");
    std::fs::write(
        site.join("mse-test.pth"),
        format!("{}\n", main_site.display()),
    )
    .unwrap();
    shim
}

#[test]
fn app_tmp_is_empty_when_the_venv_lives_under_tmp() {
    require_root!();
    let dir = tempfile::Builder::new()
        .prefix("mse-sandbox-checkout-")
        .tempdir_in("/tmp")
        .unwrap();
    let venv = venv_under_tmp(dir.path());
    assert!(venv.starts_with("/tmp"), "{}", venv.display());
    let demo = start(Opts {
        venv: Some(venv.clone()),
        ..Opts::default()
    });
    // The app runs from that venv (Flask is imported from it) and its /tmp is its own: empty.
    assert_eq!(demo.get("/health"), "ok");
    assert_eq!(demo.get("/tmp-list"), "[]");
    let log = demo.log();
    assert!(
        log.contains(&format!(
            "sandbox: {} kept visible, read-only, at /mse-runtime{}",
            venv.display(),
            venv.display()
        )),
        "{log}"
    );
    let _ = demo.stop_cleanly();
}

#[test]
fn stop_closes_files_and_mappings_the_app_keeps_in_home_and_exits() {
    require_root!();
    let demo = start(Opts::default());
    let (status, body) = demo.request("POST", "/hold-open");
    assert_eq!((status, body.as_str()), (200, "held"));
    let (status, body) = demo.request("POST", "/hold-mmap");
    assert_eq!((status, body.as_str()), (200, "mapped"));
    let backing = demo.state.join("sealed-home");
    let (log, _dir) = demo.stop_cleanly();
    assert!(
        log.contains("sandbox: closed 2 file(s) the app left open in $HOME"),
        "{log}"
    );
    // The mapping kept it busy: aborted and detached rather than waited for.
    assert!(
        log.contains("sandbox: $HOME was still in use by the app (a mapping or working directory): connection aborted and detached"),
        "{log}"
    );
    assert!(!backing.exists());
}

/// Starts the demo with `opts`, checks that the app's directories lie under its state directory
/// and that it serves; returns it with that directory (canonical).
fn start_under_state(opts: Opts) -> (Demo, PathBuf) {
    let demo = start(opts);
    let state = demo.state.canonicalize().unwrap();
    demo.assert_env_under(&state.display().to_string());
    assert_eq!(demo.get("/whoami"), "alice");
    (demo, state)
}

/// Checks that a `$HOME` canary stays sealed under `state`, that process creation is still
/// refused and that the log has `line`; then stops the demo and checks nothing is left.
fn sealed_no_fork_then_stop(demo: Demo, state: &Path, canary: &str, line: &str) {
    demo.assert_canary_sealed(state, canary);
    assert_eq!(
        demo.get("/fork"),
        format!("PermissionError: os.fork {HOOK}")
    );
    let log = demo.log();
    assert!(log.contains(line), "{log}");
    let (log, _dir) = demo.stop_cleanly();
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0, "{log}");
}

#[test]
fn without_namespaces_the_directories_fall_back_under_the_state_dir() {
    require_root!();
    let (demo, state) = start_under_state(Opts {
        no_namespaces: true,
        ..Opts::default()
    });
    let s = state.display();
    sealed_no_fork_then_stop(
        demo,
        &state,
        "f4llback-c4nary-",
        &format!(
            "sandbox: FALLBACK to plain per-app directories under {s} (cannot create a private mount namespace: Operation not permitted (os error 1); cannot create a user namespace either: Operation not permitted (os error 1)); HOME={s}/HOME (sealed, quota 10 GiB), TMP_PATH={s}/TMP_PATH (plain directory, not size-limited)"
        ),
    );
}

#[test]
fn with_only_a_user_namespace_the_directories_are_in_memory_under_the_state_dir() {
    require_root!();
    let (demo, state) = start_under_state(Opts {
        only_user_namespaces: true,
        ..Opts::default()
    });
    let s = state.display();
    // In memory and size-limited, and what the app writes there never reaches the host.
    assert_eq!(
        demo.get("/statvfs/TMP_PATH"),
        (SIZE_MB * 1024 * 1024 / 4).to_string()
    );
    let (status, _) = demo.request("POST", "/tmp-write/inside");
    assert_eq!(status, 200);
    assert_eq!(demo.get("/tmp-list"), r#"["inside"]"#);
    assert_eq!(
        std::fs::read_dir(state.join("TMP_PATH")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(state.join("MODULE_PATH"))
            .unwrap()
            .count(),
        0
    );
    sealed_no_fork_then_stop(
        demo,
        &state,
        "us3rns-c4nary-",
        &format!(
            "sandbox: user namespace (cannot create a private mount namespace: Operation not permitted (os error 1)): per-app directories under {s}, in memory; HOME={s}/HOME (sealed, quota 10 GiB), TMP_PATH={s}/TMP_PATH (64 MiB in memory)"
        ),
    );
}

#[test]
fn a_store_sealed_under_another_key_is_refused_with_one_clear_line() {
    require_root!();
    // A runtime killed without stopping leaves its sealed store (and its cgroup) behind.
    let keep = tempfile::tempdir().unwrap();
    let state = keep.path().join("state");
    let mut first = start(Opts {
        state: Some(state.clone()),
        ..Opts::default()
    });
    let (status, _) = first.request("POST", "/canary/x");
    assert_eq!(status, 200);
    let stale_group = cgroup_in_log(&first.log());
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    assert!(state.join("sealed-home").is_dir());

    let err = match try_start(Opts {
        state: Some(state.clone()),
        key: Some(KEY_B),
        ..Opts::default()
    }) {
        Ok(_) => panic!("started with the wrong key"),
        Err(stderr) => stderr,
    };
    let last = err.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "mse-sandbox-demo: error: sealed $HOME: backing directory {}/sealed-home: directory id failed authentication (wrong key or tampered store)",
            state.canonicalize().unwrap().display()
        )
    );
    assert!(!err.contains(KEY_B) && !err.contains(KEY_A));
    if let Some(group) = stale_group {
        assert!(
            !group.exists(),
            "stale cgroup {} not swept",
            group.display()
        );
    }
    // The right key still opens it.
    let again = start(Opts {
        state: Some(state.clone()),
        ..Opts::default()
    });
    assert_eq!(again.get("/health"), "ok");
    let _dir = again.stop_cleanly();
}

#[test]
fn entering_once_threads_exist_is_refused_before_anything_is_done() {
    // The test harness runs each test on its own thread: this process has at least two.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("never-created");
    let err = mse_sandbox::enter(&mse_sandbox::SandboxConfig {
        size_mb: SIZE_MB,
        home_key: [1; 32],
        state_dir: state.clone(),
    })
    .expect_err("entered with threads");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "the sandbox must be entered before any other thread exists, but this process has "
        ) && msg.ends_with(" threads"),
        "{msg}"
    );
    assert!(!state.exists());
}

#[test]
fn bad_arguments_fail_with_one_line_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = |size: &str, state: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_mse-sandbox-demo"))
            .args(["--size", size, "--state-dir"])
            .arg(state)
            .arg("--app-dir")
            .arg(app_dir())
            .args(["--application", "app:app"])
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        String::from_utf8(out.stderr).unwrap()
    };
    let never = dir.path().join("never");
    assert_eq!(
        run("100", &never),
        "mse-sandbox-demo: error: enclave size must be between 128 and 16777216 MB, got 100 MB\n"
    );
    assert!(!never.exists());
    assert_eq!(
        run("256", &file),
        format!(
            "mse-sandbox-demo: error: state directory {}: File exists (os error 17)\n",
            file.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
