//! ASGI 3 (HTTP + lifespan): `asgi_glue.py` runs the app on an event loop (uvloop if importable,
//! else asyncio) in its own Python thread; requests reach that thread through `Inbox` and its
//! `Dispatcher` (which builds the scope in Rust and starts the task), and the app talks to the
//! connection through `Receiver` / `Sender`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyTuple};

use crate::error::Error;
use crate::python::{format_exception, helper_module};
use crate::request::{BodyReader, RequestInfo};
use crate::response::{Deferred, Headers, Sink, is_hop_by_hop};
use crate::sched::{self, OnPark};
use crate::wsgi::method_str;

fn glue(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let src = std::ffi::CString::new(include_str!("asgi_glue.py"))
        .map_err(|_| PyValueError::new_err("asgi_glue.py contains a NUL byte"))?;
    helper_module(py, &src, c"mse_wsgi_asgi_glue.py", c"mse_wsgi_asgi_glue")
}

#[pyfunction]
fn log_error(msg: &str) {
    tracing::error!(target: "mse_wsgi::app", "{}", msg.trim_end());
}

/// Hypercorn's detection rule, evaluated by the glue module.
pub fn is_asgi(py: Python<'_>, app: &Py<PyAny>) -> Result<bool, Error> {
    let run = || -> PyResult<bool> { glue(py)?.getattr("is_asgi")?.call1((app,))?.extract() };
    run().map_err(|e| Error::Helper(format_exception(py, &e)))
}

pub struct AsgiApp {
    runner: Py<PyAny>,
    inbox: Arc<Inbox>,
    batch: Arc<Deferred>,
}

/// One request waiting for the event loop.
pub struct Job {
    pub info: RequestInfo,
    pub reader: BodyReader,
    pub sink: Sink,
}

/// Requests handed from the I/O threads straight to the event-loop thread (no pool thread, no
/// GIL hand-off between two Python threads, no `call_soon_threadsafe` per request): the I/O
/// thread queues the job and the loop is woken by one byte on a socket pair it watches
/// (`add_reader`); the loop then takes every queued job in one go. The byte is written once per
/// batch: when the I/O thread runs out of ready connections (`sched::at_park`), or at once when
/// the batch is large or old, or on a runtime without the park hook.
struct Inbox {
    jobs: Mutex<Queued>,
    /// A wake-up byte was written and the loop has not taken the jobs yet.
    signaled: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

#[derive(Default)]
struct Queued {
    jobs: Vec<Job>,
    /// When the first job of the batch was queued.
    since: Option<Instant>,
}

/// A batch this large or this old wakes the loop without waiting for the I/O thread to park.
const MAX_BATCH: usize = 64;
const MAX_BATCH_DELAY: Duration = Duration::from_millis(1);

impl Inbox {
    fn new() -> std::io::Result<Self> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Self {
            jobs: Mutex::new(Queued::default()),
            signaled: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        })
    }

    fn push(self: &Arc<Self>, job: Job) {
        let now_or_later = {
            let mut q = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            q.jobs.push(job);
            let since = *q.since.get_or_insert_with(Instant::now);
            q.jobs.len() >= MAX_BATCH || since.elapsed() >= MAX_BATCH_DELAY
        };
        if self.signaled.load(Ordering::SeqCst) {
            return;
        }
        let hook: Arc<dyn OnPark> = self.clone();
        if now_or_later || !sched::at_park(&hook) {
            self.signal();
        }
    }

    fn signal(&self) {
        if !self.signaled.swap(true, Ordering::SeqCst) {
            // WouldBlock: the pipe is full of wake-ups the loop has not read yet; one is enough.
            let _ = (&self.wake_tx).write(&[1]);
        }
    }

    fn take(&self) -> Vec<Job> {
        // Cleared before taking: a job queued after the take signals again.
        self.signaled.store(false, Ordering::SeqCst);
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake_rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        let mut q = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        q.since = None;
        std::mem::take(&mut q.jobs)
    }
}

impl OnPark for Inbox {
    fn on_park(&self) {
        let queued = !self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .is_empty();
        if queued {
            self.signal();
        }
    }
}

/// Complete responses the loop's tasks produce are held (`Deferred`, installed on the loop
/// thread) and handed to the I/O side together by this callback, which runs once per loop
/// iteration that finished any: after the tasks a batch of requests started.
#[pyclass(module = "mse_wsgi", frozen)]
struct Flusher {
    batch: Arc<Deferred>,
    scheduled: AtomicBool,
    call_soon: Py<PyAny>,
}

