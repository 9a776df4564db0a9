//! PEP 3333: the environ (built from the request only, never from the process environment),
//! `start_response` with `exc_info` and a working `write()`, lazy `start_response` inside the first
//! iteration, `close()` always called, streaming with backpressure, and a buffered `wsgi.input`.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::python::format_exception;
use crate::request::{BodyReader, RequestInfo};
use crate::response::{Headers, Sink, is_hop_by_hop};

/// A loaded WSGI app and the constant part of every environ.
pub struct WsgiApp {
    app: Py<PyAny>,
    /// The constant entries plus a `None` placeholder for every key each request sets, so that
    /// a copy of it has room for them: setting them replaces a value instead of growing the dict.
    base: Py<PyDict>,
    /// `wsgi.input` of every request without a body.
    empty_input: Py<EmptyInput>,
}

/// Keys every environ gets per request (placeholders in the template).
const PER_REQUEST_KEYS: [&str; 11] = [
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.url_scheme",
    "wsgi.input",
];

impl WsgiApp {
    pub fn new(py: Python<'_>, app: Py<PyAny>, threads: usize) -> PyResult<Self> {
        let base = PyDict::new(py);
        base.set_item("wsgi.version", (1, 0))?;
        base.set_item("wsgi.errors", py.import("sys")?.getattr("stderr")?)?;
        base.set_item("wsgi.multithread", threads > 1)?;
        base.set_item("wsgi.multiprocess", false)?;
        base.set_item("wsgi.run_once", false)?;
        base.set_item("wsgi.input_terminated", true)?;
        base.set_item("SCRIPT_NAME", "")?;
        base.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
        base.set_item(
            "SERVER_SOFTWARE",
            concat!("mse-wsgi/", env!("CARGO_PKG_VERSION")),
        )?;
        for key in PER_REQUEST_KEYS {
            base.set_item(PyString::intern(py, key), py.None())?;
        }
        Ok(Self {
            app,
            base: base.unbind(),
            empty_input: Py::new(py, EmptyInput)?,
        })
    }
}

/// Python strings of one connection, made on its first request and reused by the next ones.
pub struct ConnStrings {
    /// REMOTE_ADDR and REMOTE_PORT.
    remote: PyOnceLock<[Py<PyString>; 2]>,
    /// ASGI: the scope's `client` tuple.
    pub(crate) client: PyOnceLock<Py<PyTuple>>,
    /// ASGI: the Host header (or HTTP/2 authority) last seen and the scope's `server` tuple.
    pub(crate) asgi_server: Mutex<Option<AsgiServer>>,
    /// The Host header (or HTTP/2 authority) last seen and its SERVER_NAME and SERVER_PORT.
    server: Mutex<Option<ServerStrings>>,
}

/// The Host header (or HTTP/2 authority) it was made from, and the ASGI `server` tuple.
pub(crate) type AsgiServer = (Option<Vec<u8>>, Py<PyTuple>);

/// The Host header (or HTTP/2 authority) they were made from, SERVER_NAME, SERVER_PORT.
type ServerStrings = (Option<Vec<u8>>, Py<PyString>, Py<PyString>);

impl Default for ConnStrings {
    fn default() -> Self {
        Self {
            remote: PyOnceLock::new(),
            client: PyOnceLock::new(),
            asgi_server: Mutex::new(None),
            server: Mutex::new(None),
        }
    }
}

/// PEP 3333 "native strings": bytes decoded as latin-1.
pub(crate) fn latin1_string(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        // ASCII is identical in UTF-8 and latin-1.
        Ok(s) if bytes.is_ascii() => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
    }
}

fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    PyString::new(py, &latin1_string(bytes))
}

