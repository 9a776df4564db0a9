//! The API's connections, guarded before and around hyper:
//!
//! - The request head is read here, not by hyper: it must be complete within
//!   `api_header_timeout_secs` of the connection's start (a client trickling one byte at a time
//!   is cut too), fit in [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] fields, and pass the checks hyper
//!   would otherwise answer itself with an empty body (bad request line, header name,
//!   Content-Length, Transfer-Encoding). Every refusal is a JSON `{"error": ...}` like the API's.
//! - Each connection carries one request (answers say `Connection: close`), so that every head
//!   goes through these checks.
//! - A client that sends nothing for `api_read_timeout_secs` while its head is read is
//!   answered 408, and a request body must arrive at `api_min_body_rate_kib` on average once
//!   that same grace time has passed (a stalled body fails this too): a slow upload cannot hold
//!   a connection for hours.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::config::NodeConfig;

/// Largest request head (request line and header fields).
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Most header fields in a request (hyper's own limit, so that it never refuses first).
pub const MAX_HEADERS: usize = 100;
/// Longest request target.
pub const MAX_URI_BYTES: usize = 32 << 10;

/// The connection limits of node.toml.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `api_header_timeout_secs`.
    pub header_timeout: Duration,
    /// `api_read_timeout_secs`: the longest silence, and the grace before the body rate counts.
    pub read_timeout: Duration,
    /// `api_min_body_rate_kib`, in bytes per second.
    pub min_body_rate: u64,
}

impl ConnLimits {
    /// The limits `cfg` sets (KiB/s converted to bytes per second).
    pub fn new(cfg: &NodeConfig) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(cfg.api_header_timeout_secs),
            read_timeout: Duration::from_secs(cfg.api_read_timeout_secs),
            min_body_rate: cfg.api_min_body_rate_kib.saturating_mul(1024),
        }
    }
}

/// The API listener: hands hyper only connections whose request head arrived in time and
/// passed the checks; the others are answered (or closed) here.
pub struct ApiListener {
    inner: TcpListener,
    limits: ConnLimits,
    /// Connections whose head is being read, each in its own task.
    heads: JoinSet<Option<(ApiStream, SocketAddr)>>,
}

impl ApiListener {
    /// Wraps a bound listener; each accepted connection gets `limits` until its head is read.
    pub fn new(inner: TcpListener, limits: ConnLimits) -> ApiListener {
        ApiListener {
            inner,
            limits,
            heads: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for ApiListener {
    type Io = ApiStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Both branches are cancel-safe: a head read in progress stays in `heads`.
            tokio::select! {
                (io, addr) = axum::serve::Listener::accept(&mut self.inner) => {
                    self.heads.spawn(read_head(io, addr, self.limits));
                }
                Some(done) = self.heads.join_next(), if !self.heads.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Why a request head is refused: the status and the one-line message of the JSON answer.
#[derive(Debug, PartialEq, Eq)]
struct Refusal(StatusCode, String);

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

/// Reads `stream`'s request head; on success the connection (with the bytes read so far) goes
/// to hyper, otherwise the client gets a JSON error (none if it sent nothing) and is closed.
async fn read_head(
    mut stream: TcpStream,
    addr: SocketAddr,
    limits: ConnLimits,
) -> Option<(ApiStream, SocketAddr)> {
    let deadline = Instant::now() + limits.header_timeout;
    let mut buf = Vec::with_capacity(4096);
    // How much of `buf` was searched for the empty line that ends a head: the head is parsed
    // only once that line is there, so a client sending one byte at a time does not make
    // the node parse its growing head again for every byte.
    let mut searched: usize = 0;
    let refusal = loop {
        let ended = head_ended(&buf[searched.saturating_sub(2)..]);
        searched = buf.len();
        match if ended { check_head(&buf) } else { Ok(false) } {
            Ok(true) => {
                return Some((
                    ApiStream {
                        inner: stream,
                        prefix: buf,
                        pos: 0,
                    },
                    addr,
                ));
            }
            Ok(false) => {}
            Err(r) => break r,
        }
        if buf.len() >= MAX_HEAD_BYTES {
            break Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request header larger than {} KiB", MAX_HEAD_BYTES >> 10),
            );
        }
        let quiet = Instant::now() + limits.read_timeout;
        let mut chunk = [0u8; 4096];
        let room = (MAX_HEAD_BYTES - buf.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline.min(quiet), stream.read(&mut chunk[..room])).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                // Empty lines before the request line are ignored (RFC 9112 §2.2); dropped
                // here so that they do not look like a head's end.
                let lead = buf
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                if lead > 0 {
                    buf.drain(..lead);
                    searched = 0;
                }
            }
            // Nothing at all: a silent connection, closed without a word.
            Err(_) if buf.is_empty() => return None,
            Err(_) if Instant::now() >= deadline => {
                break Refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request header not complete within {} s (api_header_timeout_secs)",
                        limits.header_timeout.as_secs()
                    ),
                );
            }
            Err(_) => {
                break Refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request header stalled: nothing for {} s (api_read_timeout_secs)",
                        limits.read_timeout.as_secs()
                    ),
                );
            }
        }
    };
    tracing::debug!(%addr, "API: refused request head: {}", refusal.1);
    answer(&mut stream, refusal, limits.read_timeout).await;
    None
}