#[pymethods]
impl Flusher {
    fn __call__(&self) {
        self.scheduled.store(false, Ordering::Relaxed);
        self.batch.flush();
    }
}

/// Runs the flusher after the callbacks already scheduled (called on the loop thread).
fn schedule_flush(py: Python<'_>, flusher: &Py<Flusher>) {
    let f = flusher.get();
    if !f.scheduled.swap(true, Ordering::Relaxed)
        && let Err(e) = f.call_soon.bind(py).call1((flusher.clone_ref(py),))
    {
        // The loop is closing: hand over what is held now.
        f.scheduled.store(false, Ordering::Relaxed);
        f.batch.flush();
        tracing::debug!("cannot schedule the response flush: {e}");
    }
}

/// Most responses the loop holds before handing them over (one batch of requests).
const MAX_HELD: usize = MAX_BATCH;

/// The loop's reader callback: starts a task for every queued request.
#[pyclass(module = "mse_wsgi", frozen)]
struct Dispatcher {
    inbox: Arc<Inbox>,
    base: Py<PyDict>,
    handle: Py<PyAny>,
    create_task: Py<PyAny>,
    flusher: Py<Flusher>,
    send_glue: Arc<SendGlue>,
}

/// What `Sender.__call__` and `Receiver.__call__` need from the glue when they cannot complete
/// at once.
struct SendGlue {
    /// `Runner._recv_wait(rx)`: waits for a body chunk off the loop.
    recv_wait: Py<PyAny>,
    /// `Runner._disconnect_wait(tx)`: waits until the response is over.
    disconnect_wait: Py<PyAny>,
    /// `Runner._send_wait(tx, body, more)`: waits for room in the channel off the loop.
    wait: Py<PyAny>,
    /// The glue's `ClientDisconnected` (an OSError).
    disconnected: Py<PyAny>,
}

#[pymethods]
impl Dispatcher {
    /// Makes the calling thread (the loop's) hold complete responses for the flusher.
    fn install(&self) {
        Deferred::install(self.flusher.get().batch.clone());
    }

    fn __call__(&self, py: Python<'_>) {
        let jobs = self.inbox.take();
        if jobs.is_empty() {
            return;
        }
        for Job { info, reader, sink } in jobs {
            let label = || format!("{} {}", info.method, info.uri.path());
            let start = || -> PyResult<()> {
                let scope = scope(py, &self.base, &info)?;
                let tx = Sender {
                    state: Mutex::new(SenderState {
                        sink,
                        pending: None,
                        label: label(),
                    }),
                    flusher: self.flusher.clone_ref(py),
                    glue: self.send_glue.clone(),
                    finished: AtomicBool::new(false),
                    waiter: Mutex::new(None),
                };
                let tx = Py::new(py, tx)?;
                let rx = Receiver {
                    reader: Mutex::new(reader),
                    body_done: AtomicBool::new(false),
                    tx: tx.clone_ref(py),
                    glue: self.send_glue.clone(),
                };
                let coro = self.handle.bind(py).call1((scope, rx, tx))?;
                self.create_task.bind(py).call1((coro,))?;
                Ok(())
            };
            if let Err(e) = start() {
                // The sink was dropped with the failed call: the connection answers 500.
                tracing::error!(target: "mse_wsgi::app", "{}: cannot start the ASGI task\n{}", label(), format_exception(py, &e));
            }
        }
        // After the tasks' first steps, which finish most requests.
        schedule_flush(py, &self.flusher);
    }
}