/// CGI name of a header: `X-Foo` → `HTTP_X_FOO`. None for names that would collide after the
/// `-`→`_` mapping (names containing `_`, dropped as gunicorn does, against header spoofing).
pub(crate) fn cgi_header_name(name: &HeaderName) -> Option<String> {
    let n = name.as_str();
    if n.contains('_') {
        return None;
    }
    match n {
        "content-type" => Some("CONTENT_TYPE".into()),
        "content-length" => Some("CONTENT_LENGTH".into()),
        _ => {
            let mut s = String::with_capacity(5 + n.len());
            s.push_str("HTTP_");
            for c in n.chars() {
                s.push(if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                });
            }
            Some(s)
        }
    }
}

/// The environ key of a header: interned for the common ones (no string built per request).
fn cgi_key<'py>(py: Python<'py>, name: &HeaderName) -> Option<Bound<'py, PyString>> {
    let key = match name.as_str() {
        "host" => intern!(py, "HTTP_HOST"),
        "user-agent" => intern!(py, "HTTP_USER_AGENT"),
        "accept" => intern!(py, "HTTP_ACCEPT"),
        "accept-encoding" => intern!(py, "HTTP_ACCEPT_ENCODING"),
        "accept-language" => intern!(py, "HTTP_ACCEPT_LANGUAGE"),
        "connection" => intern!(py, "HTTP_CONNECTION"),
        "cookie" => intern!(py, "HTTP_COOKIE"),
        "content-type" => intern!(py, "CONTENT_TYPE"),
        "content-length" => intern!(py, "CONTENT_LENGTH"),
        "authorization" => intern!(py, "HTTP_AUTHORIZATION"),
        "origin" => intern!(py, "HTTP_ORIGIN"),
        "referer" => intern!(py, "HTTP_REFERER"),
        "cache-control" => intern!(py, "HTTP_CACHE_CONTROL"),
        _ => return cgi_header_name(name).map(|k| PyString::new(py, &k)),
    };
    Some(key.clone())
}

pub(crate) fn method_str<'py>(py: Python<'py>, m: &hyper::Method) -> Bound<'py, PyString> {
    use hyper::Method;
    let s = match *m {
        Method::GET => intern!(py, "GET"),
        Method::POST => intern!(py, "POST"),
        Method::HEAD => intern!(py, "HEAD"),
        Method::PUT => intern!(py, "PUT"),
        Method::DELETE => intern!(py, "DELETE"),
        Method::PATCH => intern!(py, "PATCH"),
        Method::OPTIONS => intern!(py, "OPTIONS"),
        _ => return PyString::new(py, m.as_str()),
    };
    s.clone()
}

fn protocol_str<'py>(py: Python<'py>, req: &RequestInfo) -> Bound<'py, PyString> {
    match req.version {
        hyper::Version::HTTP_11 => intern!(py, "HTTP/1.1"),
        hyper::Version::HTTP_10 => intern!(py, "HTTP/1.0"),
        hyper::Version::HTTP_2 => intern!(py, "HTTP/2"),
        _ => return PyString::new(py, req.protocol()),
    }
    .clone()
}

/// SERVER_NAME and SERVER_PORT, cached per connection while the Host header stays the same.
fn server_strings<'py>(
    py: Python<'py>,
    req: &RequestInfo,
) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
    let source = req
        .headers
        .get(hyper::header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()));
    let mut cached = req.conn.server.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((key, name, port)) = cached.as_ref()
        && key.as_deref() == source
    {
        return (name.bind(py).clone(), port.bind(py).clone());
    }
    let (name, port) = req.server_name_port();
    let name = PyString::new(py, &name);
    let port = PyString::new(py, &port.to_string());
    *cached = Some((
        source.map(<[u8]>::to_vec),
        name.clone().unbind(),
        port.clone().unbind(),
    ));
    (name, port)
}

