//! The virtualenv an app runs in: its environment's base venv, plus the packages of the
//! package's plaintext `requirements.txt` in a venv layered on top of it, cached by hash.
//!
//! pip runs on the host with requirements chosen by the uploader, so it is held to wheels only
//! (`--only-binary :all:`: no setup.py of theirs runs here) and to plain requirement lines
//! (no pip options, URLs or paths).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::config::{EnvSource, Environment};
use crate::logs::AppLog;

/// Largest `requirements.txt` read out of a package.
const MAX_REQUIREMENTS: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    #[error("package is not a readable tar archive: {0}")]
    Tar(std::io::Error),
    #[error("requirements.txt is larger than {MAX_REQUIREMENTS} bytes")]
    RequirementsTooLarge,
    #[error(
        "requirements.txt line {0}: only plain requirement specifiers are allowed (no pip options, URLs or paths)"
    )]
    BadRequirement(usize),
    #[error("{0}")]
    Io(String),
    #[error("{what} failed ({status}); see the app log")]
    Command { what: String, status: String },
}

/// The top-level `requirements.txt` of a code package tar, if any.
pub fn requirements_of(package: &Path) -> Result<Option<String>, VenvError> {
    let file = std::fs::File::open(package).map_err(VenvError::Tar)?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(VenvError::Tar)? {
        let entry = entry.map_err(VenvError::Tar)?;
        let path = entry.path().map_err(VenvError::Tar)?.into_owned();
        let path = path.strip_prefix("./").unwrap_or(&path);
        if path == Path::new("requirements.txt") && entry.header().entry_type().is_file() {
            if entry.size() > MAX_REQUIREMENTS {
                return Err(VenvError::RequirementsTooLarge);
            }
            let mut text = String::new();
            entry
                .take(MAX_REQUIREMENTS)
                .read_to_string(&mut text)
                .map_err(VenvError::Tar)?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// The requirement lines of `text` (comments and blanks dropped), each checked.
pub fn requirement_lines(text: &str) -> Result<Vec<String>, VenvError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let plain = line.as_bytes()[0].is_ascii_alphanumeric()
            && !line.contains("://")
            && !line.contains('@')
            && !line.contains('/')
            && !line.contains('\\')
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" ._-[],<>=!~*;'\"()".contains(&b));
        if !plain {
            return Err(VenvError::BadRequirement(i + 1));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

/// Builds and caches virtualenvs under the node's data dir.
pub struct Venvs {
    root: PathBuf,
    /// One lock per venv directory: two deploys needing the same venv build it once, and a
    /// long pip run does not hold up deploys that need another one.
    building: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

fn run(cmd: &mut Command, what: &str, log: &AppLog) -> Result<(), VenvError> {
    log.note(what);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| VenvError::Io(format!("{what}: cannot start: {e}")))?;
    log.push(&out.stdout);
    log.push(&out.stderr);
    if !out.status.success() {
        return Err(VenvError::Command {
            what: what.to_owned(),
            status: out.status.to_string(),
        });
    }
    Ok(())
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..12])
}

fn site_packages(venv: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(venv.join("lib")) {
        for e in dir.flatten() {
            let sp = e.path().join("site-packages");
            if e.file_name().to_string_lossy().starts_with("python") && sp.is_dir() {
                out.push(sp);
            }
        }
    }
    out.sort();
    out
}

const READY: &str = ".mse-ready";

/// Recreates `from` under `to` with hard links (symlinks copied as symlinks).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() && !target.exists() {
            // Another filesystem cannot hard-link: copy instead.
            if std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}

impl Venvs {
    pub fn new(root: PathBuf) -> Venvs {
        Venvs {
            root,
            building: Mutex::new(HashMap::new()),
        }
    }

