//! The enclave's sandbox: the app's directories at the seeds' paths, the memory limit from
//! `--size`, and no fork / no subprocess.
//!
//! The runtime (`mse-enclave`) uses it in this order:
//!
//! 1. [`enter`] first thing in `main`, while the process has one thread: a private mount
//!    namespace; the sealed `$HOME` at `/root` (a [`HomeStorage`]: [`SealFsHome`], FUSE with a
//!    10 GiB quota, unless [`enter_with_storage`] names another); tmpfs mounts at `/tmp` (a quarter of the memory), `/mse-app` and
//!    `/key`; the memory limit ([`MemoryLimit`]); and the app's variables exported into the
//!    process environment (only sound before other threads exist). Without the privilege for a
//!    mount namespace the directories are per-app directories under `state_dir` named after the
//!    variables (`HOME`, `TMP_PATH`, `MODULE_PATH`, `KEY_PATH`): in memory inside a user
//!    namespace where the kernel allows one, else plain host directories ([`Isolation`]); the
//!    log says which.
//! 2. Provisioning (secrets into [`AppPaths::secrets_path`], code into [`AppPaths::module_path`]).
//! 3. [`Sandbox::lock_down`]: the seccomp filter on all threads (anything that needs exec, such
//!    as `fusermount3`, must be done by now).
//! 4. Python: run [`Sandbox::python_startup_code`] (the audit hook) before importing the app
//!    (`mse_wsgi::ServerConfig::startup_code`).
//! 5. [`Sandbox::stop`]: unmount, wipe the sealed backing ([`MountedHome::tear_down`]), drop the
//!    tmpfs mounts and the cgroup.
//!
//! The namespace and tmpfs helpers ([`isolate`], [`mount_tmpfs`], [`tmp_size_for_memory`]) and
//! the one [`Isolation`] enum live here; mse-sealfs is only the filesystem.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mse_sandbox::{Sandbox, SandboxConfig};
//!
//! let cfg = SandboxConfig {
//!     size_mb: 2048,
//!     home_key: [0; 32], // HKDF(platform sealing key, measurement) in the runtime
//!     state_dir: "/var/lib/mse/app-1".into(),
//! };
//! // First thing in main. Paths the runtime still reads later that may lie under /root or
//! // /tmp (the app's virtualenv, the code package) are kept visible, read-only.
//! let venv = std::path::PathBuf::from("/root/.cache/venv");
//! let sandbox = mse_sandbox::enter_with(&cfg, &[venv.clone()])?;
//! let venv = sandbox.runtime_path(&venv); // /mse-runtime/root/.cache/venv
//! // ... configuration server; secrets and code written to sandbox.paths() ...
//! sandbox.lock_down()?;
//! let listener = std::net::TcpListener::bind("0.0.0.0:443")?;
//! let config = mse_wsgi::ServerConfig::new(mse_wsgi::Bind::Listener(listener), "app:app")
//!     .app_dir(&sandbox.paths().module_path)
//!     .venv(Some(venv))
//!     .startup_code(Some(Sandbox::python_startup_code().to_string()));
//! # let _ = config;
//! // ... mse_wsgi::Server::new(config)?.serve(...) until SIGTERM ...
//! sandbox.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! Mounting over `/root` and `/tmp` happens only inside the private namespace: the host's
//! directories are untouched. What the runtime itself needs from under those paths stays visible
//! through read-only bind mounts: whatever the caller lists in [`enter_with`] (e.g. the app's
//! virtualenv or its code package) under [`RUNTIME_DIR`] at its host path (reach it through
//! [`Sandbox::runtime_path`]), so that the app's `/tmp` starts empty wherever the project lives;
//! the Python installation the runtime links (found from the mapped libpython, e.g. a pyenv under
//! `/root`) at its own path, since virtualenvs name it there. The only trace on the host is the
//! empty mount-point directories `/mse-app`, `/key` and `/mse-runtime` (created if missing, never
//! removed: another enclave's namespace may be using them as mount points, and removing those
//! would detach its mounts).
//!
//! The app runs in this process, with its user and capabilities: the filter refuses new mounts
//! and namespaces, but an app running as root could still unmount its directories, raise its
//! rlimit or leave its cgroup. The sandbox enforces the product's rules on a well-behaved app;
//! it is no boundary against a hostile one running as root (that needs a separate supervisor
//! process or an unprivileged user).

