//! Building the code package: every file encrypted on its own (`<path>.enc`), except files named
//! `requirements.txt`, gathered in an uncompressed tar whose members are sorted by name and whose
//! headers carry no time, owner or mode of the developer's machine. Given the key and the recorded
//! nonces the package is byte-for-byte reproducible, which is what lets anyone recompute the
//! enclave measurement from the plaintext code.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use crypto_secretbox::aead::{OsRng, rand_core::RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::secretbox::{NONCE_LEN, encrypt_file};
use crate::{CodeKey, ENC_SUFFIX, is_clear_file};

/// The nonce of every encrypted file, by its path relative to the code directory.
pub type Nonces = BTreeMap<String, [u8; NONCE_LEN]>;

/// A file to put in a package: its relative path (with `/`) and where to read it.
#[derive(Debug, Clone)]
pub struct PackageFile {
    /// Member path: relative, `/`-separated, no empty, `.` or `..` component.
    pub rel: String,
    /// Path on disk to read the plaintext from.
    pub abs: PathBuf,
}

/// What [`build_package`] wrote.
#[derive(Debug, Clone)]
pub struct PackageSummary {
    /// Nonce used for each encrypted file; record them to rebuild the same package later.
    pub nonces: Nonces,
    /// Number of files stored encrypted (`<path>.enc`).
    pub encrypted_files: usize,
    /// Number of `requirements.txt` files stored in clear.
    pub clear_files: usize,
    /// Total size of the input files, in bytes.
    pub plaintext_bytes: u64,
    /// Size of the tar written, in bytes.
    pub package_bytes: u64,
    /// SHA-256 of the tar: the code fingerprint.
    pub fingerprint: [u8; 32],
}

/// Why a package could not be built (or its nonces not parsed).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The input file on disk.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing the tar to its output failed.
    #[error("cannot write the package: {0}")]
    Write(#[source] io::Error),
    /// Rebuilding with recorded nonces, a file has none: it was added since.
    #[error("no nonce recorded for {0:?}: the code changed since the package was first built")]
    NonceNotFound(String),
    /// A member path that is empty, absolute, or has a `\`, NUL, empty, `.` or `..` component.
    #[error("invalid path in code directory: {0:?}")]
    BadPath(String),
    /// Two input files with the same member path.
    #[error("{0:?} appears twice in the package")]
    Duplicate(String),
    /// The nonces JSON is not an object of 48-hex-character strings.
    #[error("nonces JSON: {0}")]
    NoncesJson(String),
}

/// Plaintext read and encrypted in parallel per batch of about this size, written in order.
const BATCH_BYTES: u64 = 32 << 20;
/// Files larger than this are streamed (read twice, see `stream`) instead of held in memory,
/// so that memory does not depend on the size of any file.
const STREAM_BYTES: u64 = 8 << 20;

fn size_of(f: &PackageFile) -> u64 {
    std::fs::metadata(&f.abs).map_or(0, |m| m.len())
}

struct Member {
    name: String,
    data: Vec<u8>,
    plain_len: u64,
    nonce: Option<[u8; NONCE_LEN]>,
    rel: String,
}