impl AsgiApp {
    /// Starts the event loop thread and runs lifespan startup.
    pub fn start(py: Python<'_>, app: Py<PyAny>, io_threads: usize) -> Result<Self, Error> {
        let inbox = Arc::new(
            Inbox::new()
                .map_err(|e| Error::LifespanStartup(format!("ASGI wake-up socket: {e}")))?,
        );
        let batch = Arc::new(Deferred::new(MAX_HELD));
        let start = || -> PyResult<(Py<PyAny>, Option<String>)> {
            let glue = glue(py)?;
            let log = wrap_pyfunction!(log_error, &glue)?;
            let runner = glue.getattr("Runner")?.call1((app, log, io_threads))?;
            let event_loop = runner.getattr("loop")?;
            let flusher = Flusher {
                batch: batch.clone(),
                scheduled: AtomicBool::new(false),
                call_soon: event_loop.getattr("call_soon")?.unbind(),
            };
            let dispatcher = Dispatcher {
                inbox: inbox.clone(),
                base: base_scope(py)?,
                handle: runner.getattr("_handle")?.unbind(),
                create_task: event_loop.getattr("create_task")?.unbind(),
                flusher: Py::new(py, flusher)?,
                send_glue: Arc::new(SendGlue {
                    recv_wait: runner.getattr("_recv_wait")?.unbind(),
                    disconnect_wait: runner.getattr("_disconnect_wait")?.unbind(),
                    wait: runner.getattr("_send_wait")?.unbind(),
                    disconnected: glue.getattr("ClientDisconnected")?.unbind(),
                }),
            };
            runner.call_method1("listen", (inbox.wake_rx.as_raw_fd(), dispatcher))?;
            let failed: Option<String> = runner.call_method1("startup", (60.0,))?.extract()?;
            Ok((runner.unbind(), failed))
        };
        match start() {
            Ok((runner, None)) => Ok(Self {
                runner,
                inbox,
                batch,
            }),
            Ok((runner, Some(msg))) => {
                let _ = runner.bind(py).call_method1("shutdown", (5.0,));
                Err(Error::LifespanStartup(msg))
            }
            Err(e) => Err(Error::LifespanStartup(format_exception(py, &e))),
        }
    }

    /// Held responses are delivered by a task on this runtime (one wake-up per batch).
    pub fn set_runtime(&self, handle: tokio::runtime::Handle) {
        self.batch.set_runtime(handle);
    }

    /// Queues a request for the event loop (called on an I/O thread, without the GIL).
    pub fn dispatch(&self, job: Job) {
        self.inbox.push(job);
    }

    /// Lifespan shutdown, then stops the loop.
    pub fn stop(&self, py: Python<'_>) {
        if let Err(e) = self.runner.bind(py).call_method1("shutdown", (10.0,)) {
            tracing::error!("ASGI shutdown: {}", format_exception(py, &e));
        }
        // A flush scheduled as the loop stopped never ran.
        self.batch.flush();
    }
}

/// The parts of every HTTP scope that never change (copied per request, like the WSGI environ).
fn base_scope(py: Python<'_>) -> PyResult<Py<PyDict>> {
    let s = PyDict::new(py);
    s.set_item(intern!(py, "type"), intern!(py, "http"))?;
    let asgi = PyDict::new(py);
    asgi.set_item("version", "3.0")?;
    asgi.set_item("spec_version", "2.3")?;
    s.set_item(intern!(py, "asgi"), asgi)?;
    s.set_item(intern!(py, "root_path"), intern!(py, ""))?;
    Ok(s.unbind())
}

fn scope<'py>(
    py: Python<'py>,
    base: &Py<PyDict>,
    req: &RequestInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let s = base.bind(py).copy()?;
    let version = match req.version {
        hyper::Version::HTTP_10 => intern!(py, "1.0"),
        hyper::Version::HTTP_2 => intern!(py, "2"),
        _ => intern!(py, "1.1"),
    };
    s.set_item(intern!(py, "http_version"), version)?;
    s.set_item(intern!(py, "method"), method_str(py, &req.method))?;
    let scheme = if req.tls {
        intern!(py, "https")
    } else {
        intern!(py, "http")
    };
    s.set_item(intern!(py, "scheme"), scheme)?;
    let raw = req.uri.path();
    if raw.contains('%') {
        let decoded: Vec<u8> = percent_encoding::percent_decode(raw.as_bytes()).collect();
        s.set_item(intern!(py, "path"), String::from_utf8_lossy(&decoded))?;
    } else {
        s.set_item(intern!(py, "path"), raw)?;
    }
    s.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw.as_bytes()))?;
    s.set_item(
        intern!(py, "query_string"),
        PyBytes::new(py, req.uri.query().unwrap_or_default().as_bytes()),
    )?;
    let mut items = Vec::with_capacity(req.headers.len() + 1);
    for (name, value) in &req.headers {
        items.push(PyTuple::new(
            py,
            [
                header_name(py, name),
                PyBytes::new(py, value.as_bytes()).into_any(),
            ],
        )?);
    }
    if req.version == hyper::Version::HTTP_2
        && !req.headers.contains_key(hyper::header::HOST)
        && let Some(a) = req.uri.authority()
    {
        items.push(PyTuple::new(
            py,
            [
                PyBytes::new(py, b"host"),
                PyBytes::new(py, a.as_str().as_bytes()),
            ],
        )?);
    }
    s.set_item(intern!(py, "headers"), PyList::new(py, items)?)?;
    let client = req.conn.client.get_or_try_init(py, || {
        (req.remote.ip().to_string(), req.remote.port())
            .into_pyobject(py)
            .map(Bound::unbind)
    })?;
    s.set_item(intern!(py, "client"), client.bind(py))?;
    s.set_item(intern!(py, "server"), server_tuple(py, req)?)?;
    Ok(s)
}

