//! The environment digest the node declares for an app (`GET /apps/{id}`), which `mse` needs to
//! recompute the enclave's measurement: the virtualenv handed to it with `--env` (the runtime's
//! digest is the launcher's, [`crate::node::Node::runtime_digest`]). Computed by `mse_attest::measurement`, the same
//! code the enclave measures itself with, so the two cannot disagree; cached here because a
//! venv tree takes a while to hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use mse_attest::measurement::environment_digest;

/// A cached digest: the key file's length and mtime when computed, and the digest.
type Entry = (u64, Option<SystemTime>, String);

/// Digests of the environments, recomputed only when their key file's length or mtime
/// changes, so that a deploy does not hash them again.
#[derive(Default)]
pub struct DigestCache {
    /// Keyed by key file.
    cache: Mutex<HashMap<PathBuf, Entry>>,
}

impl DigestCache {
    fn get(
        &self,
        key: &Path,
        compute: impl FnOnce() -> std::io::Result<String>,
    ) -> std::io::Result<String> {
        let meta = std::fs::metadata(key)?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((len, mtime, digest)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            && (*len, *mtime) == stamp
        {
            return Ok(digest.clone());
        }
        let digest = compute()?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_path_buf(), (stamp.0, stamp.1, digest.clone()));
        Ok(digest)
    }

    /// A venv's digest, keyed on its `pyvenv.cfg`: the venvs the node builds never change once
    /// ready, and a configured one is expected to stay put while the node runs.
    pub fn environment(&self, venv: &Path) -> std::io::Result<String> {
        let cfg = venv.join("pyvenv.cfg");
        let key = if cfg.exists() {
            cfg
        } else {
            venv.to_path_buf()
        };
        self.get(&key, || {
            environment_digest(venv)
                .map(hex::encode)
                .map_err(std::io::Error::other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_digests_are_the_measurements() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pyvenv.cfg");
        std::fs::write(&cfg, b"home = /usr/bin\n").unwrap();
        let cache = DigestCache::default();
        assert_eq!(
            cache.environment(dir.path()).unwrap(),
            hex::encode(environment_digest(dir.path()).unwrap())
        );
    }
}