fn build_environ<'py>(
    py: Python<'py>,
    app: &WsgiApp,
    req: &RequestInfo,
    input: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = app.base.bind(py).copy()?;
    env.set_item(intern!(py, "REQUEST_METHOD"), method_str(py, &req.method))?;
    let raw_path = req.uri.path();
    let query = req.uri.query().unwrap_or_default();
    // The usual path has no escapes: PATH_INFO is the raw path, and without a query string also
    // RAW_URI (one string for both).
    let path_info = if raw_path.contains('%') {
        let decoded: Vec<u8> = percent_encoding::percent_decode(raw_path.as_bytes()).collect();
        latin1(py, &decoded)
    } else {
        PyString::new(py, raw_path)
    };
    let raw_uri = match req.uri.path_and_query() {
        Some(pq) if pq.as_str() != raw_path => PyString::new(py, pq.as_str()),
        _ if !raw_path.contains('%') => path_info.clone(),
        _ => PyString::new(py, raw_path),
    };
    env.set_item(intern!(py, "PATH_INFO"), path_info)?;
    if query.is_empty() {
        env.set_item(intern!(py, "QUERY_STRING"), intern!(py, ""))?;
    } else {
        env.set_item(intern!(py, "QUERY_STRING"), query)?;
    }
    env.set_item(intern!(py, "RAW_URI"), raw_uri)?;
    let (name, port) = server_strings(py, req);
    env.set_item(intern!(py, "SERVER_NAME"), name)?;
    env.set_item(intern!(py, "SERVER_PORT"), port)?;
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol_str(py, req))?;
    let [addr, port] = req.conn.remote.get_or_init(py, || {
        [
            PyString::new(py, &req.remote.ip().to_string()).unbind(),
            PyString::new(py, &req.remote.port().to_string()).unbind(),
        ]
    });
    env.set_item(intern!(py, "REMOTE_ADDR"), addr.bind(py))?;
    env.set_item(intern!(py, "REMOTE_PORT"), port.bind(py))?;
    let scheme = if req.tls {
        intern!(py, "https")
    } else {
        intern!(py, "http")
    };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "wsgi.input"), input)?;
    for name in req.headers.keys() {
        let Some(key) = cgi_key(py, name) else {
            continue;
        };
        let mut values = req.headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let Some(second) = values.next() else {
            env.set_item(key, latin1(py, first.as_bytes()))?;
            continue;
        };
        let sep: &[u8] = if name == hyper::header::COOKIE {
            b"; "
        } else {
            b", "
        };
        let mut joined = first.as_bytes().to_vec();
        for v in std::iter::once(second).chain(values) {
            joined.extend_from_slice(sep);
            joined.extend_from_slice(v.as_bytes());
        }
        env.set_item(key, latin1(py, &joined))?;
    }
    if req.version == hyper::Version::HTTP_2 && !env.contains(intern!(py, "HTTP_HOST"))? {
        if let Some(a) = req.uri.authority() {
            env.set_item(intern!(py, "HTTP_HOST"), a.as_str())?;
        }
    }
    Ok(env)
}

struct InputState {
    reader: BodyReader,
    buf: Vec<u8>,
    pos: usize,
}

impl InputState {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads one more chunk into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        match self.reader.next_blocking(py) {
            Ok(Some(chunk)) => {
                if self.pos > 0 && self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(PyOSError::new_err(e.to_string())),
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        out
    }

    fn read(&mut self, py: Python<'_>, size: Option<usize>) -> PyResult<Vec<u8>> {
        match size {
            None => {
                while self.fill(py)? {}
                Ok(self.take(usize::MAX))
            }
            Some(n) => {
                while self.available().len() < n && self.fill(py)? {}
                Ok(self.take(n))
            }
        }
    }

    fn readline(&mut self, py: Python<'_>, size: Option<usize>) -> PyResult<Vec<u8>> {
        let limit = size.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let avail = self.available();
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                return Ok(self.take((scanned + i + 1).min(limit)));
            }
            scanned = avail.len();
            if scanned >= limit || !self.fill(py)? {
                return Ok(self.take(limit));
            }
        }
    }
}