/// The scope's `server` tuple, cached per connection while the Host header stays the same.
fn server_tuple<'py>(py: Python<'py>, req: &RequestInfo) -> PyResult<Bound<'py, PyTuple>> {
    let source = req
        .headers
        .get(hyper::header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()));
    let mut cached = req
        .conn
        .asgi_server
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((key, tuple)) = cached.as_ref()
        && key.as_deref() == source
    {
        return Ok(tuple.bind(py).clone());
    }
    let (name, port) = req.server_name_port();
    let tuple = (name, port).into_pyobject(py)?;
    *cached = Some((source.map(<[u8]>::to_vec), tuple.clone().unbind()));
    Ok(tuple)
}

/// Header names as bytes; the common ones are made once per process.
fn header_name<'py>(py: Python<'py>, name: &HeaderName) -> Bound<'py, PyAny> {
    use hyper::header;
    macro_rules! cached {
        ($($h:ident),*) => {
            $(if *name == header::$h {
                static CELL: PyOnceLock<Py<PyBytes>> = PyOnceLock::new();
                return CELL
                    .get_or_init(py, || PyBytes::new(py, header::$h.as_str().as_bytes()).unbind())
                    .bind(py)
                    .clone()
                    .into_any();
            })*
        };
    }
    cached!(
        HOST,
        USER_AGENT,
        ACCEPT,
        ACCEPT_ENCODING,
        ACCEPT_LANGUAGE,
        CONNECTION,
        CONTENT_TYPE,
        CONTENT_LENGTH,
        COOKIE,
        AUTHORIZATION,
        ORIGIN,
        REFERER
    );
    PyBytes::new(py, name.as_str().as_bytes()).into_any()
}

/// The app's `receive` callable: a message that is ready now comes back in a `Done`, so no
/// coroutine is made per call; otherwise the glue's coroutine waits for it.
#[pyclass(module = "mse_wsgi", frozen)]
pub struct Receiver {
    reader: Mutex<BodyReader>,
    /// The whole body (or its failure) was delivered: only http.disconnect is left.
    body_done: AtomicBool,
    tx: Py<Sender>,
    glue: Arc<SendGlue>,
}

/// An awaitable that is already done with a value (its first step raises StopIteration(value)).
#[pyclass(module = "mse_wsgi", frozen)]
struct Done {
    value: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Done {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        let value = self
            .value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| py.None());
        Err(pyo3::exceptions::PyStopIteration::new_err((value,)))
    }
}

fn done_with(py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        Done {
            value: Mutex::new(Some(value.unbind())),
        },
    )?
    .into_any())
}

fn disconnect_message(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let m = PyDict::new(py);
    m.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(m)
}

type Chunk<'py> = (Option<Bound<'py, PyBytes>>, bool);

fn to_message<'py>(
    py: Python<'py>,
    reader: &BodyReader,
    r: Result<Option<Bytes>, crate::request::BodyError>,
) -> Chunk<'py> {
    match r {
        Ok(Some(d)) => (Some(PyBytes::new(py, &d)), !reader.at_end()),
        Ok(None) => (Some(PyBytes::new(py, b"")), false),
        Err(_) => (None, false),
    }
}

#[pymethods]
impl Receiver {
    /// ASGI `receive()`.
    fn __call__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if this.body_done.load(Ordering::Relaxed) {
            let tx = this.tx.bind(py);
            if tx.get().finished.load(Ordering::Relaxed) {
                return done_with(py, disconnect_message(py)?.into_any());
            }
            return Ok(this.glue.disconnect_wait.bind(py).call1((tx,))?.unbind());
        }
        match this.try_recv(py) {
            Some(chunk) => done_with(py, this.message(py, chunk)?.into_any()),
            None => Ok(this.glue.recv_wait.bind(py).call1((slf,))?.unbind()),
        }
    }

    /// The ASGI message for a chunk from `try_recv` or `recv`.
    fn message<'py>(&self, py: Python<'py>, chunk: Chunk<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (body, more) = chunk;
        let Some(body) = body else {
            self.body_done.store(true, Ordering::Relaxed);
            self.tx.get().finish(py)?;
            return disconnect_message(py);
        };
        if !more {
            self.body_done.store(true, Ordering::Relaxed);
        }
        let m = PyDict::new(py);
        m.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
        m.set_item(intern!(py, "body"), body)?;
        m.set_item(intern!(py, "more_body"), more)?;
        Ok(m)
    }

    /// (body, more_body) if a chunk is ready now, None if the caller must wait with `recv`.
    /// body is None when the request body failed (invalid or too large).
    fn try_recv<'py>(&self, py: Python<'py>) -> Option<Chunk<'py>> {
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let r = reader.try_next()?;
        Some(to_message(py, &reader, r))
    }

    fn recv<'py>(&self, py: Python<'py>) -> Chunk<'py> {
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let r = reader.next_blocking(py);
        to_message(py, &reader, r)
    }
}

