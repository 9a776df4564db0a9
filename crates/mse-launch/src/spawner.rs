//! The one thread that forks every child a launcher starts (enclave processes, QEMU guests), so
//! that no child outlives the launcher's process, even one killed with SIGKILL.
//!
//! Each child asks, between fork and exec, for SIGKILL when its parent dies
//! (`PR_SET_PDEATHSIG`, kept across exec). The kernel sends it when the *thread* that forked the
//! child exits, not the process, and tokio retires its worker and blocking threads at will: so
//! every child is forked by this one thread, which lives as long as the process. Requests carry
//! the caller's runtime handle (tokio reaps a child in the runtime it was spawned in), so one
//! thread serves every runtime.

use std::io;
use std::sync::OnceLock;
use std::sync::mpsc;

use rustix::process::Signal;
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

type Request = (Command, Handle, oneshot::Sender<io::Result<Child>>);

/// Starts `cmd` from the spawner thread; the child is SIGKILLed when this process ends. Must be
/// awaited inside the tokio runtime that will supervise the child.
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Child> {
    die_with_this_process(cmd.as_std_mut());
    let (tx, rx) = oneshot::channel();
    thread()
        .send((cmd, Handle::current(), tx))
        .map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

fn gone() -> io::Error {
    io::Error::other("the spawner thread is gone")
}

/// The spawner thread's queue, the thread started at the first call.
fn thread() -> &'static mpsc::Sender<Request> {
    static SENDER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("mse-launch-spawner".into())
            .spawn(move || {
                // The sender is in a static: this loop, and the thread, never end.
                while let Ok((mut cmd, runtime, reply)) = rx.recv() {
                    // tokio registers the child with its SIGCHLD reaper in the current runtime.
                    let _guard = runtime.enter();
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = started {
            // `rx` is dropped: every spawn then fails with "the spawner thread is gone".
            eprintln!("mse-launch: cannot start the spawner thread: {e}");
        }
        tx
    })
}

/// Makes the child ask for SIGKILL when this process dies, and give up (exec nothing) if it
/// already has: a death between fork and `prctl` would send no signal. Also for a short-lived
/// child that the forking thread waits for itself (that thread then outlives it).
pub(crate) fn die_with_this_process(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    let launcher = rustix::process::getpid();
    let before_exec = move || -> io::Result<()> {
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
        if rustix::process::getppid() != Some(launcher) {
            // Reparented: the launcher is gone. The spawn fails and the child exits.
            return Err(rustix::io::Errno::SRCH.into());
        }
        Ok(())
    };
    // SAFETY: `before_exec` runs in the forked child, where only async-signal-safe calls are
    // sound: it makes two raw syscalls (prctl, getppid) through rustix, takes no lock and
    // allocates nothing (an errno converts to an io::Error without allocating).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(before_exec);
    }
}