#![warn(missing_docs)]

mod error;
mod home;
mod kept;
mod memory;
mod ns;
mod seccomp;

use std::fs;
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

pub use error::SandboxError;
pub use home::{HomeError, HomeStorage, KeySource, MountedHome, SealFsHome};
use kept::{Kept, RUNTIME_DIR_BYTES, open_kept, python_prefix};
pub use kept::{RUNTIME_DIR, loaded_libpython};
pub use memory::MemoryLimit;
pub use ns::{
    Isolation, NsError, enter_private_mount_namespace, isolate, mount_tmpfs, tmp_size_for_memory,
};

/// Smallest `--size` accepted: below it the interpreter and server do not fit.
pub const MIN_SIZE_MB: u64 = 128;
/// Largest `--size` accepted (16 TiB): beyond it the byte count risks overflow.
pub const MAX_SIZE_MB: u64 = 1 << 24;
/// Size of the `$KEY_PATH` tmpfs.
pub const KEY_DIR_BYTES: u64 = 1024 * 1024;
/// Name of the sealed `$HOME`'s backing directory inside `state_dir`.
pub const SEALED_HOME_DIR: &str = "sealed-home";

const MIB: u64 = 1024 * 1024;

/// What [`enter`] needs.
pub struct SandboxConfig {
    /// Enclave size in MiB (`--size`): the memory limit; `$TMP_PATH` gets a quarter of it.
    pub size_mb: u64,
    /// Key of the sealed `$HOME` (the runtime derives it from the platform key and measurement).
    pub home_key: [u8; 32],
    /// Per-app host directory: the sealed `$HOME` backing, and the fallback directories.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("size_mb", &self.size_mb)
            .field("home_key", &"<redacted>")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// The directories the app sees (the seeds' table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    /// `$HOME`: sealed (encrypted, bound to the code version), wiped at stop.
    pub home: PathBuf,
    /// `$SECRETS_PATH` = `$HOME/.cache/mse/secrets.json`.
    pub secrets_path: PathBuf,
    /// `$SEALED_SECRETS_PATH` = `$HOME/.cache/mse/sealed_secrets.json`.
    pub sealed_secrets_path: PathBuf,
    /// `$TMP_PATH`: in memory, a quarter of the enclave size.
    pub tmp_path: PathBuf,
    /// `$MODULE_PATH`: the decrypted code, in memory.
    pub module_path: PathBuf,
    /// `$KEY_PATH`: in memory.
    pub key_path: PathBuf,
}

impl AppPaths {
    fn new(home: PathBuf, tmp_path: PathBuf, module_path: PathBuf, key_path: PathBuf) -> Self {
        let cache = home.join(".cache").join("mse");
        Self {
            secrets_path: cache.join("secrets.json"),
            sealed_secrets_path: cache.join("sealed_secrets.json"),
            home,
            tmp_path,
            module_path,
            key_path,
        }
    }

    /// The seeds' real paths, used inside a private mount namespace.
    fn real() -> Self {
        Self::new(
            "/root".into(),
            "/tmp".into(),
            "/mse-app".into(),
            "/key".into(),
        )
    }

    /// The fallback: directories under `state_dir` named after the variables.
    fn fallback(state_dir: &Path) -> Self {
        Self::new(
            state_dir.join("HOME"),
            state_dir.join("TMP_PATH"),
            state_dir.join("MODULE_PATH"),
            state_dir.join("KEY_PATH"),
        )
    }

