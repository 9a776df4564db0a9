//! A small pool of OS threads that stay attached to the interpreter for their whole life and
//! release the GIL only while waiting for work (no thread state created per request).
//!
//! Waking policy: a new job wakes an idle thread at once only when no pool thread is running a
//! job. Otherwise the running thread takes it next (no GIL hand-off, no context switch); a monitor
//! wakes an idle thread only when jobs wait and no pool thread has started or finished a job for
//! `SPARE_DELAY` (the running ones are then blocked in I/O with the GIL released, or slow). With
//! a CPU-bound app this avoids threads fighting for the GIL; with an I/O-bound one spares overlap.
//! A spare that then has to wait for the GIL (the others were running Python after all, e.g. only
//! preempted by another process) runs one job and goes back to idle.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::Python;

use crate::error::Error;

pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

const SPARE_DELAY: Duration = Duration::from_millis(1);
/// Getting the GIL back after a wait takes microseconds when it is free; this long means
/// another pool thread was running Python.
const GIL_CONTENDED: Duration = Duration::from_micros(500);

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Idle threads, the most recently idle last: that one is woken first (its stack and
    /// Python frames are still in cache; a FIFO wake-up would rotate through every thread).
    idle: Vec<usize>,
    busy: usize,
    /// Idle threads notified but not yet running: counted so that a burst of submissions wakes
    /// one thread, not one per job.
    woken: usize,
    /// The monitor sleeps without a timeout (nothing to watch) and must be notified.
    monitor_parked: bool,
    /// When a pool thread last started or finished a job.
    last_progress: Instant,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            closed: false,
            idle: Vec::new(),
            busy: 0,
            woken: 0,
            monitor_parked: false,
            last_progress: Instant::now(),
        }
    }
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    /// Each pool thread waits on its own condition variable while idle.
    work: Vec<Condvar>,
    /// The monitor waits here.
    monitor: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the most recently idle thread, if any.
    fn wake_one(&self, q: &mut Queue) {
        if let Some(i) = q.idle.pop() {
            q.woken += 1;
            self.work[i].notify_one();
        }
    }
}

pub struct PythonPool {
    inner: Arc<Inner>,
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn worker(py: Python<'_>, inner: &Inner, me: usize) {
    // Set when this thread, woken as a spare, then had to wait for the GIL: the threads it was
    // meant to cover for were running Python, not blocked. It runs its job and goes back to
    // idle, so that a CPU-bound load stays on one thread (hot caches, no GIL hand-offs).
    let mut surplus = false;
    loop {
        // Take queued work without giving up the GIL.
        let job = if surplus {
            None
        } else {
            let mut q = inner.lock();
            let job = q.jobs.pop_front();
            if job.is_some() {
                q.busy += 1;
                q.last_progress = Instant::now();
            }
            job
        };
        let job = match job {
            Some(job) => job,
            // Nothing queued (or surplus): wait with the GIL released.
            None => match py.detach(|| wait_for_job(inner, me, surplus)) {
                Some((job, got_job)) => {
                    surplus = got_job.elapsed() >= GIL_CONTENDED;
                    job
                }
                None => return,
            },
        };
        job(py);
        let mut q = inner.lock();
        q.busy -= 1;
        q.last_progress = Instant::now();
        surplus &= q.busy > 0;
    }
}

/// Waits for a job (with the GIL released); returns it and when it was taken. A `surplus`
/// thread first waits to be woken instead of taking queued work.
fn wait_for_job(inner: &Inner, me: usize, surplus: bool) -> Option<(Job, Instant)> {
    let mut q = inner.lock();
    let mut must_wait = surplus;
    loop {
        if !must_wait && let Some(job) = q.jobs.pop_front() {
            q.busy += 1;
            q.last_progress = Instant::now();
            return Some((job, Instant::now()));
        }
        if q.closed {
            return None;
        }
        q.idle.push(me);
        q = inner.work[me].wait(q).unwrap_or_else(|p| p.into_inner());
        match q.idle.iter().position(|&i| i == me) {
            // A spurious wake-up: still listed as idle.
            Some(pos) => {
                q.idle.remove(pos);
            }
            None => q.woken = q.woken.saturating_sub(1),
        }
        must_wait = false;
    }
}

/// Ticks every `SPARE_DELAY` while the pool is working (not once per job: that would cost a
/// context switch per request) and wakes an idle thread when the pool stopped making progress.
fn monitor(inner: &Inner) {
    let mut q = inner.lock();
    loop {
        if q.closed {
            return;
        }
        // Jobs are waiting and no pool thread has made progress for a while: the running ones
        // are blocked (I/O with the GIL released, or a slow request), so let a spare help.
        if !q.idle.is_empty() && !q.jobs.is_empty() && q.last_progress.elapsed() >= SPARE_DELAY {
            inner.wake_one(&mut q);
        }
        q = if q.busy > 0 || !q.jobs.is_empty() {
            inner
                .monitor
                .wait_timeout(q, SPARE_DELAY)
                .unwrap_or_else(|p| p.into_inner())
                .0
        } else {
            q.monitor_parked = true;
            let mut q = inner.monitor.wait(q).unwrap_or_else(|p| p.into_inner());
            q.monitor_parked = false;
            q
        };
    }
}

impl PythonPool {
    pub fn start(threads: usize) -> Result<Self, Error> {
        if !(1..=256).contains(&threads) {
            return Err(Error::Threads(threads));
        }
        let inner = Arc::new(Inner {
            work: (0..threads).map(|_| Condvar::new()).collect(),
            ..Inner::default()
        });
        let mut handles = Vec::with_capacity(threads + 1);
        for i in 0..threads {
            let inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mse-python-{i}"))
                .spawn(move || Python::attach(|py| worker(py, &inner, i)))
                .map_err(Error::Thread)?;
            handles.push(handle);
        }
        if threads > 1 {
            let inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name("mse-python-monitor".into())
                .spawn(move || {
                    // Its periodic check must not preempt a busy Python thread (see sched.rs).
                    crate::sched::batch_current_thread();
                    monitor(&inner)
                })
                .map_err(Error::Thread)?;
            handles.push(handle);
        }
        Ok(Self {
            inner,
            handles: Mutex::new(handles),
        })
    }

    /// Queues a job; false if the pool is shut down.
    pub fn submit(&self, job: Job) -> bool {
        let mut q = self.inner.lock();
        if q.closed {
            return false;
        }
        q.jobs.push_back(job);
        if q.busy + q.woken == 0 {
            self.inner.wake_one(&mut q);
        }
        if q.monitor_parked {
            q.monitor_parked = false;
            self.inner.monitor.notify_one();
        }
        true
    }

    /// Stops accepting jobs and waits for the threads to finish what is queued.
    pub fn shutdown(&self) {
        {
            let mut q = self.inner.lock();
            q.closed = true;
        }
        for c in &self.inner.work {
            c.notify_all();
        }
        self.inner.monitor.notify_all();
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}
