//! The parts of a request both interfaces need, and a pull-based reader of the request body that a
//! Python thread drives (blocking on the tokio runtime with the GIL released).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Uri, Version};
use pyo3::Python;

use crate::response::BodyFlags;

pub struct RequestInfo {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// Per-connection cache of environ strings.
    pub conn: Arc<crate::wsgi::ConnStrings>,
}

impl RequestInfo {
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`, as PEP 3333 / CGI want them.
    pub fn protocol(&self) -> &'static str {
        match self.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
    }

    /// Host name and port the client addressed (Host header or HTTP/2 :authority), else the
    /// local socket.
    pub fn server_name_port(&self) -> (String, u16) {
        let default_port = self.local.port();
        let authority = self
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.uri.authority().map(|a| a.as_str().to_string()));
        if let Some(auth) = authority
            && let Ok(a) = auth.parse::<hyper::http::uri::Authority>()
        {
            let port = a.port_u16().unwrap_or(if self.tls { 443 } else { 80 });
            return (a.host().to_string(), port);
        }
        (self.local.ip().to_string(), default_port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    TooLarge(u64),
    Invalid(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "request body exceeds {limit} bytes"),
            BodyError::Invalid(e) => write!(f, "invalid request body: {e}"),
        }
    }
}

pub struct BodyReader {
    /// Frames the request handler read before the app started (`prefetch`).
    early: std::collections::VecDeque<FrameResult>,
    body: Option<Incoming>,
    received: u64,
    limit: u64,
    flags: Arc<BodyFlags>,
    handle: tokio::runtime::Handle,
    error: Option<BodyError>,
}

type FrameResult = Option<Result<http_body::Frame<Bytes>, hyper::Error>>;

/// Fields that must not appear in a trailer section: framing, routing, authentication, request
/// modifiers and content metadata (RFC 9110 §6.5.1; the list Go's net/http refuses, plus the
/// conditionals and `Cookie`). A request carrying one is refused: no app reads them.
const FORBIDDEN_TRAILERS: &[&str] = &[
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "www-authenticate",
];

/// The first forbidden field of a trailer section, if any.
pub fn forbidden_trailer(trailers: &hyper::HeaderMap) -> Option<&'static str> {
    FORBIDDEN_TRAILERS
        .iter()
        .find(|name| trailers.contains_key(**name))
        .copied()
}

/// Frames read ahead of the app (see `prefetch`).
#[derive(Default)]
pub struct Early {
    frames: std::collections::VecDeque<FrameResult>,
}

/// Reads the frames of a chunked HTTP/1 request body that are already buffered or arrive at once
/// (at most `limit` data bytes), so that a malformed chunked body or a forbidden trailer is
/// answered with 400 even when the app never reads the body. Stops at the first frame that is not
/// ready after one turn of the connection task: a slow upload is not waited for.
pub async fn prefetch(body: &mut Incoming, limit: usize) -> Early {
    let mut early = Early::default();
    let mut bytes = 0usize;
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        loop {
            if bytes >= limit {
                return std::task::Poll::Ready(());
            }
            match std::pin::Pin::new(&mut *body).poll_frame(cx) {
                std::task::Poll::Ready(None) => {
                    early.frames.push_back(None);
                    return std::task::Poll::Ready(());
                }
                std::task::Poll::Ready(Some(r)) => {
                    let stop = r.is_err();
                    if let Ok(f) = &r
                        && let Some(d) = f.data_ref()
                    {
                        bytes += d.len();
                    }
                    early.frames.push_back(Some(r));
                    if stop {
                        return std::task::Poll::Ready(());
                    }
                    yielded = false;
                }
                std::task::Poll::Pending if yielded => return std::task::Poll::Ready(()),
                std::task::Poll::Pending => {
                    // Let hyper's dispatcher (same task) decode what it has buffered.
                    yielded = true;
                    cx.waker().wake_by_ref();
                    return std::task::Poll::Pending;
                }
            }
        }
    })
    .await;
    early
}

impl Early {
    /// The body failed (malformed chunked framing, forbidden trailer) within the read-ahead.
    pub fn failed(&self) -> bool {
        self.frames.iter().any(|f| match f {
            Some(Err(_)) => true,
            Some(Ok(frame)) => frame
                .trailers_ref()
                .is_some_and(|t| forbidden_trailer(t).is_some()),
            None => false,
        })
    }
}

impl BodyReader {
    pub fn new(
        body: Incoming,
        early: Early,
        limit: u64,
        flags: Arc<BodyFlags>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        let ended = early.frames.back().is_some_and(|f| f.is_none());
        let body = if ended || (early.frames.is_empty() && body.is_end_stream()) {
            None
        } else {
            Some(body)
        };
        Self {
            early: early.frames,
            body,
            received: 0,
            limit,
            flags,
            handle,
            error: None,
        }
    }

    /// Some(chunk) for data, None for "not data, poll again" (trailers), Err at EOF/error.
    fn on_frame(&mut self, r: FrameResult) -> Result<Option<Bytes>, Option<BodyError>> {
        match r {
            None => {
                self.body = None;
                Err(None)
            }
            Some(Err(e)) => {
                self.body = None;
                self.flags.invalid.store(true, Ordering::Relaxed);
                let err = BodyError::Invalid(e.to_string());
                self.error = Some(err.clone());
                Err(Some(err))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Err(frame) => {
                    if let Some(name) = frame.trailers_ref().and_then(forbidden_trailer) {
                        self.body = None;
                        self.flags.invalid.store(true, Ordering::Relaxed);
                        let err = BodyError::Invalid(format!("{name} is not allowed in trailers"));
                        self.error = Some(err.clone());
                        return Err(Some(err));
                    }
                    Ok(None)
                }
                Ok(data) => {
                    self.received += data.len() as u64;
                    if self.received > self.limit {
                        self.body = None;
                        self.flags.too_large.store(true, Ordering::Relaxed);
                        let err = BodyError::TooLarge(self.limit);
                        self.error = Some(err.clone());
                        return Err(Some(err));
                    }
                    Ok(Some(data))
                }
            },
        }
    }

    /// Next data chunk, blocking this (Python) thread with the GIL released; Ok(None) at the end.
    pub fn next_blocking(&mut self, py: Python<'_>) -> Result<Option<Bytes>, BodyError> {
        loop {
            if let Some(e) = &self.error {
                return Err(e.clone());
            }
            let r = if let Some(r) = self.early.pop_front() {
                r
            } else {
                let Some(body) = self.body.as_mut() else {
                    return Ok(None);
                };
                let handle = &self.handle;
                py.detach(|| handle.block_on(body.frame()))
            };
            match self.on_frame(r) {
                Ok(Some(d)) if !d.is_empty() => return Ok(Some(d)),
                Ok(_) => continue,
                Err(None) => return Ok(None),
                Err(Some(e)) => return Err(e),
            }
        }
    }

    /// Like `next_blocking` without blocking: None when no frame is ready yet.
    pub fn try_next(&mut self) -> Option<Result<Option<Bytes>, BodyError>> {
        loop {
            if let Some(e) = &self.error {
                return Some(Err(e.clone()));
            }
            let r = if let Some(r) = self.early.pop_front() {
                r
            } else {
                let Some(body) = self.body.as_mut() else {
                    return Some(Ok(None));
                };
                body.frame().now_or_never()?
            };
            match self.on_frame(r) {
                Ok(Some(d)) if !d.is_empty() => return Some(Ok(Some(d))),
                Ok(_) => continue,
                Err(None) => return Some(Ok(None)),
                Err(Some(e)) => return Some(Err(e)),
            }
        }
    }

    pub fn at_end(&self) -> bool {
        self.body.is_none() && self.error.is_none() && self.early.iter().all(|f| f.is_none())
    }
}