    /// The app's environment variables, in the seeds' order, then `TMPDIR` (so that Python's
    /// `tempfile` uses `$TMP_PATH` too).
    pub fn env(&self) -> Vec<(String, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        vec![
            ("HOME".into(), s(&self.home)),
            ("SECRETS_PATH".into(), s(&self.secrets_path)),
            ("SEALED_SECRETS_PATH".into(), s(&self.sealed_secrets_path)),
            ("TMP_PATH".into(), s(&self.tmp_path)),
            ("MODULE_PATH".into(), s(&self.module_path)),
            ("KEY_PATH".into(), s(&self.key_path)),
            ("TMPDIR".into(), s(&self.tmp_path)),
        ]
    }
}

/// An entered sandbox. Dropping it without [`Sandbox::stop`] tears it down too (errors logged).
pub struct Sandbox {
    paths: AppPaths,
    isolation: Isolation,
    size_bytes: u64,
    tmp_bytes: u64,
    home: Option<Box<dyn MountedHome>>,
    memory: Option<memory::MemoryGuard>,
    /// tmpfs mounts made in the namespace (unmounted at stop, mount points kept).
    mounts: Vec<PathBuf>,
    /// Fallback directories (deleted at stop).
    plain_dirs: Vec<PathBuf>,
    /// Read-only bind mounts keeping runtime paths visible (unmounted first at stop).
    binds: Vec<PathBuf>,
    /// The kept paths: as given, canonical, and where they are reachable in the namespace.
    kept: Vec<(PathBuf, PathBuf, PathBuf)>,
    torn_down: bool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("paths", &self.paths)
            .field("isolation", &self.isolation)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

/// Threads of this process, from /proc/self/status.
fn thread_count() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn make_dir(path: &Path, mode: u32) -> Result<(), SandboxError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| SandboxError::CreateDir {
            path: path.to_path_buf(),
            source,
        })
}

fn unmount(path: &Path) -> Result<(), SandboxError> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
        SandboxError::Unmount {
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

fn remove_all(path: &Path) -> Result<(), SandboxError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SandboxError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Closes this process's descriptors of files on device `dev` (the sealed `$HOME`) and returns
/// how many. At stop the app is done, but files it kept open there (a global sqlite connection,
/// say) would otherwise be flushed at process exit, after the FUSE threads that must answer the
/// flush are gone: the exit would hang forever. Closed now, they are flushed while still served.
fn close_descriptors_on(dev: u64) -> usize {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut closed = 0;
    for fd in fds {
        // SAFETY: the descriptor is only borrowed for this fstat; if it was closed since the
        // listing (the listing's own descriptor is), fstat fails with EBADF and it is skipped.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if rustix::fs::fstat(borrowed).is_ok_and(|st| st.st_dev == dev) {
            // SAFETY: a descriptor of a file in the sealed $HOME, owned by the app's (stopped)
            // code, which never uses it again: the runtime only stops and exits after this.
            // The runtime's own descriptors (FUSE device, backing directory) are on other
            // devices and are not touched.
            unsafe { libc::close(fd) };
            closed += 1;
        }
    }
    closed
}

/// Enters the sandbox. Call it first in `main`, before any thread is started.
pub fn enter(cfg: &SandboxConfig) -> Result<Sandbox, SandboxError> {
    enter_with(cfg, &[])
}

/// [`enter_with_storage`] with the sealed `$HOME` of today ([`SealFsHome`], default options).
pub fn enter_with(cfg: &SandboxConfig, keep_visible: &[PathBuf]) -> Result<Sandbox, SandboxError> {
    enter_with_storage(cfg, keep_visible, &SealFsHome::default())
}

