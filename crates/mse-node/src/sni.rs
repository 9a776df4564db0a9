//! Reads the server name (SNI) out of the first bytes a TLS client sends, without terminating
//! TLS: the router only needs to know where to splice the stream. Untrusted input: every length
//! is checked, nothing is allocated beyond the bytes given, and it is fuzzed (fuzz/sni.rs).

/// Most bytes the router buffers while waiting for a complete ClientHello.
pub const MAX_HELLO_BYTES: usize = 16 * 1024 + 5 + 4;

/// What the first bytes of a connection say so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed.
    Incomplete,
    /// A complete ClientHello carrying this host name (lowercase, no trailing dot).
    Sni(String),
    /// A complete ClientHello without a server name.
    NoSni,
}

/// Why the first bytes are not a usable ClientHello (the router closes the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniError {
    /// The first record is not of the handshake content type.
    #[error("not a TLS handshake record")]
    NotHandshake,
    /// The first handshake message is not a ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// The ClientHello does not fit in [`MAX_HELLO_BYTES`].
    #[error("ClientHello longer than {MAX_HELLO_BYTES} bytes")]
    TooLong,
    /// A length or field that does not add up; names which.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SniError> {
        if self.buf.len() < n {
            return Err(SniError::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<usize, SniError> {
        Ok(self.take(1, what)?[0] as usize)
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, SniError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    /// A vector with a `len_bytes`-byte length prefix.
    fn vec(&mut self, len_bytes: usize, what: &'static str) -> Result<&'a [u8], SniError> {
        let n = if len_bytes == 1 {
            self.u8(what)?
        } else {
            self.u16(what)?
        };
        self.take(n, what)
    }
}

/// Parses the TLS records at the start of `buf` (the handshake may span several records).
pub fn parse(buf: &[u8]) -> Result<Hello, SniError> {
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        if rest.is_empty() {
            if handshake.is_empty() {
                return Ok(Hello::Incomplete);
            }
            break;
        }
        if rest[0] != 22 {
            return Err(SniError::NotHandshake);
        }
        if rest.len() < 5 {
            break;
        }
        if rest[1] != 3 {
            return Err(SniError::NotHandshake);
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if len == 0 || len > 16384 {
            return Err(SniError::Malformed("record length"));
        }
        if rest.len() < 5 + len {
            break;
        }
        handshake.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if handshake.len() >= 4 {
            let need =
                4 + (u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize);
            if handshake.len() >= need {
                break;
            }
        }
    }
    if handshake.is_empty() || (handshake.len() < 4 && buf.len() < MAX_HELLO_BYTES) {
        return incomplete(buf);
    }
    if handshake[0] != 1 {
        return Err(SniError::NotClientHello);
    }
    if handshake.len() < 4 {
        return Err(SniError::TooLong);
    }
    let body_len = u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
    if body_len + 4 > MAX_HELLO_BYTES {
        return Err(SniError::TooLong);
    }
    if handshake.len() < 4 + body_len {
        return incomplete(buf);
    }
    client_hello(&handshake[4..4 + body_len])
}

fn incomplete(buf: &[u8]) -> Result<Hello, SniError> {
    if buf.len() >= MAX_HELLO_BYTES {
        Err(SniError::TooLong)
    } else {
        Ok(Hello::Incomplete)
    }
}

fn client_hello(body: &[u8]) -> Result<Hello, SniError> {
    let mut r = Reader { buf: body };
    r.take(2, "client version")?;
    r.take(32, "random")?;
    r.vec(1, "session id")?;
    r.vec(2, "cipher suites")?;
    r.vec(1, "compression methods")?;
    if r.buf.is_empty() {
        return Ok(Hello::NoSni);
    }
    let exts = r.vec(2, "extensions")?;
    // Both the server_name extension and its host_name entry have kind 0.
    let Some(sni) = first_kind_zero(exts, Reader::u16, ["extension type", "extension data"])?
    else {
        return Ok(Hello::NoSni);
    };
    let list = Reader { buf: sni }.vec(2, "server name list")?;
    let Some(name) = first_kind_zero(list, Reader::u8, ["server name type", "server name"])? else {
        return Ok(Hello::NoSni);
    };
    let name = std::str::from_utf8(name).map_err(|_| SniError::Malformed("server name"))?;
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if !crate::config::valid_dns_name(&name) {
        return Err(SniError::Malformed("server name"));
    }
    Ok(Hello::Sni(name))
}

/// The data of the first entry of kind 0 in a list of (kind, 2-byte-length-prefixed data)
/// entries; entries after it are not read.
fn first_kind_zero<'a>(
    list: &'a [u8],
    kind: fn(&mut Reader<'a>, &'static str) -> Result<usize, SniError>,
    [kind_what, data_what]: [&'static str; 2],
) -> Result<Option<&'a [u8]>, SniError> {
    let mut r = Reader { buf: list };
    while !r.buf.is_empty() {
        let k = kind(&mut r, kind_what)?;
        let data = r.vec(2, data_what)?;
        if k == 0 {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with an optional SNI extension.
    pub(crate) fn hello(sni: Option<&str>) -> Vec<u8> {
        let mut exts = Vec::new();
        // An unrelated extension first (supported_versions) to exercise skipping.
        exts.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
        if let Some(name) = sni {
            let n = name.len();
            exts.extend_from_slice(&[0, 0]);
            exts.extend_from_slice(&((n + 5) as u16).to_be_bytes());
            exts.extend_from_slice(&((n + 3) as u16).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&(n as u16).to_be_bytes());
            exts.extend_from_slice(name.as_bytes());
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_the_server_name() {
        let rec = hello(Some("ABC.Localhost."));
        assert_eq!(parse(&rec), Ok(Hello::Sni("abc.localhost".into())));
        assert_eq!(parse(&hello(None)), Ok(Hello::NoSni));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let rec = hello(Some("x.localhost"));
        for n in 0..rec.len() {
            assert_eq!(parse(&rec[..n]), Ok(Hello::Incomplete), "prefix {n}");
        }
    }

    #[test]
    fn handshake_split_over_two_records() {
        let rec = hello(Some("split.localhost"));
        let hs = &rec[5..];
        let (a, b) = hs.split_at(10);
        let mut two = vec![22, 3, 1];
        two.extend_from_slice(&(a.len() as u16).to_be_bytes());
        two.extend_from_slice(a);
        two.extend_from_slice(&[22, 3, 1]);
        two.extend_from_slice(&(b.len() as u16).to_be_bytes());
        two.extend_from_slice(b);
        assert_eq!(parse(&two), Ok(Hello::Sni("split.localhost".into())));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(SniError::NotHandshake));
        assert_eq!(parse(&[22, 2, 0, 0, 1, 0]), Err(SniError::NotHandshake));
        assert_eq!(
            parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
            Err(SniError::NotClientHello)
        );
        assert_eq!(
            parse(&[22, 3, 1, 0, 0]),
            Err(SniError::Malformed("record length"))
        );
        let mut bad = hello(Some("a.localhost"));
        let at = bad.len() - 11;
        bad[at] = b'/';
        assert_eq!(parse(&bad), Err(SniError::Malformed("server name")));
        // A ClientHello that claims to be larger than the limit.
        assert_eq!(
            parse(&[22, 3, 1, 0, 4, 1, 0x01, 0, 0]),
            Err(SniError::TooLong)
        );
    }

    /// Mutated ClientHellos (bit flips, truncations, length bytes forced to extremes): the
    /// parser answers with a value or an error, and a name it returns is always valid.
    #[test]
    fn mutations_never_panic() {
        let base = hello(Some("app.localhost"));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 4 {
                    0 => m[i] ^= 1 << (next() % 8),
                    1 => m[i] = 0xff,
                    2 => m[i] = 0,
                    _ => m.truncate(i),
                }
                if m.is_empty() {
                    break;
                }
            }
            if let Ok(Hello::Sni(name)) = parse(&m) {
                assert!(crate::config::valid_dns_name(&name), "{name:?}");
            }
        }
    }
}