struct SenderState {
    sink: Sink,
    /// Status and headers from `http.response.start`, sent with the first body message.
    pending: Option<(u16, Headers)>,
    label: String,
}

/// The app's `send` callable: a message that can be handed over at once (the usual case) returns
/// `Ready`, an awaitable that completes on its first step, so no coroutine is made per call.
#[pyclass(module = "mse_wsgi", frozen)]
pub struct Sender {
    state: Mutex<SenderState>,
    flusher: Py<Flusher>,
    glue: Arc<SendGlue>,
    /// The response is over or the client left: receive() answers http.disconnect.
    finished: AtomicBool,
    /// A receive() waiting for `finished` (an asyncio future, resolved on the loop thread).
    waiter: Mutex<Option<Py<PyAny>>>,
}

/// `message.get(key)` of an ASGI message (a dict, read directly, or any mapping); None when
/// absent or None.
fn optional<'py>(
    message: &Bound<'py, PyAny>,
    key: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = match message.cast::<PyDict>() {
        Ok(d) => d.get_item(key)?,
        Err(_) => Some(message.call_method1(intern!(message.py(), "get"), (key,))?),
    };
    Ok(value.filter(|v| !v.is_none()))
}

/// An awaitable that is already done (`await` gets None without suspending).
#[pyclass(module = "mse_wsgi", frozen)]
struct Ready;

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self) -> Option<()> {
        None
    }
}

/// The one `Ready` (stateless, so shared by every send).
fn ready(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static READY: PyOnceLock<Py<Ready>> = PyOnceLock::new();
    let r = READY.get_or_try_init(py, || Py::new(py, Ready))?;
    Ok(r.clone_ref(py).into_any())
}

impl Sender {
    fn lock(&self) -> MutexGuard<'_, SenderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// bytes without a copy; other byte strings (bytearray, ...) as pyo3 extracts them.
fn bytes_like<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    match obj.cast::<PyBytes>() {
        Ok(b) => Ok(std::borrow::Cow::Borrowed(b.as_bytes())),
        Err(_) => Ok(std::borrow::Cow::Owned(obj.extract::<Vec<u8>>()?)),
    }
}