/// [`enter`], with `$HOME` from `storage`, keeping `keep_visible` (read-only) reachable where the app's mounts would hide it:
/// e.g. an app virtualenv under `/tmp` or `/root`, then at [`Sandbox::runtime_path`] (under
/// [`RUNTIME_DIR`]), never inside the app's directories. The Python installation is always
/// kept, at its own path.
pub fn enter_with_storage(
    cfg: &SandboxConfig,
    keep_visible: &[PathBuf],
    storage: &dyn HomeStorage,
) -> Result<Sandbox, SandboxError> {
    if !(MIN_SIZE_MB..=MAX_SIZE_MB).contains(&cfg.size_mb) {
        return Err(SandboxError::Size {
            got: cfg.size_mb,
            min: MIN_SIZE_MB,
            max: MAX_SIZE_MB,
        });
    }
    // Not knowing counts as a refusal: the environment writes below are only sound single-threaded.
    match thread_count() {
        Some(1) => {}
        Some(n) => return Err(SandboxError::NotSingleThreaded { threads: n }),
        None => return Err(SandboxError::ThreadCountUnknown),
    }
    let state_err = |source| SandboxError::StateDir {
        path: cfg.state_dir.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.state_dir)
        .map_err(state_err)?;
    let state_dir = cfg.state_dir.canonicalize().map_err(state_err)?;

    let size_bytes = cfg.size_mb * MIB;
    // Memory first: the tmpfs and FUSE set-up below is then charged to the app's group.
    let memory = memory::apply(size_bytes)?;
    let isolation = match ns::isolate() {
        Ok(isolation) => isolation,
        Err(e) => {
            let mut memory = memory;
            let _ = memory.release();
            return Err(e);
        }
    };
    let paths = match isolation {
        Isolation::PrivateNamespace => AppPaths::real(),
        _ => AppPaths::fallback(&state_dir),
    };
    let mut sandbox = Sandbox {
        paths,
        isolation,
        size_bytes,
        tmp_bytes: ns::tmp_size_for_memory(size_bytes),
        home: None,
        memory: Some(memory),
        mounts: Vec::new(),
        plain_dirs: Vec::new(),
        binds: Vec::new(),
        kept: Vec::new(),
        torn_down: false,
    };
    let kept = match sandbox.isolation {
        Isolation::PrivateNamespace => {
            let mut wanted: Vec<(PathBuf, bool)> =
                python_prefix().into_iter().map(|p| (p, false)).collect();
            wanted.extend(keep_visible.iter().map(|p| (p.clone(), true)));
            open_kept(&wanted)
        }
        _ => Vec::new(),
    };
    if let Err(e) = sandbox.set_up(&state_dir, &cfg.home_key, storage, &kept) {
        if let Err(undo) = sandbox.tear_down() {
            tracing::warn!("sandbox: undoing a failed set-up: {undo}");
        }
        return Err(e);
    }
    tracing::info!(
        "sandbox: {}; HOME={} ({}), TMP_PATH={} ({}), \
         MODULE_PATH={}, KEY_PATH={}; memory limit {} MiB via {}; effective memory {} MiB",
        match &sandbox.isolation {
            Isolation::PrivateNamespace => "private mount namespace".to_string(),
            Isolation::UserNamespace { reason } => format!(
                "user namespace ({reason}): per-app directories under {}, in memory",
                state_dir.display()
            ),
            Isolation::PlainDirectories { reason } => format!(
                "FALLBACK to plain per-app directories under {} ({reason})",
                state_dir.display()
            ),
        },
        sandbox.paths.home.display(),
        storage.describe(),
        sandbox.paths.tmp_path.display(),
        if sandbox.isolation.in_memory() {
            format!("{} MiB in memory", sandbox.tmp_bytes / MIB)
        } else {
            "plain directory, not size-limited".to_string()
        },
        sandbox.paths.module_path.display(),
        sandbox.paths.key_path.display(),
        cfg.size_mb,
        sandbox.memory_limit(),
        sandbox.effective_memory_mb(),
    );
    Ok(sandbox)
}

