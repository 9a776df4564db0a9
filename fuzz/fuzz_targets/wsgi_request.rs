//! mse-wsgi's request handling on untrusted bytes:
//! - the Rust-side request → environ conversions (Host header, header names, request target);
//! - the HTTP/1 framing guard in front of hyper, at every split of the input;
//! - a whole HTTP/1 connection (hyper behind the guard, with the server's own checks: Host,
//!   CONNECT, chunked read-ahead, forbidden trailers) fed the input as raw bytes, so chunked
//!   bodies, chunk extensions and trailers are covered. The guard must never change a valid
//!   stream, and the server must answer with a status line or nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let mut parts = rest.splitn(3, |&b| b == 0);
            let host = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            mse_wsgi::fuzzing::request_parts(host, name, target);
        }
        1 => {
            // The guard gives the same result however the stream is split into reads.
            let mut whole = rest.to_vec();
            let len = whole.len();
            mse_wsgi::fuzzing::h1_guard(&mut whole, len);
            let split = usize::from(selector) * 7 % (rest.len() + 1);
            let mut parts = rest.to_vec();
            mse_wsgi::fuzzing::h1_guard(&mut parts, split);
            assert_eq!(whole, parts);
            // It only ever replaces bytes by 'G' and only whitespace.
            for (a, b) in rest.iter().zip(&whole) {
                assert!(a == b || (matches!(a, b' ' | b'\t') && *b == b'G'));
            }
        }
        _ => {
            // Seeded with a chunked request so the fuzzer starts inside the chunk parser.
            let mut req = b"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            req.extend_from_slice(rest);
            let out = mse_wsgi::fuzzing::http1_exchange(&req);
            assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{out:?}");
        }
    }
});
