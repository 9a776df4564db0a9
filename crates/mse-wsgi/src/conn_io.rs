//! The connection's byte stream as hyper reads it: an optional replayed prefix (the HTTP/2
//! preface we checked ourselves) and, on HTTP/1 connections, a guard that follows the request
//! framing alongside hyper and refuses what hyper's parser tolerates but RFC 9112 forbids.
//!
//! hyper's chunked decoder accepts whitespace between a chunk size and the end of its line
//! (`0 \r\n`, RFC 9112 §7.1 has no such "BWS"), a classic request-smuggling ambiguity. The guard
//! tracks heads (with httparse, as hyper does), `Content-Length` and chunked bodies byte for byte,
//! and turns such a whitespace byte into one hyper's decoder refuses (`G`): the body then fails
//! inside hyper, which the request handler answers with 400. When the guard and the stream stop
//! making sense (a head hyper will refuse anyway, an upgrade, an HTTP/2 preface) it steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::deadline::Watch;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A server SETTINGS frame (no parameters) then GOAWAY(last stream 0, PROTOCOL_ERROR): the
/// answer to an invalid connection preface (RFC 9113 §3.4, §6.8).
pub const H2_BAD_PREFACE_REPLY: &[u8] = &[
    0, 0, 0, 4, 0, 0, 0, 0, 0, // SETTINGS, empty, stream 0
    0, 0, 8, 7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// Largest head the guard buffers across reads; hyper refuses larger ones itself.
const MAX_HEAD: usize = 96 * 1024;
/// hyper's default limit is 100 headers; a head with more is refused by hyper.
const MAX_HEADERS: usize = 128;

pub struct ConnIo<S> {
    inner: S,
    prefix: Bytes,
    guard: Option<H1Guard>,
    /// The request-head deadline (HTTP/1): reads fail once it expired.
    watch: Option<Arc<Watch>>,
    /// How many of the stream's first bytes matched the start of the HTTP/2 preface, until
    /// it is decided: `PREFACE_START` of them exempt `watch` (h2c); None once decided.
    sniffed: Option<usize>,
}

impl<S> ConnIo<S> {
    /// `prefix` is replayed before the stream's own bytes; `h1` enables the HTTP/1 guard.
    pub fn new(inner: S, prefix: Bytes, h1: bool) -> Self {
        Self {
            inner,
            prefix,
            guard: h1.then(H1Guard::default),
            watch: None,
            sniffed: Some(0),
        }
    }

    /// Closes the connection (reads fail) when `watch` expires.
    pub(crate) fn with_deadline(mut self, watch: Arc<Watch>) -> Self {
        self.watch = Some(watch);
        self
    }
}

/// Enough of the HTTP/2 preface to tell it from any HTTP/1 request line.
const PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// Follows the first bytes of a stream against [`PREFACE_START`], `seen` of them matched so far:
/// the new count, all of it when they match, None as soon as they do not.
fn sniff_h2(seen: usize, read: &[u8]) -> Option<usize> {
    let want = &PREFACE_START[seen..];
    let n = want.len().min(read.len());
    (want[..n] == read[..n]).then_some(seen + n)
}

fn head_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "no request head within the deadline",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        if let Some(watch) = &this.watch {
            if watch.expired() {
                return Poll::Ready(Err(head_timeout()));
            }
            if Pin::new(&mut this.inner).poll_read(cx, buf)?.is_pending() {
                watch.register(cx.waker());
                // The sweeper may have expired it between the check and the registration.
                if watch.expired() {
                    return Poll::Ready(Err(head_timeout()));
                }
                return Poll::Pending;
            }
            if let Some(seen) = this.sniffed {
                this.sniffed = sniff_h2(seen, &buf.filled()[before..]);
                if this.sniffed == Some(PREFACE_START.len()) {
                    watch.exempt();
                    this.watch = None;
                    this.sniffed = None;
                }
            }
        } else {
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
        if let Some(guard) = this.guard.as_mut() {
            guard.scan(&mut buf.filled_mut()[before..]);
            if guard.state == State::Off {
                this.guard = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Between requests, or inside a head (bytes so far in `head`).
    #[default]
    Head,
    /// A `Content-Length` body: bytes left.
    Fixed(u64),
    /// Chunk size digits; the value so far.
    Size(u64),
    /// Inside a chunk extension (after `;`), until CR.
    Ext(u64),
    /// After the CR that ends a chunk-size line.
    SizeLf(u64),
    /// Chunk data left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    EndLf,
    /// Not following this connection any more.
    Off,
}

#[derive(Default)]
struct H1Guard {
    state: State,
    head: Vec<u8>,
}

impl H1Guard {
    fn scan(&mut self, mut data: &mut [u8]) {
        while !data.is_empty() {
            let used = match self.state {
                State::Off => return,
                State::Head => self.head_bytes(data),
                State::Fixed(n) | State::Data(n) => {
                    let take = n.min(data.len() as u64);
                    let left = n - take;
                    self.state = match self.state {
                        State::Fixed(_) if left == 0 => State::Head,
                        State::Fixed(_) => State::Fixed(left),
                        _ if left == 0 => State::DataCr,
                        _ => State::Data(left),
                    };
                    take as usize
                }
                _ => {
                    self.chunk_byte(&mut data[0]);
                    1
                }
            };
            data = &mut data[used..];
        }
    }

    /// One byte of chunk framing (sizes, extensions, CRLFs, trailers).
    fn chunk_byte(&mut self, b: &mut u8) {
        self.state = match (self.state, *b) {
            (State::Size(n), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = (*b as char).to_digit(16).unwrap_or(0) as u64;
                match n.checked_mul(16).and_then(|v| v.checked_add(digit)) {
                    Some(v) => State::Size(v),
                    None => State::Off, // hyper refuses the overflow itself
                }
            }
            (State::Size(n), b';') => State::Ext(n),
            (State::Size(n), b'\r') => State::SizeLf(n),
            (State::Size(_), b' ' | b'\t') => {
                // RFC 9112 §7.1: chunk-size is followed by chunk-ext or CRLF, nothing else.
                *b = b'G';
                State::Off
            }
            (State::Ext(n), b'\r') => State::SizeLf(n),
            (State::Ext(n), _) => State::Ext(n),
            (State::SizeLf(0), b'\n') => State::TrailerStart,
            (State::SizeLf(n), b'\n') => State::Data(n),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size(0),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerLine, b'\r') => State::TrailerLine,
            (State::TrailerStart | State::TrailerLine, b'\n') => State::TrailerStart,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::EndLf, b'\n') => State::Head,
            // Anything else is a framing error hyper reports itself.
            _ => State::Off,
        };
    }

    /// Feeds head bytes; returns how many belong to the head (all of `data` while incomplete).
    fn head_bytes(&mut self, data: &mut [u8]) -> usize {
        if self.head.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112 §2.2), as hyper does.
            let skip = data
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(data.len());
            if skip > 0 {
                return skip;
            }
            // Common case: the whole head is in this read, parse it in place.
            match parse_head(data) {
                Parsed::Complete(len, next) if len <= MAX_HEAD => {
                    self.state = next;
                    return len;
                }
                Parsed::Partial => {}
                _ => {
                    self.state = State::Off;
                    return data.len();
                }
            }
            self.head.extend_from_slice(data);
            return data.len();
        }
        let old = self.head.len();
        self.head.extend_from_slice(data);
        match parse_head(&self.head) {
            Parsed::Complete(len, next) if len <= MAX_HEAD => {
                self.head.clear();
                self.state = next;
                len - old
            }
            Parsed::Partial if self.head.len() <= MAX_HEAD => data.len(),
            _ => {
                self.head = Vec::new();
                self.state = State::Off;
                data.len()
            }
        }
    }
}