    /// The app's venv for `env` and the package's requirements; builds what is missing.
    pub fn for_app(
        self: &Arc<Self>,
        env: &Environment,
        requirements: Option<&str>,
        log: &AppLog,
    ) -> Result<PathBuf, VenvError> {
        let lines = match requirements {
            Some(text) => requirement_lines(text)?,
            None => Vec::new(),
        };
        let base = self.base(env, log)?;
        if lines.is_empty() {
            return Ok(base);
        }
        let joined = lines.join("\n");
        let dir = self.root.join(format!(
            "app-{}",
            short_hash(&[base.as_os_str().as_encoded_bytes(), joined.as_bytes()])
        ));
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if dir.join(READY).exists() {
            log.note(&format!("reusing cached virtualenv {}", dir.display()));
            return Ok(dir);
        }
        self.clean(&dir)?;
        let base_python = base.join("bin").join("python");
        run(
            Command::new(&base_python)
                .args(["-m", "venv", "--without-pip"])
                .arg(&dir),
            "creating the app's virtualenv",
            log,
        )?;
        // The base venv's packages are hard-linked into the app's venv, so the venv handed to
        // the enclave is one self-contained tree (all of it measured) that costs no copy.
        let base_sp = site_packages(&base);
        let app_sp = site_packages(&dir);
        if let (Some(from), Some(to)) = (base_sp.first(), app_sp.first()) {
            link_tree(from, to)
                .map_err(|e| VenvError::Io(format!("linking {}: {e}", from.display())))?;
        }
        let req = dir.join("requirements.txt");
        std::fs::write(&req, joined.as_bytes())
            .map_err(|e| VenvError::Io(format!("{}: {e}", req.display())))?;
        run(
            Command::new(&base_python)
                .args([
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--python",
                ])
                .arg(dir.join("bin").join("python"))
                .args(["install", "--only-binary", ":all:", "-r"])
                .arg(&req),
            "pip install -r requirements.txt (wheels only)",
            log,
        )?;
        self.mark_ready(&dir)?;
        Ok(dir)
    }

    fn lock_for(&self, dir: &Path) -> Arc<Mutex<()>> {
        self.building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(dir.to_path_buf())
            .or_default()
            .clone()
    }

    fn clean(&self, dir: &Path) -> Result<(), VenvError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| VenvError::Io(format!("{}: {e}", dir.display())))?;
        }
        Ok(())
    }

    fn mark_ready(&self, dir: &Path) -> Result<(), VenvError> {
        std::fs::write(dir.join(READY), b"")
            .map_err(|e| VenvError::Io(format!("{}: {e}", dir.display())))
    }

    fn base(&self, env: &Environment, log: &AppLog) -> Result<PathBuf, VenvError> {
        let (python, packages) = match &env.source {
            EnvSource::Venv(path) => return Ok(path.clone()),
            EnvSource::Packages { python, packages } => (python, packages),
        };
        let joined = packages.join("\n");
        let dir = self.root.join(format!(
            "env-{}-{}",
            env.name,
            short_hash(&[python.as_bytes(), joined.as_bytes()])
        ));
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if dir.join(READY).exists() {
            return Ok(dir);
        }
        self.clean(&dir)?;
        std::fs::create_dir_all(&self.root)
            .map_err(|e| VenvError::Io(format!("{}: {e}", self.root.display())))?;
        run(
            Command::new(python).args(["-m", "venv"]).arg(&dir),
            &format!("creating the base virtualenv of environment {}", env.name),
            log,
        )?;
        if !packages.is_empty() {
            run(
                Command::new(dir.join("bin").join("python"))
                    .args([
                        "-m",
                        "pip",
                        "--disable-pip-version-check",
                        "--no-input",
                        "install",
                    ])
                    .args(packages),
                &format!("pip install {}", packages.join(" ")),
                log,
            )?;
        }
        self.mark_ready(&dir)?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines_are_plain_specifiers_only() {
        assert_eq!(
            requirement_lines(
                "# c\n\nrequests==2.31.0\nnumpy>=1.2,<2 ; python_version>'3'\nfoo[bar] # x\n"
            )
            .unwrap(),
            vec![
                "requests==2.31.0",
                "numpy>=1.2,<2 ; python_version>'3'",
                "foo[bar]"
            ]
        );
        for bad in [
            "-r /etc/passwd",
            "--index-url http://x",
            "pkg @ https://x/y.whl",
            "./local",
            "/abs/path",
            "git+https://x",
        ] {
            let text = format!("ok\n{bad}\n");
            assert_eq!(
                requirement_lines(&text).unwrap_err().to_string(),
                "requirements.txt line 2: only plain requirement specifiers are allowed (no pip options, URLs or paths)",
                "{bad}"
            );
        }
    }

    #[test]
    fn requirements_come_from_the_package_root() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("app.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add("app.py.enc", b"ciphertext");
        add("sub/requirements.txt", b"nope");
        add("requirements.txt", b"flask\n");
        b.finish().unwrap();
        drop(b);
        assert_eq!(
            requirements_of(&tar_path).unwrap().as_deref(),
            Some("flask\n")
        );
        std::fs::write(&tar_path, b"not a tar at all, just some bytes").unwrap();
        assert!(requirements_of(&tar_path).is_err());
    }
}
