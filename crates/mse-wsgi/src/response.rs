//! What the Python side sends back to hyper: a head then body chunks through a bounded channel
//! (backpressure: a slow client blocks the producing Python thread, with the GIL released), and
//! the response body type that logs the access line once the body is finished or dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use pyo3::Python;
use tokio::sync::{mpsc, oneshot};

use crate::deadline::InFlight;

/// Chunks buffered between a Python thread and the connection (like Granian's 4).
pub const CHANNEL_CAPACITY: usize = 4;

pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// The first (and for most requests the only) message of a response, sent through a oneshot so
/// that a complete response costs no channel allocation.
pub enum First {
    /// Status and headers; the body follows through the receiver.
    Head(u16, Headers, mpsc::Receiver<Out>),
    /// A complete response.
    Full(u16, Headers, Bytes),
}

/// Body messages of a streamed response; the stream ends when the sender is dropped.
pub enum Out {
    Chunk(Bytes),
    /// The app failed after the head was sent: abort the stream (the client sees a truncated body).
    Abort,
}

/// Request-body problems found while the app reads it; they override the app's response.
#[derive(Default)]
pub struct BodyFlags {
    pub too_large: AtomicBool,
    pub invalid: AtomicBool,
}

/// Complete responses held back by a Python thread and handed to the connections together: each
/// hand-over wakes the I/O thread, which on a shared CPU preempts the Python thread (two context
/// switches per request); a batch pays that once. Whoever installed the batch on a thread
/// (`Deferred::install`) flushes it when that thread runs out of queued work, and the pool's
/// monitor flushes responses held longer than its tick, so no response waits behind a slow one.
pub struct Deferred {
    held: std::sync::Mutex<Vec<(oneshot::Sender<First>, First)>>,
    /// When the oldest held response was held, if any.
    since: std::sync::Mutex<Option<Instant>>,
    /// Most responses held at once; the next one flushes them all.
    max: usize,
    /// Where a batch is delivered (see `flush`).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

thread_local! {
    static DEFERRED: std::cell::RefCell<Option<Arc<Deferred>>> = const { std::cell::RefCell::new(None) };
}

impl Deferred {
    pub fn new(max: usize) -> Self {
        Self {
            held: Default::default(),
            since: Default::default(),
            max,
            runtime: Default::default(),
        }
    }

    /// Batches are delivered by one task on `handle` from now on.
    pub fn set_runtime(&self, handle: tokio::runtime::Handle) {
        let _ = self.runtime.set(handle);
    }

    /// Complete responses sent from this thread are held in `batch` from now on.
    pub fn install(batch: Arc<Deferred>) {
        DEFERRED.with(|d| *d.borrow_mut() = Some(batch));
    }

    fn push(&self, tx: oneshot::Sender<First>, msg: First) {
        let full = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_empty() {
                *self.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            }
            held.push((tx, msg));
            held.len() >= self.max
        };
        if full {
            self.flush();
        }
    }

    /// Hands every held response to its connection.
    pub fn flush(&self) {
        let held = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_empty() {
                return;
            }
            *self.since.lock().unwrap_or_else(|p| p.into_inner()) = None;
            std::mem::take(&mut *held)
        };
        let deliver = move || {
            for (tx, msg) in held {
                let _ = tx.send(msg);
            }
        };
        match self.runtime.get() {
            // One wake-up of the I/O side for the whole batch: sent one by one from here, the
            // first send would wake an I/O thread that preempts this one before the second.
            Some(rt) => drop(rt.spawn(async move { deliver() })),
            None => deliver(),
        }
    }

    /// Flushes if the oldest held response has waited at least `max`.
    pub fn flush_older_than(&self, max: std::time::Duration) {
        let old = self
            .since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() >= max);
        if old {
            self.flush();
        }
    }
}

/// Headers a WSGI/ASGI app must not set (hop-by-hop); hyper manages framing itself.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "transfer-encoding" | "keep-alive" | "upgrade" | "proxy-connection" | "te"
    )
}

pub fn text_response(status: u16, text: &'static str) -> First {
    let headers = vec![(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )];
    First::Full(status, headers, Bytes::from_static(text.as_bytes()))
}

/// The Python-thread end of a response.
pub struct Sink {
    first: Option<oneshot::Sender<First>>,
    tx: Option<mpsc::Sender<Out>>,
    head_sent: bool,
    flags: Arc<BodyFlags>,
}

impl Sink {
    pub fn new(first: oneshot::Sender<First>, flags: Arc<BodyFlags>) -> Self {
        Self {
            first: Some(first),
            tx: None,
            head_sent: false,
            flags,
        }
    }

    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    pub fn is_closed(&self) -> bool {
        match (&self.first, &self.tx) {
            (Some(first), _) => first.is_closed(),
            (None, Some(tx)) => tx.is_closed(),
            (None, None) => true,
        }
    }

    /// A request-body error replaces whatever the app answered.
    fn override_for_body(&self) -> Option<First> {
        if self.flags.too_large.load(Ordering::Relaxed) {
            Some(text_response(413, "Request Entity Too Large\n"))
        } else if self.flags.invalid.load(Ordering::Relaxed) {
            Some(text_response(400, "Bad Request\n"))
        } else {
            None
        }
    }