impl Sandbox {
    fn set_up(
        &mut self,
        state_dir: &Path,
        home_key: &dyn KeySource,
        storage: &dyn HomeStorage,
        kept: &[Kept],
    ) -> Result<(), SandboxError> {
        // SAFETY: `enter` checked that this process has a single thread and nothing here has
        // started another yet (the FUSE threads start below), so no thread can read the
        // environment concurrently with these writes.
        for (k, v) in self.paths.env() {
            unsafe { std::env::set_var(k, v) };
        }

        // The sealed $HOME, mounted before /tmp so that a state_dir under /tmp is still
        // reachable by path (the mount keeps a descriptor of its backing afterwards).
        let backing = state_dir.join(SEALED_HOME_DIR);
        if self.isolation != Isolation::PrivateNamespace {
            self.plain_dirs.push(self.paths.home.clone());
        }
        self.home = Some(storage.mount(&backing, home_key, &self.paths.home)?);
        let cache = self.paths.secrets_path.parent().unwrap_or(&self.paths.home);
        make_dir(cache, 0o700)?;
        if self.isolation == Isolation::PrivateNamespace {
            let home = self.paths.home.clone();
            self.bind_kept(&home, kept, false)?;
        }

        let size = self.size_bytes;
        let dirs = [
            (self.paths.tmp_path.clone(), self.tmp_bytes, 0o1777),
            (self.paths.module_path.clone(), size, 0o755),
            (self.paths.key_path.clone(), KEY_DIR_BYTES, 0o700),
        ];
        for (path, bytes, mode) in dirs {
            if self.isolation != Isolation::PrivateNamespace {
                // Leftovers of a crashed run (decrypted code, keys) must not survive; the
                // directory itself goes at stop.
                remove_all(&path)?;
                self.plain_dirs.push(path.clone());
            }
            if self.isolation.in_memory() {
                ns::mount_tmpfs(&path, bytes, mode)?;
                self.mounts.push(path.clone());
                self.bind_kept(&path, kept, false)?;
            } else {
                make_dir(&path, 0o700)?;
            }
        }
        if kept.iter().any(|k| k.relocated) {
            // Mount points only: the tmpfs is made read-only once they exist.
            let runtime = PathBuf::from(RUNTIME_DIR);
            ns::mount_tmpfs(&runtime, RUNTIME_DIR_BYTES, 0o755)?;
            self.mounts.push(runtime.clone());
            self.bind_kept(&runtime, kept, true)?;
            rustix::mount::mount_remount(
                &runtime,
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
                "",
            )
            .map_err(|e| SandboxError::Keep {
                path: runtime.clone(),
                source: e.into(),
            })?;
        }
        self.kept = kept
            .iter()
            .map(|k| (k.given.clone(), k.path.clone(), k.target()))
            .collect();
        Ok(())
    }

    /// Bind-mounts (read-only) each kept path whose place is under `root` (just mounted): in
    /// its place, or under [`RUNTIME_DIR`] if `relocated`.
    fn bind_kept(
        &mut self,
        root: &Path,
        kept: &[Kept],
        relocated: bool,
    ) -> Result<(), SandboxError> {
        for k in kept
            .iter()
            .filter(|k| k.relocated == relocated && k.target().starts_with(root))
        {
            let target = k.target();
            let err = |source: io::Error| SandboxError::Keep {
                path: k.path.clone(),
                source,
            };
            if k.is_dir {
                make_dir(&target, 0o755)?;
            } else {
                if let Some(parent) = target.parent() {
                    make_dir(parent, 0o755)?;
                }
                fs::File::create(&target).map_err(err)?;
            }
            let source = format!("/proc/self/fd/{}", k.fd.as_raw_fd());
            rustix::mount::mount_bind_recursive(source.as_str(), &target)
                .map_err(|e| err(e.into()))?;
            self.binds.push(target.clone());
            rustix::mount::mount_remount(
                &target,
                MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
                "",
            )
            .map_err(|e| err(e.into()))?;
            if relocated {
                tracing::info!(
                    "sandbox: {} kept visible, read-only, at {}",
                    k.path.display(),
                    target.display()
                );
            } else {
                tracing::info!("sandbox: {} kept visible, read-only", k.path.display());
            }
        }
        Ok(())
    }