/// `wsgi.input`: a buffered reader over the request body stream.
#[pyclass(module = "mse_wsgi")]
pub struct Input {
    state: Mutex<InputState>,
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

impl Input {
    fn lock(&self) -> MutexGuard<'_, InputState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.lock().read(py, size_arg(size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.lock().readline(py, size_arg(size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0).unwrap_or(usize::MAX);
        let out = PyList::empty(py);
        let mut total = 0usize;
        let mut state = self.lock();
        loop {
            let line = state.readline(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            out.append(PyBytes::new(py, &line))?;
            if total >= hint {
                break;
            }
        }
        Ok(out)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.lock().readline(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}

/// `wsgi.input` of a request without a body (one shared object): every read is empty.
#[pyclass(module = "mse_wsgi", frozen)]
pub struct EmptyInput;

#[pymethods]
impl EmptyInput {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let _ = size;
        PyBytes::new(py, b"")
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let _ = size;
        PyBytes::new(py, b"")
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> Bound<'py, PyList> {
        let _ = hint;
        PyList::empty(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }
}

struct RespState {
    sink: Sink,
    status: Option<u16>,
    headers: Headers,
}

type Shared = Arc<Mutex<RespState>>;

fn lock(s: &Shared) -> MutexGuard<'_, RespState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_status(status: &str) -> PyResult<u16> {
    let code = status.split(' ').next().unwrap_or_default();
    let ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    let n: u16 = if ok { code.parse().unwrap_or(0) } else { 0 };
    if !(100..=999).contains(&n) || status.len() < 5 || status.as_bytes()[3] != b' ' {
        return Err(PyValueError::new_err(format!(
            "invalid WSGI status {status:?}: expected '<3 digits> <reason>'"
        )));
    }
    Ok(n)
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Headers> {
    let list = headers
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err("response headers must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let tuple = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err("each response header must be a (name, value) tuple")
        })?;
        // Borrowed, not copied: for the usual ASCII strings CPython hands out its own buffer.
        let (name, value): (Bound<'_, PyString>, Bound<'_, PyString>) = tuple.extract()?;
        let name = name.to_str()?;
        let hname = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let value = value.to_str()?;
        let hvalue = if value.is_ascii() {
            HeaderValue::from_str(value).ok()
        } else {
            // Native strings are latin-1: one byte per character, none above U+00FF.
            let raw: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(c as u32).ok()).collect();
            raw.and_then(|r| HeaderValue::from_bytes(&r).ok())
        }
        .ok_or_else(|| PyValueError::new_err(format!("invalid value for header {name:?}")))?;
        if is_hop_by_hop(&hname) {
            continue;
        }
        out.push((hname, hvalue));
    }
    Ok(out)
}

/// The `start_response` callable.
#[pyclass(module = "mse_wsgi")]
pub struct StartResponse {
    state: Shared,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        status: &str,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let mut st = lock(&self.state);
        if let Some(info) = exc_info {
            if st.sink.head_sent() {
                // PEP 3333: too late to change the response; re-raise the original exception.
                drop(st);
                let value = info.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if st.status.is_some() {
            return Err(PyAssertionError::new_err(
                "start_response called a second time without exc_info",
            ));
        }
        let code = parse_status(status)?;
        let parsed = parse_headers(headers)?;
        st.status = Some(code);
        st.headers = parsed;
        Ok(Write {
            state: self.state.clone(),
        })
    }
}

/// The `write()` callable returned by `start_response` (legacy imperative API).
#[pyclass(module = "mse_wsgi")]
pub struct Write {
    state: Shared,
}

fn send_head_if_needed(st: &mut RespState, full: Option<Bytes>) -> PyResult<bool> {
    if st.sink.head_sent() {
        return Ok(!st.sink.is_closed());
    }
    let code = st.status.ok_or_else(|| {
        PyAssertionError::new_err("the application sent body data before calling start_response")
    })?;
    let headers = std::mem::take(&mut st.headers);
    Ok(st.sink.send_head(code, headers, full))
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let mut st = lock(&self.state);
        let ok = send_head_if_needed(&mut st, None)?
            && st
                .sink
                .send_chunk(py, Bytes::copy_from_slice(data.as_bytes()));
        if ok {
            Ok(())
        } else {
            Err(PyOSError::new_err("client disconnected"))
        }
    }
}