fn parse_asgi_headers(headers: &Bound<'_, PyAny>) -> PyResult<Headers> {
    let mut out = Vec::new();
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item
            .cast::<PyTuple>()
            .map(|t| t.as_any().clone())
            .or_else(|_| item.cast::<PyList>().map(|l| l.as_any().clone()))
            .map_err(|_| PyTypeError::new_err("ASGI headers must be [name, value] pairs"))?;
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        let name = HeaderName::from_bytes(bytes_like(&name)?.as_ref())
            .map_err(|_| PyValueError::new_err("invalid ASGI header name"))?;
        let value = HeaderValue::from_bytes(bytes_like(&value)?.as_ref())
            .map_err(|_| PyValueError::new_err("invalid ASGI header value"))?;
        if !is_hop_by_hop(&name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

const SENT: u8 = 0;
const FULL: u8 = 1;
const CLOSED: u8 = 2;

#[pymethods]
impl Sender {
    /// ASGI `send(message)`.
    fn __call__(slf: &Bound<'_, Self>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let kind = message.get_item(intern!(py, "type"))?;
        let kind = kind.cast::<pyo3::types::PyString>()?;
        let kind = kind.to_str()?;
        if kind == "http.response.start" {
            let status = message.get_item(intern!(py, "status"))?.extract()?;
            let headers = match optional(message, intern!(py, "headers"))? {
                Some(h) => h,
                None => PyTuple::empty(py).into_any(),
            };
            this.start(status, &headers)?;
        } else if kind == "http.response.body" {
            let body = match optional(message, intern!(py, "body"))? {
                Some(b) => b,
                None => PyBytes::new(py, b"").into_any(),
            };
            let more = match optional(message, intern!(py, "more_body"))? {
                Some(m) => m.is_truthy()?,
                None => false,
            };
            let body = bytes_like(&body)?;
            match this.try_body(py, &body, more)? {
                SENT => {
                    if !more {
                        this.finish(py)?;
                    }
                }
                FULL => {
                    // The glue's coroutine waits for room in an executor thread.
                    let wait = this.glue.wait.bind(py);
                    return Ok(wait.call1((slf, PyBytes::new(py, &body), more))?.unbind());
                }
                _ => {
                    this.finish(py)?;
                    return Err(PyErr::from_value(
                        this.glue
                            .disconnected
                            .bind(py)
                            .call1(("client disconnected",))?,
                    ));
                }
            }
        }
        ready(py)
    }

    /// True once the response is over or the client left.
    #[getter]
    fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Resolves `waiter` at `finish` (called on the loop thread, like `finish`).
    fn set_waiter(&self, waiter: Py<PyAny>) {
        *self.waiter.lock().unwrap_or_else(|p| p.into_inner()) = Some(waiter);
    }

    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        self.finished.store(true, Ordering::Relaxed);
        let waiter = self.waiter.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waiter {
            let w = w.bind(py);
            if !w.call_method0(intern!(py, "done"))?.is_truthy()? {
                w.call_method1(intern!(py, "set_result"), (py.None(),))?;
            }
        }
        Ok(())
    }

    fn start(&self, status: u16, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        if !(100..=999).contains(&status) {
            return Err(PyValueError::new_err(format!(
                "invalid ASGI status {status}"
            )));
        }
        let headers = parse_asgi_headers(headers)?;
        let mut st = self.lock();
        if st.pending.is_some() || st.sink.head_sent() {
            return Err(PyValueError::new_err("http.response.start sent twice"));
        }
        st.pending = Some((status, headers));
        Ok(())
    }

    /// Non-blocking body send: 0 sent, 1 channel full (call `body`), 2 client gone.
    fn try_body(&self, py: Python<'_>, body: &[u8], more: bool) -> PyResult<u8> {
        let mut st = self.lock();
        if !st.sink.head_sent() {
            let (status, headers) = st.pending.take().ok_or_else(|| {
                PyValueError::new_err("http.response.body before http.response.start")
            })?;
            if !more {
                let ok = st
                    .sink
                    .send_head(status, headers, Some(Bytes::copy_from_slice(body)));
                schedule_flush(py, &self.flusher);
                return Ok(if ok { SENT } else { CLOSED });
            }
            if !st.sink.send_head(status, headers, None) {
                return Ok(CLOSED);
            }
        }
        match st.sink.try_chunk(&Bytes::copy_from_slice(body)) {
            Ok(true) => {
                if !more {
                    st.sink.finish();
                }
                Ok(SENT)
            }
            Ok(false) => Ok(FULL),
            Err(()) => Ok(CLOSED),
        }
    }

    /// Blocking body send (run in the glue's executor, GIL released while waiting).
    fn body(&self, py: Python<'_>, body: &[u8], more: bool) -> u8 {
        let mut st = self.lock();
        let ok = st.sink.send_chunk(py, Bytes::copy_from_slice(body));
        if !more {
            st.sink.finish();
        }
        if ok { SENT } else { CLOSED }
    }

    fn done(&self, py: Python<'_>) {
        let mut st = self.lock();
        if let Some((status, headers)) = st.pending.take() {
            st.sink.send_head(status, headers, Some(Bytes::new()));
        } else if !st.sink.head_sent() {
            tracing::error!(target: "mse_wsgi::app", "{}: ASGI app returned without sending a response", st.label);
            st.sink.fail(py);
        }
        st.sink.finish();
        schedule_flush(py, &self.flusher);
    }

    /// The app stopped because the client went away: not an application error.
    fn gone(&self, py: Python<'_>) {
        let mut st = self.lock();
        tracing::debug!(target: "mse_wsgi::app", "{}: client disconnected", st.label);
        st.pending = None;
        st.sink.fail(py);
        schedule_flush(py, &self.flusher);
    }

    fn fail(&self, py: Python<'_>, traceback: &str) {
        let mut st = self.lock();
        tracing::error!(target: "mse_wsgi::app", "{}: application error\n{}", st.label, traceback.trim_end());
        st.pending = None;
        st.sink.fail(py);
        schedule_flush(py, &self.flusher);
    }
}
