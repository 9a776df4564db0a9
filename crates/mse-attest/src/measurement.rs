//! What `mse-enclave` measures besides the launch spec: the digest of a Python environment (the
//! venv tree the app runs in) and of single files. The launch spec (mse-launch) carries these
//! digests, and its SHA-256 is the app's identity (the sim TEE's MRENCLAVE, SNP's HOST_DATA).
//!
//! # Environment digest (version 1)
//!
//! SHA-256 over the venv tree walked in byte order of relative paths (`/`-separated), skipping
//! every `__pycache__` directory and `*.pyc` file (Python writes them at run time). Each entry
//! contributes `type(1) ‖ mode(4, BE, permission bits) ‖ len(8, BE) ‖ relative path ‖ payload`,
//! with type `d` (no payload), `f` (payload = SHA-256 of the content) or `l` (payload =
//! len(8, BE) ‖ link target; links are not followed). Other file types are refused.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What went wrong while measuring.
#[derive(Debug, thiserror::Error)]
pub enum MeasurementError {
    /// Reading a measured file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A measured path is neither a regular file, a directory nor a symlink.
    #[error("{path}: unsupported file type in the environment (only files, directories, links)")]
    FileType {
        /// The file.
        path: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MeasurementError + '_ {
    move |source| MeasurementError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// SHA-256 of a file's content.
pub fn file_digest(path: &Path) -> Result<[u8; 32], MeasurementError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn skipped(name: &[u8], is_dir: bool) -> bool {
    if is_dir {
        name == b"__pycache__"
    } else {
        name.ends_with(b".pyc")
    }
}

/// The environment digest of a venv directory (see the module documentation). Single-threaded
/// on purpose: the runtime measures before it enters its sandbox, which needs one thread.
pub fn environment_digest(root: &Path) -> Result<[u8; 32], MeasurementError> {
    use std::os::unix::ffi::OsStrExt;
    let mut entries: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    let mut stack = vec![(Vec::new(), root.to_path_buf())];
    while let Some((rel, dir)) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let path = entry.path();
            let ft = entry.file_type().map_err(io_err(&path))?;
            if skipped(name.as_bytes(), ft.is_dir()) {
                continue;
            }
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            if ft.is_dir() {
                stack.push((child.clone(), path.clone()));
            }
            entries.insert(child, path);
        }
    }
    let mut hasher = Sha256::new();
    for (rel, path) in &entries {
        let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            b'd'
        } else if ft.is_file() {
            b'f'
        } else if ft.is_symlink() {
            b'l'
        } else {
            return Err(MeasurementError::FileType {
                path: path.display().to_string(),
            });
        };
        hasher.update([kind]);
        hasher.update((meta.permissions().mode() & 0o7777).to_be_bytes());
        hasher.update((rel.len() as u64).to_be_bytes());
        hasher.update(rel);
        match kind {
            b'f' => hasher.update(file_digest(path)?),
            b'l' => {
                let target = fs::read_link(path).map_err(io_err(path))?;
                let target = target.as_os_str().as_bytes();
                hasher.update((target.len() as u64).to_be_bytes());
                hasher.update(target);
            }
            _ => {}
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_digest_ignores_bytecode_and_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("lib/site/pkg")).unwrap();
        fs::write(root.join("lib/site/pkg/__init__.py"), b"x = 1\n").unwrap();
        std::os::unix::fs::symlink("lib", root.join("lib64")).unwrap();
        let d0 = environment_digest(root).unwrap();
        fs::create_dir_all(root.join("lib/site/pkg/__pycache__")).unwrap();
        fs::write(
            root.join("lib/site/pkg/__pycache__/m.cpython-311.pyc"),
            b"c",
        )
        .unwrap();
        fs::write(root.join("lib/site/pkg/stray.pyc"), b"c").unwrap();
        assert_eq!(environment_digest(root).unwrap(), d0);
        fs::write(root.join("lib/site/pkg/__init__.py"), b"x = 2\n").unwrap();
        let d1 = environment_digest(root).unwrap();
        assert_ne!(d1, d0);
        fs::set_permissions(
            root.join("lib/site/pkg/__init__.py"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_ne!(environment_digest(root).unwrap(), d1);
        assert!(matches!(
            environment_digest(&root.join("missing")),
            Err(MeasurementError::Io { .. })
        ));
    }
}