    /// Undoes everything done so far; keeps going after an error and reports the first one.
    fn tear_down(&mut self) -> Result<(), SandboxError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first: Option<SandboxError> = None;
        let mut note = |r: Result<(), SandboxError>| {
            if let Err(e) = r {
                tracing::warn!("sandbox stop: {e}");
                first.get_or_insert(e);
            }
        };
        for path in self.binds.drain(..).rev() {
            note(unmount(&path));
        }
        if let Some(home) = self.home.take() {
            if let Ok(st) = rustix::fs::stat(home.mountpoint()) {
                let closed = close_descriptors_on(st.st_dev);
                if closed > 0 {
                    tracing::info!("sandbox: closed {closed} file(s) the app left open in $HOME");
                }
            }
            note(home.tear_down().map_err(SandboxError::from));
        }
        for path in self.mounts.drain(..).rev() {
            note(unmount(&path));
        }
        for path in std::mem::take(&mut self.plain_dirs) {
            note(remove_all(&path));
        }
        if let Some(mut memory) = self.memory.take() {
            note(memory.release());
        }
        first.map_or(Ok(()), Err)
    }

    /// Where `path`, or a path inside it, given to [`enter_with`] is reachable now: under
    /// [`RUNTIME_DIR`] if the app's mounts hide its host path, else `path` itself.
    pub fn runtime_path(&self, path: &Path) -> PathBuf {
        for (given, canonical, target) in &self.kept {
            for base in [given, canonical] {
                if let Ok(rest) = path.strip_prefix(base) {
                    return if rest.as_os_str().is_empty() {
                        target.clone()
                    } else {
                        target.join(rest)
                    };
                }
            }
        }
        path.to_path_buf()
    }

    /// The app's directories.
    pub fn paths(&self) -> &AppPaths {
        &self.paths
    }

    /// The app's environment variables (also exported into this process by [`enter`]).
    pub fn env(&self) -> Vec<(String, String)> {
        self.paths.env()
    }

    /// Whether the seeds' real paths are in use, or the fallback directories (and why).
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Which memory limit is in force.
    pub fn memory_limit(&self) -> &MemoryLimit {
        match &self.memory {
            Some(m) => &m.limit,
            None => &RELEASED,
        }
    }

    /// Size of `$TMP_PATH` in bytes (a quarter of the enclave size; not enforced in the
    /// fallback, where it is a plain directory).
    pub fn tmp_size_bytes(&self) -> u64 {
        self.tmp_bytes
    }

    /// Memory left to the app: the enclave size (at most the machine's memory) minus what the
    /// runtime holds resident now. Called after the app is imported it is the figure the app
    /// really has, as the original's `mse-memory` reported (size minus the runtime's libraries).
    pub fn effective_memory_mb(&self) -> u64 {
        let ceiling = memory::mem_total_bytes().map_or(self.size_bytes, |t| t.min(self.size_bytes));
        ceiling.saturating_sub(memory::resident_bytes()) / MIB
    }

    /// Installs the seccomp filter on every thread of the process (irreversible): fork, vfork,
    /// execve, execveat and clone without CLONE_THREAD fail with EPERM, clone3 with ENOSYS; so
    /// do new mounts, namespaces, chroot, ptrace, module loading, device nodes and the other
    /// host-level calls of the hardening list. Call it after provisioning (and anything that
    /// needs exec or mount) and before Python is initialised.
    pub fn lock_down(&self) -> Result<(), SandboxError> {
        seccomp::install()?;
        tracing::info!(
            "sandbox: seccomp filter on all threads: fork, vfork, execve, execveat and clone \
             without CLONE_THREAD -> EPERM, clone3 -> ENOSYS; mount, namespaces, chroot, \
             ptrace, kernel modules, device nodes, clock and host name changes -> EPERM"
        );
        Ok(())
    }

    /// Python source to run once after the interpreter starts and before the app is imported:
    /// a PEP 578 audit hook that raises `PermissionError("<event> is not allowed inside the
    /// enclave: no fork, no subprocess")` for os.fork, os.forkpty, os.system, os.posix_spawn*,
    /// os.exec*, os.spawn*, subprocess.Popen (so os.popen too) and pty.spawn.
    pub fn python_startup_code() -> &'static str {
        include_str!("audit_hook.py")
    }

    /// Unmounts the sealed `$HOME` and wipes its backing, drops the tmpfs mounts (their content
    /// is gone with them) or deletes the fallback directories, and removes the cgroup.
    ///
    /// Call it once the app is done: files the app still holds open in `$HOME` are closed
    /// under it (they must be, or the process could never exit).
    pub fn stop(mut self) -> Result<(), SandboxError> {
        let result = self.tear_down();
        if result.is_ok() {
            tracing::info!("sandbox: stopped, sealed $HOME wiped");
        }
        result
    }
}

