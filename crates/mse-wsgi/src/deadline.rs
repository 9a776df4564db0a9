//! The request-head deadline of HTTP/1 connections, kept without a timer per request.
//!
//! hyper's `header_read_timeout` arms a fresh tokio timer for every request head, and inserting
//! it wakes the I/O driver through its eventfd: about 0.6 extra `write` syscalls and epoll
//! wake-ups per request under load (bench/RESULTS.md). Here a connection only records when it
//! became idle (nothing in flight), two atomic updates per request, and one sweeper task per
//! server closes the connections idle for longer than the deadline, once per tick. The deadline
//! covers what hyper's did: the wait for the first head, a head trickled in, and an idle
//! keep-alive connection; a request in flight (however slow the app) is never cut. HTTP/2
//! connections are exempt (their requests are streams; idle HTTP/2 is not a slot held per head).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

/// The sweeper's period for a deadline: fine enough that a connection is closed within a
/// quarter of the deadline past it, at most once a second.
fn tick(deadline: Duration) -> Duration {
    (deadline / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Every connection's watch, and the sweeper that expires them.
pub(crate) struct Deadlines {
    deadline: Duration,
    epoch: Instant,
    watches: Mutex<Vec<Weak<Watch>>>,
}

impl Deadlines {
    pub(crate) fn new(deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            deadline,
            epoch: Instant::now(),
            watches: Mutex::new(Vec::new()),
        })
    }

    /// A watch for a new connection, idle from now.
    pub(crate) fn watch(self: &Arc<Self>) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            epoch: self.epoch,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(millis_since(self.epoch)),
            exempt: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        self.lock().push(Arc::downgrade(&watch));
        watch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Watch>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expires the connections idle past the deadline and forgets the closed ones.
    fn sweep(&self) {
        self.sweep_at(millis_since(self.epoch));
    }

    /// `sweep` as of `now` (milliseconds since the epoch).
    fn sweep_at(&self, now: u64) {
        let limit = self.deadline.as_millis() as u64;
        self.lock().retain(|weak| {
            let Some(watch) = weak.upgrade() else {
                return false;
            };
            if watch.in_flight.load(Ordering::Acquire) == 0
                && !watch.exempt.load(Ordering::Relaxed)
                && now.saturating_sub(watch.idle_since.load(Ordering::Acquire)) >= limit
            {
                watch.expire();
                return false;
            }
            true
        });
    }

    /// Sweeps every tick until the task is dropped (the server's end).
    pub(crate) async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(tick(self.deadline));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.sweep();
        }
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// One connection's state as the sweeper sees it.
pub(crate) struct Watch {
    epoch: Instant,
    in_flight: AtomicU32,
    /// Milliseconds since the epoch when the connection last had nothing in flight.
    idle_since: AtomicU64,
    /// HTTP/2: no head deadline.
    exempt: AtomicBool,
    expired: AtomicBool,
    /// The connection task while it waits to read.
    waker: AtomicWaker,
}

impl Watch {
    /// A request head arrived: the connection is busy until the returned guard drops (when
    /// the response is written, or the request is abandoned).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// This connection speaks HTTP/2: the sweeper leaves it alone.
    pub(crate) fn exempt(&self) {
        self.exempt.store(true, Ordering::Relaxed);
    }

    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    /// Wakes `waker` when the deadline passes (the reader then sees `expired`).
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Held while a request is in flight on its connection.
pub(crate) struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let watch = &self.0;
        // Idle from now if this was the last one (HTTP/1 has one at a time).
        watch
            .idle_since
            .store(millis_since(watch.epoch), Ordering::Release);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_idle_connection_past_the_deadline_expires() {
        let deadlines = Deadlines::new(Duration::from_secs(10));
        let idle = deadlines.watch();
        let busy = deadlines.watch();
        let h2 = deadlines.watch();
        h2.exempt();
        let guard = busy.begin();
        let opened = idle.idle_since.load(Ordering::Acquire);
        deadlines.sweep_at(opened + 9_999);
        assert!(!idle.expired(), "not before the deadline");
        deadlines.sweep_at(opened + 10_000);
        assert!(idle.expired());
        assert!(!busy.expired(), "a request in flight is never cut");
        assert!(!h2.expired(), "HTTP/2 is exempt");
        drop(guard);
        let ended = busy.idle_since.load(Ordering::Acquire);
        deadlines.sweep_at(ended + 9_999);
        assert!(!busy.expired(), "idle only from the end of its request");
        assert_eq!(deadlines.lock().len(), 2, "the expired watch is forgotten");
        drop((busy, h2));
        deadlines.sweep();
        assert_eq!(
            deadlines.lock().len(),
            0,
            "closed connections are forgotten"
        );
    }
}
