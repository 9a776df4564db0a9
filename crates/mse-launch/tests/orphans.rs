//! No launched child outlives its launcher: a launcher in a child process (this test binary
//! re-executed) starts a stand-in enclave or QEMU that only sleeps, is killed with SIGKILL, and
//! the stand-in must be gone soon after. The stand-ins ask for nothing themselves (the real
//! `mse-enclave` also asks for the parent-death signal; QEMU does not): only the launchers'
//! shared spawner makes them end.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mse_launch::vm::qemu::Accel;
use mse_launch::vm::{VmConfig, VmLauncher};
use mse_launch::{
    Digest32, LaunchInputs, LaunchSpec, Launcher, OutputSink, PackageRef, ProcessLauncher,
};

/// Which launcher the re-executed test runs, and in which directory.
const KIND_VAR: &str = "MSE_ORPHAN_TEST_LAUNCHER";
const DIR_VAR: &str = "MSE_ORPHAN_TEST_DIR";
/// What the launcher process prints once its child runs (after libtest's "test NAME ... ").
const LAUNCHED: &str = "launched pid ";

struct Discard;

impl OutputSink for Discard {
    fn output(&self, _: &[u8]) {}
    fn note(&self, _: &str) {}
}

/// An executable `name` in `dir`: `qemu-system-x86_64 --version` for a stand-in QEMU, otherwise
/// a sleep that is the launched process itself (`exec`). An existing `name` is kept.
fn stand_in(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    if !path.exists() {
        std::fs::write(
            &path,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'QEMU emulator version 10.0.0'; exit 0; }\nexec sleep 600\n",
        )
        .unwrap();
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn inputs(dir: &Path) -> LaunchInputs {
    std::fs::create_dir_all(dir.join("venv")).unwrap();
    std::fs::write(dir.join("seed"), [1u8; 32]).unwrap();
    LaunchInputs {
        package: dir.join("app.tar"),
        environment: dir.join("venv"),
        owner_certificate: None,
        host: "127.0.0.1".into(),
        port: mse_testkit::free_port(),
        state_dir: dir.join("state"),
        sim_seed: Some(dir.join("seed")),
        config_timeout_secs: None,
    }
}

/// A VM launcher of the stand-in QEMU, with an image of empty kernel and initrd files.
fn vm_launcher(dir: &Path) -> VmLauncher {
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::write(
        image.join("image.json"),
        r#"{"cmdline": "mse.spec={spec}"}"#,
    )
    .unwrap();
    std::fs::write(image.join("vmlinuz"), b"").unwrap();
    std::fs::write(image.join("initrd.img"), b"").unwrap();
    let mut config = VmConfig::new(image);
    config.qemu = stand_in(dir, "qemu");
    config.accel = Some(Accel::Tcg);
    VmLauncher::new(config).unwrap()
}

/// The launcher process: launches one stand-in, prints its pid, then waits to be killed.
#[test]
#[ignore = "run in a child process by launched_children_die_with_their_launcher"]
fn launcher_process() {
    let kind = std::env::var(KIND_VAR).unwrap();
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).unwrap());
    let inputs = inputs(&dir);
    let package = b"package".as_slice();
    std::fs::write(&inputs.package, package).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    if kind == "vm-version" {
        // A QEMU that never answers `--version`: the launcher's constructor waits for it on this
        // thread, so another one reports the child.
        std::thread::spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                    let children = std::fs::read_to_string(task.path().join("children"));
                    if let Some(pid) = children.unwrap_or_default().split_whitespace().next() {
                        println!("{LAUNCHED}{pid}");
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::fs::write(dir.join("qemu"), "#!/bin/sh\nexec sleep 600\n").unwrap();
        let _ = vm_launcher(&dir);
        unreachable!("the stand-in QEMU answered --version");
    }
    let launcher: Box<dyn Launcher> = match kind.as_str() {
        "process" => Box::new(ProcessLauncher::new(stand_in(&dir, "enclave"))),
        "vm" => Box::new(vm_launcher(&dir)),
        other => panic!("no launcher {other:?}"),
    };
    let spec = LaunchSpec {
        package: PackageRef {
            sha256: Digest32::of(package),
            size: package.len() as u64,
        },
        runtime: launcher.runtime().unwrap(),
        ..LaunchSpec::example()
    };
    // Launched from a thread that then exits (as tokio's threads do): the child must not end
    // with it (the parent-death signal follows the thread that forked, not its process).
    let handle = runtime.handle().clone();
    let (instance, thread) = std::thread::scope(|s| {
        s.spawn(|| {
            let instance = handle
                .block_on(launcher.launch(&spec, &inputs, Arc::new(Discard)))
                .unwrap();
            (instance, rustix::thread::gettid())
        })
        .join()
        .unwrap()
    });
    // Once the thread is released, any signal its exit sent has been sent.
    let task = format!("/proc/self/task/{}", thread.as_raw_nonzero());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&task).exists() {
        assert!(Instant::now() < deadline, "{task} still exists after 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("{LAUNCHED}{}", instance.pid().unwrap());
    runtime.block_on(std::future::pending::<()>());
}

/// The start time of process `pid` (field 22 of its stat) while it lives: `None` once it is
/// gone, a zombie (a container's init may never reap it) or has a SIGKILL pending.
fn alive_since(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let sigkill_pending = status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .any(|mask| u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & (1 << 8) != 0));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    (!sigkill_pending && !matches!(fields.first(), Some(&"Z" | &"X")))
        .then(|| fields.get(19)?.parse().ok())
        .flatten()
}

/// The launcher process, SIGKILLed and reaped when dropped (also when a check fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Both launchers, the same check: the stand-in outlives the thread that launched it but not
/// the launcher's process; and the VM launcher's own `qemu --version` (and KVM probe), run and
/// waited for while it is built, do not outlive it either.
#[test]
fn launched_children_die_with_their_launcher() {
    for kind in ["process", "vm", "vm-version"] {
        let dir = tempfile::tempdir().unwrap();
        let mut launcher = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "launcher_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(KIND_VAR, kind)
                .env(DIR_VAR, dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let pid: u32 = BufReader::new(launcher.0.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find_map(|l| Some(l.split_once(LAUNCHED)?.1.parse().unwrap()))
            .unwrap_or_else(|| panic!("{kind}: the launcher process launched nothing"));
        let started = alive_since(pid).unwrap_or_else(|| {
            panic!("{kind}: the stand-in ended with the thread that launched it")
        });
        drop(launcher);
        // Generous for a loaded machine; the SIGKILL is sent as the launcher dies.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive_since(pid) == Some(started) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive_since(pid) == Some(started) {
            mse_launch::process::signal(pid, rustix::process::Signal::KILL);
            panic!("{kind}: the launched stand-in (pid {pid}) outlived its launcher by 10 s");
        }
    }
}