/// Encrypts `files` with `key` and writes the package tar to `out`.
///
/// With `nonces`, every encrypted file must have one recorded (re-encryption is then
/// deterministic); without, a fresh random nonce is drawn per file and returned.
/// `progress` is called with the number of plaintext bytes done so far.
pub fn build_package<W: Write>(
    files: &[PackageFile],
    key: &CodeKey,
    nonces: Option<&Nonces>,
    out: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PackageSummary, PackageError> {
    let mut order: Vec<&PackageFile> = files.iter().collect();
    for f in &order {
        validate_rel(&f.rel)?;
    }
    order.sort_by_cached_key(|f| member_name(&f.rel));
    for pair in order.windows(2) {
        if member_name(&pair[0].rel) == member_name(&pair[1].rel) {
            return Err(PackageError::Duplicate(pair[0].rel.clone()));
        }
    }
    // Resolve every nonce before any work, so a missing one fails fast and nothing is written.
    let mut planned: Vec<(&PackageFile, Option<[u8; NONCE_LEN]>)> = Vec::with_capacity(order.len());
    for f in order {
        let nonce = if is_clear_file(&f.rel) {
            None
        } else {
            Some(match nonces {
                Some(map) => *map
                    .get(&f.rel)
                    .ok_or_else(|| PackageError::NonceNotFound(f.rel.clone()))?,
                None => {
                    let mut n = [0u8; NONCE_LEN];
                    OsRng.fill_bytes(&mut n);
                    n
                }
            })
        };
        planned.push((f, nonce));
    }

    let mut hashing = HashingWriter::new(out);
    let mut summary = PackageSummary {
        nonces: Nonces::new(),
        encrypted_files: 0,
        clear_files: 0,
        plaintext_bytes: 0,
        package_bytes: 0,
        fingerprint: [0; 32],
    };
    {
        let mut builder = tar::Builder::new(&mut hashing);
        let mut start = 0;
        while start < planned.len() {
            if size_of(planned[start].0) > STREAM_BYTES {
                let (f, nonce) = planned[start];
                summary.plaintext_bytes += stream_member(&mut builder, f, key, nonce)?;
                match nonce {
                    Some(n) => {
                        summary.encrypted_files += 1;
                        summary.nonces.insert(f.rel.clone(), n);
                    }
                    None => summary.clear_files += 1,
                }
                progress(summary.plaintext_bytes);
                start += 1;
                continue;
            }
            let end = batch_end(&planned, start);
            let members: Vec<Member> = planned[start..end]
                .par_iter()
                .map(|(f, nonce)| read_member(f, key, *nonce))
                .collect::<Result<_, _>>()?;
            for m in members {
                append(&mut builder, &m.name, &m.data).map_err(PackageError::Write)?;
                summary.plaintext_bytes += m.plain_len;
                match m.nonce {
                    Some(n) => {
                        summary.encrypted_files += 1;
                        summary.nonces.insert(m.rel, n);
                    }
                    None => summary.clear_files += 1,
                }
                progress(summary.plaintext_bytes);
            }
            start = end;
        }
        builder.finish().map_err(PackageError::Write)?;
    }
    hashing.flush().map_err(PackageError::Write)?;
    summary.package_bytes = hashing.written;
    summary.fingerprint = hashing.hasher.finalize().into();
    Ok(summary)
}

/// End of the batch starting at `start`: files up to about `BATCH_BYTES` of plaintext (sizes from
/// metadata; a file that cannot be stat'ed is reported when it is read).
fn batch_end(planned: &[(&PackageFile, Option<[u8; NONCE_LEN]>)], start: usize) -> usize {
    let mut total = 0u64;
    let mut end = start;
    while end < planned.len() {
        let size = size_of(planned[end].0);
        if size > STREAM_BYTES && end > start {
            break;
        }
        total += size;
        end += 1;
        if total >= BATCH_BYTES {
            break;
        }
    }
    end
}

fn read_member(
    f: &PackageFile,
    key: &CodeKey,
    nonce: Option<[u8; NONCE_LEN]>,
) -> Result<Member, PackageError> {
    let plain = std::fs::read(&f.abs).map_err(|source| PackageError::Read {
        path: f.abs.clone(),
        source,
    })?;
    let plain_len = plain.len() as u64;
    let data = match &nonce {
        Some(n) => encrypt_file(key, n, &plain),
        None => plain,
    };
    Ok(Member {
        name: member_name(&f.rel),
        data,
        plain_len,
        nonce,
        rel: f.rel.clone(),
    })
}

/// Appends one large file as a member without holding it in memory; returns its plaintext size.
fn stream_member<W: Write>(
    builder: &mut tar::Builder<W>,
    f: &PackageFile,
    key: &CodeKey,
    nonce: Option<[u8; NONCE_LEN]>,
) -> Result<u64, PackageError> {
    use std::io::Read;
    let read_err = |source| PackageError::Read {
        path: f.abs.clone(),
        source,
    };
    let open = || std::fs::File::open(&f.abs).map_err(read_err);
    let stamp = |file: &std::fs::File| {
        file.metadata()
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(read_err)
    };
    let first = open()?;
    let before = stamp(&first)?;
    let name = member_name(&f.rel);
    let len = match nonce {
        None => {
            let len = before.0;
            append_exact(builder, &name, len, first.take(len))?;
            len
        }
        Some(n) => {
            let (tag, len) = crate::stream::tag_of(key, &n, first).map_err(read_err)?;
            let mut head = n.to_vec();
            head.extend_from_slice(&tag);
            let body = crate::stream::Encrypting::new(key, &n, open()?.take(len));
            append_exact(
                builder,
                &name,
                crate::secretbox::OVERHEAD as u64 + len,
                io::Cursor::new(head).chain(body),
            )?;
            len
        }
    };
    // Read twice: the file must not have changed in between (its tag would not match).
    if stamp(&open()?)? != before || len != before.0 {
        return Err(read_err(io::Error::other(
            "the file changed while it was packaged",
        )));
    }
    Ok(len)
}

/// Appends a member of exactly `len` bytes read from `data` (an error if it ends early, which
/// would otherwise leave a corrupt tar).
fn append_exact<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    len: u64,
    data: impl io::Read,
) -> Result<(), PackageError> {
    struct Exact<R> {
        inner: R,
        left: u64,
    }
    impl<R: io::Read> io::Read for Exact<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Ok(0);
            }
            let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
            let n = self.inner.read(&mut buf[..max])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a file shrank while it was packaged",
                ));
            }
            self.left -= n as u64;
            Ok(n)
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder
        .append_data(
            &mut header,
            name,
            Exact {
                inner: data,
                left: len,
            },
        )
        .map_err(PackageError::Write)
}