    fn send_first(&mut self, msg: First) -> bool {
        self.head_sent = true;
        let Some(first) = self.first.take() else {
            return false;
        };
        match msg {
            First::Full(..) => DEFERRED.with(|d| match d.borrow().as_ref() {
                Some(batch) => {
                    let alive = !first.is_closed();
                    batch.push(first, msg);
                    alive
                }
                None => first.send(msg).is_ok(),
            }),
            // A streamed response is never held back: its body follows through the channel.
            First::Head(..) => first.send(msg).is_ok(),
        }
    }

    fn blocking_send(&mut self, py: Python<'_>, msg: Out) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            return false;
        };
        // Fast path without releasing the GIL; otherwise wait for the client with it released.
        let msg = match tx.try_send(msg) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.tx = None;
                return false;
            }
            Err(mpsc::error::TrySendError::Full(m)) => m,
        };
        let ok = py.detach(|| tx.blocking_send(msg).is_ok());
        if !ok {
            self.tx = None;
        }
        ok
    }

    /// Sends the head (with the complete body when `full` is given). Returns false if the client
    /// is gone or a body error replaced the response.
    pub fn send_head(&mut self, status: u16, headers: Headers, full: Option<Bytes>) -> bool {
        if self.head_sent {
            return !self.is_closed();
        }
        if let Some(out) = self.override_for_body() {
            self.send_first(out);
            return false;
        }
        match full {
            Some(body) => self.send_first(First::Full(status, headers, body)),
            None => {
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                self.tx = Some(tx);
                let ok = self.send_first(First::Head(status, headers, rx));
                if !ok {
                    self.tx = None;
                }
                ok
            }
        }
    }

    pub fn send_chunk(&mut self, py: Python<'_>, chunk: Bytes) -> bool {
        if chunk.is_empty() {
            return !self.is_closed();
        }
        self.blocking_send(py, Out::Chunk(chunk))
    }

    /// Non-blocking send for the ASGI event loop: Ok(true) sent, Ok(false) channel full, Err closed.
    pub fn try_chunk(&mut self, chunk: &Bytes) -> Result<bool, ()> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(());
        };
        if chunk.is_empty() {
            return Ok(true);
        }
        match tx.try_send(Out::Chunk(chunk.clone())) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.tx = None;
                Err(())
            }
        }
    }

    /// Ends the body normally.
    pub fn finish(&mut self) {
        self.tx = None;
    }

    /// The app failed: 500 if nothing was sent yet, else abort the stream.
    pub fn fail(&mut self, py: Python<'_>) {
        if !self.head_sent {
            let out = self
                .override_for_body()
                .unwrap_or_else(|| text_response(500, "Internal Server Error\n"));
            self.send_first(out);
        } else {
            self.blocking_send(py, Out::Abort);
        }
        self.tx = None;
    }
}

/// One access-log line per request, written when the response body is done (or dropped).
pub struct AccessLog {
    pub remote: std::net::SocketAddr,
    pub method: hyper::Method,
    pub path: String,
    pub version: hyper::Version,
    pub status: u16,
    pub start: Instant,
    pub bytes: AtomicU64,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        tracing::info!(
            target: "mse_wsgi::access",
            "{} \"{} {} {:?}\" {} {} {:.3}ms",
            self.remote,
            self.method,
            self.path,
            self.version,
            self.status,
            self.bytes.load(Ordering::Relaxed),
            self.start.elapsed().as_secs_f64() * 1000.0
        );
    }
}

enum Kind {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Out>),
}

pub struct RespBody {
    kind: Kind,
    log: Option<Box<AccessLog>>,
    /// Keeps the connection out of the request-head deadline until the body is done.
    in_flight: Option<InFlight>,
}

#[derive(Debug, thiserror::Error)]
#[error("the application failed while streaming the response")]
pub struct AbortError;

impl RespBody {
    pub fn full(b: Bytes, log: Option<Box<AccessLog>>) -> Self {
        if let Some(l) = &log {
            l.bytes.store(b.len() as u64, Ordering::Relaxed);
        }
        Self {
            kind: Kind::Full(Some(b)),
            log,
            in_flight: None,
        }
    }
    pub fn stream(rx: mpsc::Receiver<Out>, log: Option<Box<AccessLog>>) -> Self {
        Self {
            kind: Kind::Stream(rx),
            log,
            in_flight: None,
        }
    }

    /// Holds `in_flight` until this body is dropped (written out, or the connection ended).
    pub(crate) fn hold(&mut self, in_flight: Option<InFlight>) {
        self.in_flight = in_flight;
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = AbortError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AbortError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Out::Chunk(c))) => {
                    if let Some(l) = &this.log {
                        l.bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                    }
                    Poll::Ready(Some(Ok(Frame::data(c))))
                }
                Poll::Ready(Some(Out::Abort)) => Poll::Ready(Some(Err(AbortError))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(b) if b.as_ref().is_none_or(|b| b.is_empty()))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