/// Whether `bytes` hold the empty line that ends a request head (CRLF or bare LF line ends,
/// both of which the parser accepts).
fn head_ended(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Whether `buf` holds a complete request head that hyper will accept; an error for one it
/// would refuse (or that breaks this API's limits).
fn check_head(buf: &[u8]) -> Result<bool, Refusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(false),
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request header has more than {MAX_HEADERS} fields"),
            ));
        }
        Err(e) => return Err(bad(format!("malformed request header: {e}"))),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("malformed request header"));
    };
    Method::from_bytes(method.as_bytes()).map_err(|_| bad("malformed request method"))?;
    if target.len() > MAX_URI_BYTES {
        return Err(Refusal(
            StatusCode::URI_TOO_LONG,
            format!("request target longer than {} KiB", MAX_URI_BYTES >> 10),
        ));
    }
    target
        .parse::<Uri>()
        .map_err(|e| bad(format!("malformed request target: {e}")))?;
    // Body framing as hyper reads it (RFC 9112 §6): Transfer-Encoding must end with chunked
    // and wins over Content-Length; several Content-Lengths must agree.
    let (mut chunked, mut te, mut length) = (false, false, None::<u64>);
    for f in req.headers.iter() {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            if minor == 0 {
                return Err(bad("Transfer-Encoding is not allowed in HTTP/1.0"));
            }
            te = true;
            chunked = std::str::from_utf8(f.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if f.name.eq_ignore_ascii_case("content-length") && !te {
            let n = digits(f.value).ok_or_else(|| bad("invalid Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(bad("invalid Content-Length"));
            }
            length = Some(n);
        }
    }
    if te && !chunked {
        return Err(bad("Transfer-Encoding must end with chunked"));
    }
    Ok(true)
}

/// A Content-Length value: decimal digits only (no sign, no space), below hyper's ceiling.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|&n| n < u64::MAX - 1)
}

/// Writes the JSON answer of a refused head, then reads (and drops) what the client still
/// sends for a moment, so that closing with unread bytes does not reset the connection before
/// the client has read the answer.
async fn answer(stream: &mut TcpStream, Refusal(status, message): Refusal, wait: Duration) {
    let body = serde_json::json!({ "error": message }).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    if !matches!(tokio::time::timeout(wait, write).await, Ok(Ok(()))) {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 1 << 20;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(wait.min(Duration::from_secs(2)), drain).await;
}

/// Adds the request-body pace and `Connection: close` to the API's router.
pub fn layer(router: axum::Router, limits: ConnLimits) -> axum::Router {
    router
        .layer(axum::middleware::map_request(
            move |req: Request| async move {
                let (parts, body) = req.into_parts();
                let paced = PacedBody::new(body, limits);
                Ok::<_, std::convert::Infallible>(Request::from_parts(parts, Body::new(paced)))
            },
        ))
        .layer(axum::middleware::map_response(
            |mut resp: Response| async move {
                // One request per connection: the next one's head is read by `read_head` again.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                resp
            },
        ))
}

/// A request body that arrived slower than `api_min_body_rate_kib`.
#[derive(Debug, thiserror::Error)]
#[error("request body arrived slower than {0} KiB/s (api_min_body_rate_kib)")]
pub struct SlowBody(u64);

/// A request body that fails with [`SlowBody`] once fewer bytes came than the minimum rate
/// asks for since the request started, past the grace time.
struct PacedBody {
    inner: Body,
    /// When the last byte counted so far was due at the latest.
    grace_end: Instant,
    rate: u64,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    fn new(inner: Body, limits: ConnLimits) -> PacedBody {
        PacedBody {
            inner,
            grace_end: Instant::now() + limits.read_timeout,
            rate: limits.min_body_rate.max(1),
            received: 0,
            timer: None,
        }
    }

    /// The time by which `received` bytes were due at the minimum rate.
    fn due(&self) -> Instant {
        let secs = self.received / self.rate;
        let nanos = (self.received % self.rate) * 1_000_000_000 / self.rate;
        self.grace_end + Duration::new(secs, nanos as u32)
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let due = this.due();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if timer.deadline() != due {
                    timer.as_mut().reset(due);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(axum::Error::new(SlowBody(this.rate / 1024)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e`'s cause chain holds a [`SlowBody`] (for the handlers' 408).
pub fn slow_body<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a SlowBody> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(slow) = err.downcast_ref::<SlowBody>() {
            return Some(slow);
        }
        cur = err.source();
    }
    None
}

/// A connection whose first bytes (the request head, read by `read_head`) are replayed to
/// hyper. Reads past the head need no timer of their own: hyper reads only the body then, which
/// `PacedBody` bounds, and only while a handler wants it.
pub struct ApiStream {
    inner: TcpStream,
    prefix: Vec<u8>,
    /// How much of `prefix` hyper has read.
    pos: usize,
}

impl AsyncRead for ApiStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ApiStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_with_an_empty_line() {
        assert!(head_ended(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_ended(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(!head_ended(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!head_ended(b"GET / HTTP/1.1\r\nHost: x\r"));
    }

    #[test]
    fn heads_hyper_would_refuse_are_refused_here() {
        let ok = |h: &str| check_head(h.as_bytes());
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(false));
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(true));
        assert_eq!(
            ok("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            Ok(true)
        );
        // Transfer-Encoding wins over a Content-Length that follows it, as in hyper.
        assert_eq!(
            ok("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: x\r\n\r\n"),
            Ok(true)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n"),
            Err(bad("invalid Content-Length"))
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(bad("Transfer-Encoding must end with chunked"))
        );
    }
}