enum Parsed {
    /// Head length and the body framing that follows.
    Complete(usize, State),
    Partial,
    Refused,
}

fn parse_head(buf: &[u8]) -> Parsed {
    // Uninitialised slots: no 4 KiB of empty headers written per request.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Refused,
    };
    let mut chunked = false;
    let mut te = false;
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            // The final coding decides (hyper refuses a request whose last coding is not chunked).
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Parsed::Refused;
            };
            if length.is_some_and(|l| l != n) {
                return Parsed::Refused;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            // Whatever hyper makes of an upgrade, the bytes after it may not be HTTP/1.
            return Parsed::Refused;
        }
    }
    let next = if te {
        if chunked {
            State::Size(0)
        } else {
            return Parsed::Refused;
        }
    } else {
        match length {
            Some(0) | None => State::Head,
            Some(n) => State::Fixed(n),
        }
    };
    Parsed::Complete(len, next)
}

/// Runs the guard over `data` in arbitrary splits (the fuzz target and the unit tests).
pub fn guard_scan(data: &mut [u8], split: usize) {
    let mut g = H1Guard::default();
    let split = split.min(data.len());
    let (a, b) = data.split_at_mut(split);
    g.scan(a);
    g.scan(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http2_preface_is_told_apart_however_it_is_split() {
        let full = PREFACE_START.len();
        // In one read, with the rest of the preface after it.
        assert_eq!(sniff_h2(0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(full));
        // Split: undecided after "PR", decided by the rest.
        assert_eq!(sniff_h2(0, b"PR"), Some(2));
        assert_eq!(sniff_h2(2, b"I * HTTP/2.0\r\n"), Some(full));
        // HTTP/1 request lines, whole or split at the same place.
        assert_eq!(sniff_h2(0, b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(sniff_h2(0, b"P"), Some(1));
        assert_eq!(sniff_h2(1, b"OST / HTTP/1.1\r\n"), None);
        assert_eq!(sniff_h2(0, b"PRI / HTTP/1.1\r\n"), None);
        // An empty read (end of stream) decides nothing.
        assert_eq!(sniff_h2(3, b""), Some(3));
    }

    fn guarded(input: &[u8]) -> Vec<Vec<u8>> {
        (0..=input.len())
            .map(|split| {
                let mut v = input.to_vec();
                guard_scan(&mut v, split);
                v
            })
            .collect()
    }

    #[test]
    fn whitespace_after_chunk_size_is_poisoned_at_any_split() {
        let req = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n";
        let pos = req.len() - 5;
        assert_eq!(req[pos], b' ');
        for out in guarded(req) {
            assert_eq!(out[pos], b'G');
            assert_eq!(&out[..pos], &req[..pos]);
        }
    }

    #[test]
    fn valid_streams_are_untouched() {
        let req: &[u8] = b"\r\nPOST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            3;a=b c\r\n 0 \r\n0\r\nX: y \r\n\r\n\
            POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n0 \r\n\
            POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0 0 0 0 0 \r\n0\r\n\r\n";
        for out in guarded(req) {
            assert_eq!(out, req);
        }
        // The same whitespace after a size later in the stream is caught.
        let mut bad = req.to_vec();
        bad.extend_from_slice(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\t\r\n",
        );
        let pos = bad.len() - 3;
        for out in guarded(&bad) {
            assert_eq!(out[pos], b'G', "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn http2_preface_turns_the_guard_off() {
        let mut v = H2_PREFACE.to_vec();
        v.extend_from_slice(b"0 \r\n");
        let orig = v.clone();
        let mut g = H1Guard::default();
        g.scan(&mut v);
        assert_eq!(g.state, State::Off);
        assert_eq!(v, orig);
    }

    #[test]
    fn a_whole_connection_answers_each_chunked_case() {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (body, status) in [
            ("5\r\nhello\r\n0\r\n\r\n", "200 OK"),
            ("5\r\nhello\r\n0 \r\n\r\n", "400 Bad Request"),
            ("5;a\rb\r\nhello\r\n0\r\n\r\n", "400 Bad Request"),
            ("0\r\nContent-Length: 1\r\n\r\n", "400 Bad Request"),
            ("0\r\nX-Sum: 1\r\n\r\n", "200 OK"),
        ] {
            let out = crate::fuzzing::http1_exchange(format!("{head}{body}").as_bytes());
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{body:?}: {text}"
            );
        }
    }
}
