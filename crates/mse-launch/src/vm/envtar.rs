//! The environment disk: a deterministic tar of the app's virtualenv (host side, [`pack`]) and
//! its checked unpacking into guest memory (guest side, [`unpack`]).
//!
//! Entries in byte order of their `/`-separated relative paths; directories, regular files and
//! symbolic links only (anything else is refused); mode = permission bits, owner 0:0, time 0, no
//! user or group names (GNU headers, long names as GNU extensions). `__pycache__` directories and
//! `*.pyc` files are left out, as "environment digest v1" leaves them out: a byte the digest does
//! not cover must not reach the guest, and [`unpack`] refuses them.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// Why the environment tar cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EnvTarError {
    /// An I/O failure on the host or guest side.
    #[error("{path}: {source}")]
    Io {
        /// The path (or stream) concerned.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file type the environment may not hold (device, socket, FIFO, hard link).
    #[error("environment entry {0}: not a directory, regular file or symbolic link")]
    FileType(String),
    /// A path that is absolute, has `..`, or is not UTF-8.
    #[error("environment entry {0:?}: not a plain relative path")]
    BadPath(String),
    /// A compiled Python file (not covered by the environment digest).
    #[error("environment entry {0}: compiled Python files are not part of an environment")]
    Bytecode(String),
    /// Bytes after the archive that are not zero padding.
    #[error("environment disk: non-zero bytes after the end of the archive")]
    Trailing,
}

fn io_err(path: impl std::fmt::Display) -> impl FnOnce(io::Error) -> EnvTarError {
    move |source| EnvTarError::Io {
        path: path.to_string(),
        source,
    }
}

/// Whether the digest (and so the tar) leaves this relative path out.
fn is_bytecode(rel: &str) -> bool {
    rel.split('/').any(|c| c == "__pycache__") || rel.ends_with(".pyc")
}

/// Relative paths under `root`, sorted by bytes, bytecode left out.
fn walk(root: &Path) -> Result<Vec<(String, fs::Metadata)>, EnvTarError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir).map_err(io_err(dir.display()))? {
            let entry = entry.map_err(io_err(dir.display()))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| EnvTarError::BadPath(name.to_string_lossy().into_owned()))?;
            let child = rel.join(name);
            let text = child.to_string_lossy().into_owned();
            if is_bytecode(&text) {
                continue;
            }
            let md = fs::symlink_metadata(root.join(&child)).map_err(io_err(&text))?;
            if md.is_dir() {
                stack.push(child);
            } else if !md.is_file() && !md.file_type().is_symlink() {
                return Err(EnvTarError::FileType(text));
            }
            out.push((text, md));
        }
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Writes the deterministic tar of the virtualenv `root` to `out`; returns the bytes written.
pub fn pack<W: Write>(root: &Path, out: W) -> Result<u64, EnvTarError> {
    let entries = walk(root)?;
    let mut counter = CountingWriter { inner: out, n: 0 };
    {
        let mut builder = tar::Builder::new(&mut counter);
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        for (rel, md) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(md.permissions().mode() & 0o7777);
            let full = root.join(&rel);
            if md.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &rel, io::empty())
                    .map_err(io_err(&rel))?;
            } else if md.is_file() {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(md.len());
                let file = fs::File::open(&full).map_err(io_err(&rel))?;
                builder
                    .append_data(&mut header, &rel, file)
                    .map_err(io_err(&rel))?;
            } else {
                let target = fs::read_link(&full).map_err(io_err(&rel))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &rel, &target)
                    .map_err(io_err(&rel))?;
            }
        }
        builder.finish().map_err(io_err("environment tar"))?;
    }
    counter.inner.flush().map_err(io_err("environment tar"))?;
    Ok(counter.n)
}

struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Unpacks an environment tar read from `input` into the empty or missing directory `dest`,
/// refusing anything [`pack`] would not write; then checks that the rest of `input` is zero
/// padding. The caller then checks the tree digest of `dest` against the spec.
pub fn unpack<R: Read>(input: R, dest: &Path) -> Result<(), EnvTarError> {
    fs::create_dir_all(dest).map_err(io_err(dest.display()))?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err("environment tar"))? {
        let mut entry = entry.map_err(io_err("environment tar"))?;
        let path = entry
            .path()
            .map_err(io_err("environment tar"))?
            .into_owned();
        let text = path
            .to_str()
            .ok_or_else(|| EnvTarError::BadPath(path.to_string_lossy().into_owned()))?
            .to_owned();
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(EnvTarError::BadPath(text));
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Symlink => {}
            _ => return Err(EnvTarError::FileType(text)),
        }
        if is_bytecode(&text) {
            return Err(EnvTarError::Bytecode(text));
        }
        let inside = entry.unpack_in(dest).map_err(io_err(&text))?;
        if !inside {
            return Err(EnvTarError::BadPath(text));
        }
    }
    // Whatever follows the end-of-archive blocks must be the disk's zero padding.
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(io_err("environment disk"))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(EnvTarError::Trailing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn venv(root: &Path) {
        fs::create_dir_all(root.join("lib/python3.11/site-packages/flask/__pycache__")).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(
            root.join("pyvenv.cfg"),
            "home = /usr/bin\nversion = 3.11.2\n",
        )
        .unwrap();
        fs::write(
            root.join("lib/python3.11/site-packages/flask/__init__.py"),
            "x = 1\n",
        )
        .unwrap();
        fs::write(
            root.join("lib/python3.11/site-packages/flask/__pycache__/__init__.cpython-311.pyc"),
            "junk",
        )
        .unwrap();
        fs::write(root.join("bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/usr/bin/python3.11", root.join("bin/python")).unwrap();
        symlink("lib", root.join("lib64")).unwrap();
        let long = "d".repeat(120);
        fs::create_dir_all(root.join(&long)).unwrap();
        fs::write(root.join(&long).join("f".repeat(80)), "long").unwrap();
    }

    #[test]
    fn pack_is_deterministic_and_unpacks_to_the_same_tree() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        venv(a.path());
        venv(b.path());
        let mut ta = Vec::new();
        let mut tb = Vec::new();
        let na = pack(a.path(), &mut ta).unwrap();
        pack(b.path(), &mut tb).unwrap();
        assert_eq!(na, ta.len() as u64);
        assert_eq!(
            ta, tb,
            "two identical trees in two places give the same bytes"
        );
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("venv");
        let mut padded = ta.clone();
        padded.resize(
            crate::vm::abi::padded_len(ta.len() as u64) as usize + 512,
            0,
        );
        unpack(&padded[..], &dest).unwrap();
        assert_eq!(
            mse_attest::measurement::environment_digest(&dest).unwrap(),
            mse_attest::measurement::environment_digest(a.path()).unwrap()
        );
        assert!(
            !dest
                .join("lib/python3.11/site-packages/flask/__pycache__")
                .exists()
        );
        assert_eq!(
            fs::read_link(dest.join("bin/python")).unwrap(),
            PathBuf::from("/usr/bin/python3.11")
        );
        assert_eq!(
            fs::metadata(dest.join("bin/tool"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
    }

    #[test]
    fn unpack_refuses_what_pack_never_writes() {
        let out = tempfile::tempdir().unwrap();
        let tar_with = |path: &str, kind: tar::EntryType| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(1);
            h.set_mode(0o644);
            b.append_data(&mut h, path, &b"x"[..]).unwrap();
            b.into_inner().unwrap()
        };
        // Each archive unpacks into a fresh directory; the error message is checked.
        let refusal =
            |tar: &[u8], into: &str| unpack(tar, &out.path().join(into)).unwrap_err().to_string();
        assert_eq!(
            refusal(
                &tar_with("a/__pycache__/m.pyc", tar::EntryType::Regular),
                "1"
            ),
            "environment entry a/__pycache__/m.pyc: compiled Python files are not part of an environment"
        );
        assert_eq!(
            refusal(&tar_with("fifo", tar::EntryType::Fifo), "2"),
            "environment entry fifo: not a directory, regular file or symbolic link"
        );
        let mut trailing = tar_with("ok", tar::EntryType::Regular);
        trailing.extend_from_slice(&[0, 0, 1]);
        assert_eq!(
            refusal(&trailing, "3"),
            "environment disk: non-zero bytes after the end of the archive"
        );
    }
}
