//! Scheduling of the I/O threads relative to the Python threads.
//!
//! Every response a Python thread finishes wakes a tokio worker. On a CPU the two share (one
//! vCPU, or the benchmark's pinning), the kernel lets the woken worker preempt the Python thread
//! at once, so a saturated server pays about two context switches per request. An I/O thread
//! under `SCHED_BATCH` (same CPU share, unprivileged) does not preempt on wake-up: it runs when
//! the Python thread blocks or its time slice ends, and then handles every ready connection in
//! one go. The added delay is bounded by the kernel's slice (a few ms) and only happens while the
//! CPU is busy; on an idle CPU the thread runs immediately. Opt-in ([`runtime`], `--batch-io`):
//! when other processes compete for the CPU, a woken batch thread waits behind them too.
//! The pool's monitor thread always runs as batch: its periodic check can wait.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::Arc;

/// Work an I/O thread postpones until it has no ready task left (it is about to park).
pub(crate) trait OnPark: Send + Sync {
    fn on_park(&self);
}

thread_local! {
    /// This thread has run the park hook of a runtime built by [`runtime`], so it will again
    /// (a runtime worker; the blocking-pool threads never park this way).
    static HOOKED: Cell<bool> = const { Cell::new(false) };
    static AT_PARK: RefCell<Vec<Arc<dyn OnPark>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hook` once when this thread next parks. False on a thread without the park hook (a
/// runtime not built by [`runtime`], or not a runtime worker): the caller must act now.
pub(crate) fn at_park(hook: &Arc<dyn OnPark>) -> bool {
    if !HOOKED.get() {
        return false;
    }
    AT_PARK.with_borrow_mut(|hooks| {
        if !hooks.iter().any(|h| Arc::ptr_eq(h, hook)) {
            hooks.push(hook.clone());
        }
    });
    true
}

/// The park hook of [`runtime`]'s workers: a runtime built elsewhere gets the batched hand-over
/// to the Python side with `.on_thread_park(mse_wsgi::park_hook)` (without it, every request
/// wakes the Python side at once).
pub fn park_hook() {
    HOOKED.set(true);
    // Taken out first: a hook may register again.
    let hooks = AT_PARK.with_borrow_mut(std::mem::take);
    for h in hooks {
        h.on_park();
    }
}

/// Marks the calling thread as a batch (non-preempting) thread. Linux only; elsewhere, or where
/// the kernel refuses (a sandbox), the thread keeps its policy and the reason is logged.
pub fn batch_current_thread() {
    if let Err(e) = set_batch() {
        tracing::debug!("SCHED_BATCH not set for this thread: {e}");
    }
}

#[cfg(target_os = "linux")]
fn set_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` with pid 0 changes only the calling thread's policy; `param`
    // is a valid, initialised struct that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The tokio runtime for [`crate::Server::serve`]: multi-threaded (one worker per CPU), I/O and
/// timers enabled; with `batch_io` every runtime thread runs under `SCHED_BATCH` (see the module
/// doc). Callers building their own runtime get the same with
/// `.on_thread_start(mse_wsgi::batch_current_thread)`.
///
/// Its workers hand requests to the ASGI event loop once per batch: the loop is woken when the
/// worker has no ready connection left (its park hook), not per request, so on a shared CPU the
/// woken loop does not preempt the worker halfway through the ready connections (about two
/// context switches per batch instead of per request). On another runtime every request wakes
/// the loop.
///
/// Batch I/O threads pay off when the server has its CPUs to itself (an enclave): fewer context
/// switches per request. When other processes compete for the same CPU they lose throughput,
/// because a woken I/O thread then also waits behind those processes (bench/RESULTS.md).
pub fn runtime(batch_io: bool) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if batch_io {
        builder.on_thread_start(batch_current_thread);
    }
    builder.on_thread_park(park_hook);
    builder.build()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn policy() -> i32 {
        // SAFETY: querying the calling thread's policy has no preconditions.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn runtime_threads_run_as_batch_only_when_asked() {
        let rt = super::runtime(true).expect("runtime");
        let on_worker =
            rt.block_on(async { tokio::spawn(async { policy() }).await.expect("task") });
        assert_eq!(on_worker, libc::SCHED_BATCH);
        let on_blocking =
            rt.block_on(async { tokio::task::spawn_blocking(policy).await.expect("task") });
        assert_eq!(on_blocking, libc::SCHED_BATCH);
        assert_eq!(
            policy(),
            libc::SCHED_OTHER,
            "the calling thread is left alone"
        );
    }

    struct Count(std::sync::atomic::AtomicUsize);

    impl super::OnPark for Count {
        fn on_park(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_worker_runs_the_park_hook_once_when_it_idles() {
        use std::sync::Arc;
        use std::sync::atomic::Ordering::SeqCst;
        let rt = super::runtime(false).expect("runtime");
        let count = Arc::new(Count(Default::default()));
        let hook: Arc<dyn super::OnPark> = count.clone();
        let (task_hook, task_count) = (hook.clone(), count.clone());
        let (registered, during_task) = rt.block_on(async move {
            tokio::spawn(async move {
                // After a wait the worker has parked at least once (it has the hook).
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let registered = super::at_park(&task_hook) && super::at_park(&task_hook);
                (registered, task_count.0.load(SeqCst))
            })
            .await
            .expect("task")
        });
        assert!(registered);
        assert_eq!(during_task, 0, "not before the worker runs out of tasks");
        while count.0.load(SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            count.0.load(SeqCst),
            1,
            "once, however often it was registered"
        );
        assert!(
            !super::at_park(&hook),
            "a thread that is no runtime worker must act at once"
        );
    }
}