static RELEASED: MemoryLimit = MemoryLimit::RlimitOnly {
    reason: String::new(),
};

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.tear_down() {
            tracing::warn!("sandbox: tearing down on drop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_paths_are_the_seeds() {
        let env = AppPaths::real().env();
        let want = [
            ("HOME", "/root"),
            ("SECRETS_PATH", "/root/.cache/mse/secrets.json"),
            (
                "SEALED_SECRETS_PATH",
                "/root/.cache/mse/sealed_secrets.json",
            ),
            ("TMP_PATH", "/tmp"),
            ("MODULE_PATH", "/mse-app"),
            ("KEY_PATH", "/key"),
            ("TMPDIR", "/tmp"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn fallback_paths_are_named_after_the_variables() {
        let p = AppPaths::fallback(Path::new("/s"));
        assert_eq!(p.home, PathBuf::from("/s/HOME"));
        assert_eq!(
            p.secrets_path,
            PathBuf::from("/s/HOME/.cache/mse/secrets.json")
        );
        assert_eq!(p.tmp_path, PathBuf::from("/s/TMP_PATH"));
        assert_eq!(p.module_path, PathBuf::from("/s/MODULE_PATH"));
        assert_eq!(p.key_path, PathBuf::from("/s/KEY_PATH"));
    }

    #[test]
    fn size_is_checked_first() {
        let cfg = SandboxConfig {
            size_mb: 1,
            home_key: [7; 32],
            state_dir: "/nonexistent/never-created".into(),
        };
        let err = enter(&cfg).expect_err("too small");
        assert_eq!(
            err.to_string(),
            "enclave size must be between 128 and 16777216 MB, got 1 MB"
        );
        assert!(!Path::new("/nonexistent").exists());
    }

    #[test]
    fn config_debug_hides_the_key() {
        let cfg = SandboxConfig {
            size_mb: 1,
            home_key: [0xab; 32],
            state_dir: "/s".into(),
        };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn procfs_parsers_survive_garbage() {
        for text in [
            "",
            " - ",
            "1 2 3 - cgroup",
            "a b c d e f - cgroup2 x y\n0::",
            "\\\\\\ - cgroup cgroup \\777",
            "::::\n0::/a\n1:memory,cpu:/b",
            "x x x /r /m - cgroup2 c o\n",
        ] {
            fuzzing::procfs(text);
        }
    }

    #[test]
    fn startup_code_names_the_limitation() {
        let code = Sandbox::python_startup_code();
        assert!(code.contains("is not allowed inside the enclave: no fork, no subprocess"));
        assert!(code.contains("sys.addaudithook"));
    }
}

/// Entry point for `fuzz/fuzz_targets/sandbox_procfs.rs`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the /proc/self/mountinfo and /proc/self/cgroup parsers on arbitrary text; must
    /// never panic.
    pub fn procfs(text: &str) {
        for mount in crate::memory::cgroup_mounts(text) {
            let _ = crate::memory::group_dir(&mount, text);
        }
        let _ = crate::memory::own_groups(text);
    }
}