fn member_name(rel: &str) -> String {
    if is_clear_file(rel) {
        rel.to_string()
    } else {
        format!("{rel}{ENC_SUFFIX}")
    }
}

fn validate_rel(rel: &str) -> Result<(), PackageError> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.contains('\\')
        && !rel.contains('\0')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(PackageError::BadPath(rel.to_string()))
    }
}

/// A regular-file member with a header that depends on nothing but its name and size.
fn append<W: Write>(builder: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder.append_data(&mut header, name, data)
}

/// SHA-256 of the package computed while it is written, so the tar is not read twice.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 of a package file: its code fingerprint.
pub fn fingerprint(path: &std::path::Path) -> io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// Nonces as the original context stored them: `{"<relpath>": "<hex nonce>"}`.
pub fn nonces_to_json(nonces: &Nonces) -> String {
    let map: serde_json::Map<String, serde_json::Value> = nonces
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(hex::encode(v))))
        .collect();
    serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .expect("a map of strings always serializes")
}

/// Parses what [`nonces_to_json`] writes (the original's context file format).
pub fn nonces_from_json(text: &str) -> Result<Nonces, PackageError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| PackageError::NoncesJson(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| PackageError::NoncesJson("must be a JSON object".into()))?;
    let mut out = Nonces::new();
    for (k, v) in obj {
        let mut n = [0u8; NONCE_LEN];
        let hex_str = v.as_str().unwrap_or("");
        hex::decode_to_slice(hex_str, &mut n).map_err(|_| {
            PackageError::NoncesJson(format!("nonce of {k:?} must be 48 hexadecimal characters"))
        })?;
        out.insert(k.clone(), n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file over the streaming threshold gives the same member bytes as the in-memory path,
    /// next to small files in sorted order.
    #[test]
    fn large_files_are_streamed_with_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..(STREAM_BYTES as usize + 12_345))
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        std::fs::write(dir.path().join("a.py"), b"print(1)\n").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), b"flask\n").unwrap();
        let files: Vec<PackageFile> = ["a.py", "big.bin", "requirements.txt"]
            .iter()
            .map(|r| PackageFile {
                rel: (*r).into(),
                abs: dir.path().join(r),
            })
            .collect();
        let key = CodeKey::from_hex(&"11".repeat(32)).unwrap();
        let mut out = Vec::new();
        let summary = build_package(&files, &key, None, &mut out, &|_| {}).unwrap();
        assert_eq!(summary.encrypted_files, 2);
        assert_eq!(summary.plaintext_bytes, big.len() as u64 + 9 + 6);
        let mut archive = tar::Archive::new(&out[..]);
        let members: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                io::Read::read_to_end(&mut e, &mut data).unwrap();
                (name, data)
            })
            .collect();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.py.enc", "big.bin.enc", "requirements.txt"]);
        let nonce = summary.nonces["big.bin"];
        assert_eq!(members[1].1, crate::encrypt_file(&key, &nonce, &big));
        // Re-encryption with the recorded nonces is byte-identical.
        let mut again = Vec::new();
        build_package(&files, &key, Some(&summary.nonces), &mut again, &|_| {}).unwrap();
        assert_eq!(again, out);
    }
}
