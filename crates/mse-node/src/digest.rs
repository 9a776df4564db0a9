//! The digests the node declares for an app (`GET /apps/{id}`), which `mse` needs to recompute
//! the enclave's measurement: the runtime (the `mse-enclave` executable) and the environment
//! (the virtualenv handed to it with `--env`).
//!
//! The environment digest here follows the rule stated for the measurement manifest (SHA-256
//! over the venv tree: sorted relative paths, file types, modes and contents; `__pycache__`
//! and `*.pyc` ignored). When `mse_attest::measurement` lands, this must call its function so
//! the node and the enclave can never disagree.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// SHA-256 of a file, hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn skipped(name: &str) -> bool {
    name == "__pycache__" || name.ends_with(".pyc")
}

fn walk(root: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        out.push((path.clone(), entry.path()));
        if kind.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// Environment digest of a virtualenv tree: for each entry in byte order of its relative path,
/// `type(1: f|d|l) ‖ mode(u32 LE) ‖ len(path) u64 LE ‖ path ‖ content-or-target SHA-256`.
pub fn tree_sha256(root: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries = Vec::new();
    walk(root, "", &mut entries)?;
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    h.update(b"mse-env-v1\0");
    for (rel, path) in entries {
        let meta = std::fs::symlink_metadata(&path)?;
        let (kind, content) = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            (
                b'l',
                Sha256::digest(target.as_os_str().as_encoded_bytes()).to_vec(),
            )
        } else if meta.is_dir() {
            (b'd', vec![0u8; 32])
        } else {
            (
                b'f',
                hex::decode(file_sha256(&path)?).map_err(std::io::Error::other)?,
            )
        };
        h.update([kind]);
        h.update((meta.permissions().mode() & 0o7777).to_le_bytes());
        h.update((rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update(&content);
    }
    Ok(hex::encode(h.finalize()))
}

/// Caches digests by path, length and modification time.
/// A cached digest: the file's length and mtime when computed, and the digest.
type Entry = (u64, Option<SystemTime>, String);

#[derive(Default)]
pub struct DigestCache {
    cache: Mutex<HashMap<PathBuf, Entry>>,
}

impl DigestCache {
    fn get(
        &self,
        path: &Path,
        compute: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let key = (meta.len(), meta.modified().ok());
        if let Some((len, mtime, digest)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            if (*len, *mtime) == key {
                return Ok(digest.clone());
            }
        }
        let digest = compute(path)?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_path_buf(), (key.0, key.1, digest.clone()));
        Ok(digest)
    }

    pub fn runtime(&self, bin: &Path) -> std::io::Result<String> {
        self.get(bin, file_sha256)
    }

    /// A venv's digest; keyed on its `bin/python` entry since directory times do not follow
    /// changes deep in the tree (venvs the node built never change once ready).
    pub fn environment(&self, venv: &Path) -> std::io::Result<String> {
        let key = venv.join("pyvenv.cfg");
        let key = if key.exists() {
            key
        } else {
            venv.to_path_buf()
        };
        let venv = venv.to_path_buf();
        self.get(&key, |_| tree_sha256(&venv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_digest_ignores_bytecode_and_sees_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib/__pycache__")).unwrap();
        std::fs::write(dir.path().join("lib/a.py"), b"x = 1\n").unwrap();
        let d1 = tree_sha256(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("lib/__pycache__/a.cpython-311.pyc"),
            b"junk",
        )
        .unwrap();
        assert_eq!(tree_sha256(dir.path()).unwrap(), d1);
        std::fs::write(dir.path().join("lib/a.py"), b"x = 2\n").unwrap();
        assert_ne!(tree_sha256(dir.path()).unwrap(), d1);
    }
}
