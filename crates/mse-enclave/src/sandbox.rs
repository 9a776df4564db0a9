//! The app's sandbox, behind the API contract of the `mse-sandbox` crate (private mount
//! namespace, sealed $HOME, tmpfs, memory limit, seccomp, audit hook).
//!
//! Until that crate is merged, this is the plain-directory fallback that DESIGN.md describes for
//! hosts without namespaces: per-app directories under `--state-dir`, named by the same
//! variables, with no encryption, no memory limit and no seccomp — and the log says so. When
//! `mse-sandbox` lands, this module becomes a re-export of it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What the sandbox needs to know.
pub struct SandboxConfig {
    pub size_mb: u64,
    /// Key of the sealed $HOME (derived from the platform sealing key and the measurement).
    pub home_key: [u8; 32],
    /// Per-app host directory: sealed $HOME backing and fallback directories.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("size_mb", &self.size_mb)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// The paths the app sees (the seeds' table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    pub home: PathBuf,
    pub secrets_path: PathBuf,
    pub sealed_secrets_path: PathBuf,
    pub tmp_path: PathBuf,
    pub module_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "--state-dir {0} is not empty and is not an mse-enclave state directory: refusing to use it"
    )]
    NotStateDir(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> SandboxError {
    move |source| SandboxError::Io { context, source }
}

/// An entered sandbox.
#[derive(Debug)]
pub struct Sandbox {
    paths: AppPaths,
    size_mb: u64,
    root: PathBuf,
}

/// Set the sandbox up. Call it before any thread starts (the real implementation unshares
/// namespaces, which needs a single-threaded process).
pub fn enter(cfg: &SandboxConfig) -> Result<Sandbox, SandboxError> {
    claim_state_dir(&cfg.state_dir)?;
    let root = fs::canonicalize(&cfg.state_dir).map_err(io_err(format!(
        "cannot resolve {}",
        cfg.state_dir.display()
    )))?;
    let home = root.join("root");
    let paths = AppPaths {
        secrets_path: home.join(".cache/mse/secrets.json"),
        sealed_secrets_path: home.join(".cache/mse/sealed_secrets.json"),
        home,
        tmp_path: root.join("tmp"),
        module_path: root.join("mse-app"),
        key_path: root.join("key"),
    };
    // A fresh start every time: nothing from an earlier run (which was never sealed here)
    // survives into this one.
    for dir in [
        &paths.home,
        &paths.tmp_path,
        &paths.module_path,
        &paths.key_path,
    ] {
        wipe(dir)?;
        fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    }
    tracing::warn!(
        "sandbox unavailable: the app runs in plain per-app directories under {} \
         (no private mount namespace, no sealed $HOME, no memory limit, no seccomp)",
        root.display()
    );
    Ok(Sandbox {
        paths,
        size_mb: cfg.size_mb,
        root,
    })
}

/// Marks a directory as an mse-enclave state directory (its app directories get wiped).
pub const STATE_MARKER: &str = ".mse-enclave-state";

/// Create the state directory, or accept an existing one only if it is empty or ours: wiping
/// the app directories of, say, a home directory given by mistake must never happen.
fn claim_state_dir(dir: &Path) -> Result<(), SandboxError> {
    fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    let marker = dir.join(STATE_MARKER);
    if !marker.exists() {
        let mut entries =
            fs::read_dir(dir).map_err(io_err(format!("cannot read {}", dir.display())))?;
        if entries.next().is_some() {
            return Err(SandboxError::NotStateDir(dir.to_path_buf()));
        }
        fs::write(&marker, b"").map_err(io_err(format!("cannot create {}", marker.display())))?;
    }
    Ok(())
}

fn wipe(dir: &Path) -> Result<(), SandboxError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("cannot clear {}", dir.display()))(e)),
    }
}

impl Sandbox {
    pub fn paths(&self) -> &AppPaths {
        &self.paths
    }

    /// The variables to set for the app (names and meaning of the seeds' table).
    pub fn env(&self) -> Vec<(String, String)> {
        let p = &self.paths;
        [
            ("HOME", &p.home),
            ("SECRETS_PATH", &p.secrets_path),
            ("SEALED_SECRETS_PATH", &p.sealed_secrets_path),
            ("TMP_PATH", &p.tmp_path),
            ("MODULE_PATH", &p.module_path),
            ("KEY_PATH", &p.key_path),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .collect()
    }

    /// Memory left to the app; without a limit, the requested size.
    pub fn effective_memory_mb(&self) -> u64 {
        self.size_mb
    }

    /// Seccomp on every thread (no-op without the real sandbox).
    pub fn lock_down(&self) -> Result<(), SandboxError> {
        Ok(())
    }

    /// Python run before the app is imported (the audit hook in the real sandbox).
    pub fn python_startup_code() -> &'static str {
        ""
    }

    /// Erase what the app left (the documented behaviour: $HOME is erased at stop).
    pub fn stop(self) -> Result<(), SandboxError> {
        for dir in [
            &self.paths.home,
            &self.paths.tmp_path,
            &self.paths.module_path,
            &self.paths.key_path,
        ] {
            wipe(dir)?;
        }
        tracing::debug!("sandbox {} cleared", self.root.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_foreign_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious"), b"x").unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        let cfg = SandboxConfig {
            size_mb: 1,
            home_key: [0; 32],
            state_dir: dir.path().to_path_buf(),
        };
        assert_eq!(
            enter(&cfg).unwrap_err().to_string(),
            format!(
                "--state-dir {} is not empty and is not an mse-enclave state directory: refusing to use it",
                dir.path().display()
            )
        );
        assert!(dir.path().join("tmp").exists());
        let fresh = dir.path().join("state");
        let cfg = SandboxConfig {
            state_dir: fresh.clone(),
            ..cfg
        };
        let sandbox = enter(&cfg).unwrap();
        fs::write(sandbox.paths().home.join("f"), b"x").unwrap();
        sandbox.stop().unwrap();
        // A second start reuses its own directory.
        let sandbox = enter(&cfg).unwrap();
        assert_eq!(fs::read_dir(&sandbox.paths().home).unwrap().count(), 0);
    }
}