fn bytes_of<'a>(item: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    item.cast::<PyBytes>().map(|b| b.as_bytes()).map_err(|_| {
        PyTypeError::new_err(format!(
            "the application must yield bytes, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

fn declared_length(headers: &Headers) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k == hyper::header::CONTENT_LENGTH)
        .and_then(|(_, v)| v.to_str().ok()?.parse().ok())
}

fn consume(py: Python<'_>, state: &Shared, result: &Bound<'_, PyAny>) -> PyResult<()> {
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        let mut body = Vec::new();
        for item in result.try_iter()? {
            body.extend_from_slice(bytes_of(&item?)?);
        }
        let mut st = lock(state);
        if st.sink.head_sent() {
            st.sink.send_chunk(py, Bytes::from(body));
        } else {
            send_head_if_needed(&mut st, Some(Bytes::from(body)))?;
        }
        return Ok(());
    }
    // Set once a chunk completed the declared Content-Length: the response went out whole.
    let mut complete = false;
    for item in result.try_iter()? {
        let item = item?;
        let data = bytes_of(&item)?;
        if data.is_empty() {
            continue;
        }
        if complete {
            tracing::warn!(target: "mse_wsgi::app", "body longer than its Content-Length; extra bytes dropped");
            continue;
        }
        let chunk = Bytes::copy_from_slice(data);
        let mut st = lock(state);
        // A first chunk that is the whole declared body (Flask's usual case) is sent as a complete
        // response: no stream channel, one hand-over to the connection.
        if !st.sink.head_sent() && declared_length(&st.headers) == Some(chunk.len() as u64) {
            complete = true;
            if !send_head_if_needed(&mut st, Some(chunk))? {
                return Ok(());
            }
            continue;
        }
        if !send_head_if_needed(&mut st, None)? || !st.sink.send_chunk(py, chunk) {
            // The client is gone: stop producing (close() still runs).
            return Ok(());
        }
    }
    let mut st = lock(state);
    if !st.sink.head_sent() {
        send_head_if_needed(&mut st, Some(Bytes::new()))?;
    }
    Ok(())
}

/// Runs one request on a Python thread.
pub fn run(py: Python<'_>, app: &WsgiApp, req: &RequestInfo, body: BodyReader, sink: Sink) {
    let state: Shared = Arc::new(Mutex::new(RespState {
        sink,
        status: None,
        headers: Vec::new(),
    }));
    let outcome = (|| -> PyResult<()> {
        let input = if body.at_end() {
            app.empty_input.bind(py).clone().into_any()
        } else {
            Bound::new(
                py,
                Input {
                    state: Mutex::new(InputState {
                        reader: body,
                        buf: Vec::new(),
                        pos: 0,
                    }),
                },
            )?
            .into_any()
        };
        let environ = build_environ(py, app, req, input)?;
        let start_response = Bound::new(
            py,
            StartResponse {
                state: state.clone(),
            },
        )?;
        let result = app.app.bind(py).call1((environ, start_response))?;
        let consumed = consume(py, &state, &result);
        // PEP 3333: close() is called whatever happened during iteration. (Plain lists and
        // tuples have none; skipping the lookup avoids building an AttributeError per request.)
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            return consumed;
        }
        let closed = match result.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close.call0().map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        consumed.and(closed)
    })();
    let mut st = lock(&state);
    match outcome {
        Ok(()) => st.sink.finish(),
        // write() raised because the client went away, and the app let it through.
        Err(e)
            if e.is_instance_of::<PyOSError>(py) && st.sink.head_sent() && st.sink.is_closed() =>
        {
            tracing::debug!(
                target: "mse_wsgi::app",
                "{} {}: client disconnected",
                req.method,
                req.uri.path()
            );
            st.sink.fail(py);
        }
        Err(e) => {
            tracing::error!(
                target: "mse_wsgi::app",
                "{} {}: application error\n{}",
                req.method,
                req.uri.path(),
                format_exception(py, &e).trim_end()
            );
            st.sink.fail(py);
        }
    }
}
