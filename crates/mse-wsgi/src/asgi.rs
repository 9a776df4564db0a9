//! ASGI 3 (HTTP + lifespan): the scope is built in Rust; `asgi_glue.py` runs the app on an asyncio
//! loop in its own Python thread and talks to the connection through `Receiver` / `Sender`.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyTuple};

use crate::error::Error;
use crate::python::{format_exception, helper_module};
use crate::request::{BodyReader, RequestInfo};
use crate::response::{Headers, Sink, is_hop_by_hop};

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
}

impl AsgiApp {
    /// Starts the event loop thread and runs lifespan startup.
    pub fn start(py: Python<'_>, app: Py<PyAny>, io_threads: usize) -> Result<Self, Error> {
        let start = || -> PyResult<(Py<PyAny>, Option<String>)> {
            let glue = glue(py)?;
            let log = wrap_pyfunction!(log_error, &glue)?;
            let runner = glue.getattr("Runner")?.call1((app, log, io_threads))?;
            let failed: Option<String> = runner.call_method1("startup", (60.0,))?.extract()?;
            Ok((runner.unbind(), failed))
        };
        match start() {
            Ok((runner, None)) => Ok(Self { runner }),
            Ok((runner, Some(msg))) => {
                let _ = runner.bind(py).call_method1("shutdown", (5.0,));
                Err(Error::LifespanStartup(msg))
            }
            Err(e) => Err(Error::LifespanStartup(format_exception(py, &e))),
        }
    }

    /// Lifespan shutdown, then stops the loop.
    pub fn stop(&self, py: Python<'_>) {
        if let Err(e) = self.runner.bind(py).call_method1("shutdown", (10.0,)) {
            tracing::error!("ASGI shutdown: {}", format_exception(py, &e));
        }
    }
}

fn scope<'py>(py: Python<'py>, req: &RequestInfo) -> PyResult<Bound<'py, PyDict>> {
    let s = PyDict::new(py);
    s.set_item("type", "http")?;
    let asgi = PyDict::new(py);
    asgi.set_item("version", "3.0")?;
    asgi.set_item("spec_version", "2.3")?;
    s.set_item("asgi", asgi)?;
    let version = match req.version {
        hyper::Version::HTTP_10 => "1.0",
        hyper::Version::HTTP_2 => "2",
        _ => "1.1",
    };
    s.set_item("http_version", version)?;
    s.set_item("method", req.method.as_str())?;
    s.set_item("scheme", req.scheme())?;
    let raw = req.uri.path();
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw.as_bytes()).collect();
    s.set_item("path", String::from_utf8_lossy(&decoded))?;
    s.set_item("raw_path", PyBytes::new(py, raw.as_bytes()))?;
    s.set_item(
        "query_string",
        PyBytes::new(py, req.uri.query().unwrap_or_default().as_bytes()),
    )?;
    s.set_item("root_path", "")?;
    let headers = PyList::empty(py);
    for (name, value) in &req.headers {
        headers.append((
            PyBytes::new(py, name.as_str().as_bytes()),
            PyBytes::new(py, value.as_bytes()),
        ))?;
    }
    if req.version == hyper::Version::HTTP_2
        && !req.headers.contains_key(hyper::header::HOST)
        && let Some(a) = req.uri.authority()
    {
        headers.append((
            PyBytes::new(py, b"host"),
            PyBytes::new(py, a.as_str().as_bytes()),
        ))?;
    }
    s.set_item("headers", headers)?;
    s.set_item("client", (req.remote.ip().to_string(), req.remote.port()))?;
    let (name, port) = req.server_name_port();
    s.set_item("server", (name, port))?;
    Ok(s)
}

/// Hands one request to the event loop (called on a pool thread).
pub fn run(py: Python<'_>, app: &AsgiApp, req: &RequestInfo, body: BodyReader, sink: Sink) {
    let label = format!("{} {}", req.method, req.uri.path());
    let submit = || -> PyResult<()> {
        let scope = scope(py, req)?;
        let rx = Receiver {
            reader: Mutex::new(body),
        };
        let tx = Sender {
            state: Mutex::new(SenderState {
                sink,
                pending: None,
                label: label.clone(),
            }),
        };
        app.runner
            .bind(py)
            .call_method1("submit", (scope, rx, tx))?;
        Ok(())
    };
    if let Err(e) = submit() {
        // The sink was moved into the failed call and dropped: the connection answers 500.
        tracing::error!(target: "mse_wsgi::app", "{label}: cannot submit to the ASGI loop\n{}", format_exception(py, &e));
    }
}

#[pyclass(module = "mse_wsgi")]
pub struct Receiver {
    reader: Mutex<BodyReader>,
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

#[pyclass(module = "mse_wsgi")]
pub struct Sender {
    state: Mutex<SenderState>,
}

impl Sender {
    fn lock(&self) -> MutexGuard<'_, SenderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        let (name, value): (Vec<u8>, Vec<u8>) = pair.extract()?;
        let name = HeaderName::from_bytes(&name)
            .map_err(|_| PyValueError::new_err("invalid ASGI header name"))?;
        let value = HeaderValue::from_bytes(&value)
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
    fn try_body(&self, body: &[u8], more: bool) -> PyResult<u8> {
        let mut st = self.lock();
        if !st.sink.head_sent() {
            let (status, headers) = st.pending.take().ok_or_else(|| {
                PyValueError::new_err("http.response.body before http.response.start")
            })?;
            if !more {
                let ok = st
                    .sink
                    .send_head(status, headers, Some(Bytes::copy_from_slice(body)));
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
    }

    /// The app stopped because the client went away: not an application error.
    fn gone(&self, py: Python<'_>) {
        let mut st = self.lock();
        tracing::debug!(target: "mse_wsgi::app", "{}: client disconnected", st.label);
        st.pending = None;
        st.sink.fail(py);
    }

    fn fail(&self, py: Python<'_>, traceback: &str) {
        let mut st = self.lock();
        tracing::error!(target: "mse_wsgi::app", "{}: application error\n{}", st.label, traceback.trim_end());
        st.pending = None;
        st.sink.fail(py);
    }
}
