//! A small pool of OS threads that stay attached to the interpreter for their whole life and
//! release the GIL only while waiting for work (no thread state created per request).
//!
//! Waking policy: a new job wakes an idle thread at once only when no pool thread is running a
//! job. Otherwise the running thread takes it next (no GIL hand-off, no context switch); a monitor
//! wakes an idle thread only when jobs wait and no pool thread has started or finished a job for
//! `SPARE_DELAY` (the running ones are then blocked in I/O with the GIL released, or slow). With
//! a CPU-bound app this avoids threads fighting for the GIL; with an I/O-bound one spares overlap.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::Python;

use crate::error::Error;
use crate::response::Deferred;
use crate::sched::{self, OnPark};

pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

const SPARE_DELAY: Duration = Duration::from_millis(1);

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    idle: usize,
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
            idle: 0,
            busy: 0,
            woken: 0,
            monitor_parked: false,
            last_progress: Instant::now(),
        }
    }
}

struct Inner {
    queue: Mutex<Queue>,
    /// Complete responses the pool threads hold back until they run out of queued work.
    deferred: Arc<Deferred>,
    /// Idle pool threads wait here.
    work: Condvar,
    /// The monitor waits here.
    monitor: Condvar,
}

/// Most complete responses a pool thread holds back (see `Deferred`). A batch costs one wake-up
/// of the I/O side however large, and the longer each side runs alone the warmer its caches:
/// 16 against 4 halved Flask's context switches, 64 against 16 gave Flask 7% (bench/RESULTS.md).
/// It adds no wait at low load: the batch goes out as soon as the pool has no queued job.
const MAX_DEFERRED: usize = 64;

/// Jobs an I/O thread queues before it wakes a pool thread without waiting to park.
const MAX_QUEUED_UNTIL_PARK: usize = 64;

impl OnPark for Inner {
    fn on_park(&self) {
        let mut q = self.lock();
        if !q.jobs.is_empty() {
            self.wake(&mut q);
        }
    }
}

impl Inner {
    /// Wakes an idle thread if no pool thread is running a job (the running one takes the
    /// queued jobs next), and the monitor if it sleeps without a timeout.
    fn wake(&self, q: &mut Queue) {
        if q.idle > 0 && q.busy + q.woken == 0 {
            q.woken += 1;
            self.work.notify_one();
        }
        if q.monitor_parked {
            q.monitor_parked = false;
            self.monitor.notify_one();
        }
    }

    fn new() -> Self {
        let deferred = Deferred::new(MAX_DEFERRED);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            deferred.set_runtime(rt);
        }
        Self {
            queue: Default::default(),
            deferred: Arc::new(deferred),
            work: Condvar::new(),
            monitor: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct PythonPool {
    inner: Arc<Inner>,
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn worker(py: Python<'_>, inner: &Inner) {
    Deferred::install(inner.deferred.clone());
    loop {
        // Take queued work without giving up the GIL.
        let job = {
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
            // Nothing queued: wait with the GIL released.
            None => match py.detach(|| wait_for_job(inner)) {
                Some(job) => job,
                None => return,
            },
        };
        job(py);
        let idle = {
            let mut q = inner.lock();
            q.busy -= 1;
            q.last_progress = Instant::now();
            q.jobs.is_empty()
        };
        // No more queued work: hand over the responses held so far (one wake-up for all).
        if idle {
            inner.deferred.flush();
        }
    }
}

fn wait_for_job(inner: &Inner) -> Option<Job> {
    let mut q = inner.lock();
    q.idle += 1;
    loop {
        if let Some(job) = q.jobs.pop_front() {
            q.idle -= 1;
            q.busy += 1;
            q.last_progress = Instant::now();
            return Some(job);
        }
        if q.closed {
            q.idle -= 1;
            return None;
        }
        q = inner.work.wait(q).unwrap_or_else(|p| p.into_inner());
        q.woken = q.woken.saturating_sub(1);
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
        // A response held behind a slow request goes out after one tick at most.
        inner.deferred.flush_older_than(SPARE_DELAY);
        // Jobs are waiting and no pool thread has made progress for a while: the running ones
        // are blocked (I/O with the GIL released, or a slow request), so let a spare help.
        if q.idle > q.woken && !q.jobs.is_empty() && q.last_progress.elapsed() >= SPARE_DELAY {
            q.woken += 1;
            inner.work.notify_one();
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
        let inner = Arc::new(Inner::new());
        let mut handles = Vec::with_capacity(threads + 1);
        for i in 0..threads {
            let inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mse-python-{i}"))
                .spawn(move || Python::attach(|py| worker(py, &inner)))
                .map_err(Error::Thread)?;
            handles.push(handle);
        }
        {
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

    /// Queues a job; false if the pool is shut down. On an I/O thread with the park hook
    /// (`sched::at_park`) an idle pool thread is woken when that thread runs out of ready
    /// connections, with every job it queued meanwhile: woken at once, the Python thread would
    /// preempt the I/O thread on a shared CPU after the first.
    pub fn submit(&self, job: Job) -> bool {
        let mut q = self.inner.lock();
        if q.closed {
            return false;
        }
        q.jobs.push_back(job);
        if q.jobs.len() == 1 {
            let hook: Arc<dyn OnPark> = self.inner.clone();
            if !sched::at_park(&hook) {
                self.inner.wake(&mut q);
            }
        } else if q.jobs.len() >= MAX_QUEUED_UNTIL_PARK {
            self.inner.wake(&mut q);
        }
        true
    }

    /// Stops accepting jobs and waits for the threads to finish what is queued.
    pub fn shutdown(&self) {
        {
            let mut q = self.inner.lock();
            q.closed = true;
        }
        self.inner.work.notify_all();
        self.inner.monitor.notify_all();
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}
