//! The one venv builder, used by `mse-node` on deploy and by `mse localtest` alike, so that
//! localtest installs exactly what a node would.
//!
//! An environment built from packages ([`EnvSource::Packages`]) is resolved by `pip download`
//! (the environment's packages plus the package's plaintext `requirements.txt`, wheels only) and
//! then packed from those wheels by [`crate::envlock::pack`], with no pip install: its
//! [`crate::envlock::EnvLock`] is what the node publishes and what `mse deploy --rebuild-env`
//! packs again to check the environment digest. A pre-built venv ([`EnvSource::Venv`]) is used
//! as is, with the `requirements.txt` packages in a venv layered on top (base packages
//! hard-linked in, so the tree handed to the enclave is self-contained and all of it measured);
//! it has no lock. Both are cached by hash.
//!
//! pip runs on the host with requirements chosen by the uploader, so it is held to one set of
//! rules: wheels only (`--only-binary :all:`: no setup.py of theirs ever runs), plain requirement
//! lines (no pip options, URLs or paths), and the SHA-256 of every wheel it installs recorded in
//! the venv's [`WHEELS_FILE`] (measured with the rest of the tree).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::OutputSink;
use crate::envlock::{EnvLock, LOCK_VERSION, PACK_RULES, PackError, PythonAbi};

/// Largest `requirements.txt` read out of a package.
pub const MAX_REQUIREMENTS: u64 = 64 * 1024;
/// Marker written last into a finished venv (an interrupted build is redone).
const READY: &str = ".mse-ready";
/// The list of wheels pip installed into a venv: `name==version sha256=HEX` per line.
pub const WHEELS_FILE: &str = "mse-wheels.txt";

/// Why a venv could not be had. One line each.
#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    /// The package is not a tar.
    #[error("package is not a readable tar archive: {0}")]
    Tar(std::io::Error),
    /// The environment could not be packed from its wheels, or a file system failure
    /// (`PackError::Io`, shared with the pack).
    #[error(transparent)]
    Pack(#[from] PackError),
    /// `requirements.txt` is too large.
    #[error("requirements.txt is larger than {MAX_REQUIREMENTS} bytes")]
    RequirementsTooLarge,
    /// A requirement line is not a plain specifier.
    #[error(
        "requirements.txt line {0}: only plain requirement specifiers are allowed (no pip options, URLs or paths)"
    )]
    BadRequirement(usize),
    /// A command could not be started.
    #[error("{what}: cannot start {program}: {source}")]
    Spawn {
        /// What was being done.
        what: String,
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command failed; `last` is its last error line (pip's reason).
    #[error("{what} failed ({status}): {last}")]
    Command {
        /// What was being done.
        what: String,
        /// Its exit status.
        status: String,
        /// Its last non-empty stderr line.
        last: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VenvError + '_ {
    move |source| crate::envlock::io_err(path)(source).into()
}

/// Where an environment's base virtualenv comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// A virtualenv that already exists; used as is.
    Venv(PathBuf),
    /// Built at first use: these requirements resolved to wheels by `pip download`, packed from
    /// them ([`crate::envlock::pack`]).
    Packages {
        /// The Python interpreter.
        python: String,
        /// pip requirement specifiers.
        packages: Vec<String>,
        /// A local directory of wheels to resolve from instead of the package index (offline).
        find_links: Option<PathBuf>,
    },
}

/// A Python environment an app runs in, named by the mse.toml `docker` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its name (`mse-flask`).
    pub name: String,
    /// Its base venv.
    pub source: EnvSource,
}

impl Environment {
    /// Whether an mse.toml `docker` value names this environment: the name itself, or an image
    /// reference whose last path component without its tag is the name
    /// (`ghcr.io/cosmian/mse-flask:20230124182826` names `mse-flask`).
    pub fn matches(&self, docker: &str) -> bool {
        if docker == self.name {
            return true;
        }
        let last = docker.rsplit('/').next().unwrap_or(docker);
        let last = last.split('@').next().unwrap_or(last);
        let base = last.split(':').next().unwrap_or(last);
        base == self.name
    }
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

/// Reads a `requirements.txt` from a directory (localtest: the code dir), at most
/// [`MAX_REQUIREMENTS`] bytes.
pub fn requirements_in_dir(dir: &Path) -> Result<Option<String>, VenvError> {
    let path = dir.join("requirements.txt");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut text = String::new();
    file.take(MAX_REQUIREMENTS + 1)
        .read_to_string(&mut text)
        .map_err(io_err(&path))?;
    if text.len() as u64 > MAX_REQUIREMENTS {
        return Err(VenvError::RequirementsTooLarge);
    }
    Ok(Some(text))
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
            // Per-requirement pip options (`pkg --config-settings=…`, `-C …`) too.
            && !line.split_whitespace().any(|w| w.starts_with('-'))
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

/// Builds and caches virtualenvs under one root directory.
pub struct Venvs {
    root: PathBuf,
    /// One lock per venv directory: two deploys needing the same venv build it once, and a
    /// long pip run does not hold up deploys that need another one.
    building: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

fn run(cmd: &mut Command, what: &str, log: &dyn OutputSink) -> Result<(), VenvError> {
    log.note(what);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| VenvError::Spawn {
            what: what.to_owned(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    log.output(&out.stdout);
    log.output(&out.stderr);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no error message")
            .chars()
            .take(300)
            .collect();
        return Err(VenvError::Command {
            what: what.to_owned(),
            status: out.status.to_string(),
            last,
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

/// The wheels a pip `--report` lists as installed: `name==version sha256=HEX` lines, sorted.
pub fn wheels_of_report(report: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(report) else {
        return Vec::new();
    };
    let mut out: Vec<String> = value["install"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let meta = &item["metadata"];
            let hash = item["download_info"]["archive_info"]["hashes"]["sha256"]
                .as_str()
                .or_else(|| {
                    item["download_info"]["archive_info"]["hash"]
                        .as_str()
                        .and_then(|h| h.strip_prefix("sha256="))
                })
                .unwrap_or("unknown");
            format!(
                "{}=={} sha256={hash}",
                meta["name"].as_str().unwrap_or("?"),
                meta["version"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.sort();
    out
}

/// The pip arguments every install takes: wheels only, no prompts, a report of what it
/// installed (its hashes go to [`WHEELS_FILE`]).
fn pip_install(python: &Path, target: Option<&Path>, report: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "--disable-pip-version-check", "--no-input"]);
    if let Some(target) = target {
        cmd.arg("--python").arg(target);
    }
    cmd.args(["install", "--only-binary", ":all:", "--report"])
        .arg(report);
    cmd
}

impl Venvs {
    /// A builder caching its venvs under `root`.
    pub fn new(root: PathBuf) -> Venvs {
        Venvs {
            root,
            building: Mutex::new(HashMap::new()),
        }
    }

    /// The app's venv for `env` and the package's requirements; builds what is missing.
    pub fn for_app(
        &self,
        env: &Environment,
        requirements: Option<&str>,
        log: &dyn OutputSink,
    ) -> Result<PathBuf, VenvError> {
        let lines = match requirements {
            Some(text) => requirement_lines(text)?,
            None => Vec::new(),
        };
        let base = match &env.source {
            EnvSource::Packages {
                python,
                packages,
                find_links,
            } => return self.packed(env, python, packages, find_links.as_deref(), &lines, log),
            EnvSource::Venv(base) => base.clone(),
        };
        if lines.is_empty() {
            return Ok(base);
        }
        let joined = lines.join("\n");
        let dir = self.root.join(format!(
            "app-{}",
            short_hash(&[base.as_os_str().as_encoded_bytes(), joined.as_bytes()])
        ));
        self.build_once(&dir, &dir.join(READY), log, || {
            let base_python = base.join("bin").join("python");
            run(
                Command::new(&base_python)
                    .args(["-m", "venv", "--without-pip"])
                    .arg(&dir),
                "creating the app's virtualenv",
                log,
            )?;
            // The base venv's packages are hard-linked into the app's venv, so the venv handed
            // to the enclave is one self-contained tree (all of it measured) that costs no copy.
            let base_sp = site_packages(&base);
            let app_sp = site_packages(&dir);
            if let (Some(from), Some(to)) = (base_sp.first(), app_sp.first()) {
                link_tree(from, to).map_err(io_err(from))?;
            }
            let req = dir.join("requirements.txt");
            std::fs::write(&req, joined.as_bytes()).map_err(io_err(&req))?;
            let target = dir.join("bin").join("python");
            self.pip_install(&base_python, Some(&target), &dir, log, |cmd| {
                cmd.arg("-r").arg(&req);
                "pip install -r requirements.txt (wheels only)".to_owned()
            })
        })
    }

    /// Builds `dir` with `build` unless a finished build is there (one build at a time per
    /// directory); a failed build is removed, so that it is redone next time.
    fn build_once(
        &self,
        dir: &Path,
        ready: &Path,
        log: &dyn OutputSink,
        build: impl FnOnce() -> Result<(), VenvError>,
    ) -> Result<PathBuf, VenvError> {
        let lock = self.lock_for(dir);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if ready.exists() {
            log.note(&format!("reusing cached virtualenv {}", dir.display()));
            return Ok(dir.to_path_buf());
        }
        self.clean(dir)?;
        std::fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let built = build().and_then(|()| std::fs::write(ready, b"").map_err(io_err(ready)));
        if built.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        built.map(|()| dir.to_path_buf())
    }

    /// Runs `python -m pip install` (wheels only) into the venv `dir` (`target`: its python,
    /// when pip runs from another one), then records the wheels it installed. pip's report
    /// goes next to the venv, not into it (the venv is measured).
    fn pip_install(
        &self,
        python: &Path,
        target: Option<&Path>,
        dir: &Path,
        log: &dyn OutputSink,
        what: impl FnOnce(&mut Command) -> String,
    ) -> Result<(), VenvError> {
        let report = dir.with_extension("pip-report.json");
        let mut cmd = pip_install(python, target, &report);
        let what = what(&mut cmd);
        run(&mut cmd, &what, log)?;
        self.record_wheels(dir, &report, log)
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
            std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
        }
        Ok(())
    }

    fn record_wheels(
        &self,
        dir: &Path,
        report: &Path,
        log: &dyn OutputSink,
    ) -> Result<(), VenvError> {
        let text = std::fs::read_to_string(report).unwrap_or_default();
        let _ = std::fs::remove_file(report);
        let wheels = wheels_of_report(&text);
        for w in &wheels {
            log.note(&format!("installed wheel {w}"));
        }
        let path = dir.join(WHEELS_FILE);
        let mut body = wheels.join("\n");
        body.push('\n');
        std::fs::write(&path, body).map_err(io_err(&path))
    }
}

/// The Python `python` runs: its version, real executable and SOABI.
pub fn python_abi(python: &str) -> Result<PythonAbi, VenvError> {
    const PROBE: &str = "import os, sys, sysconfig\n\
        print('.'.join(map(str, sys.version_info[:3])))\n\
        print(os.path.realpath(sys._base_executable))\n\
        print(sysconfig.get_config_var('SOABI') or '')";
    let what = format!("asking {python} for its version");
    let out = Command::new(python)
        .args(["-I", "-c", PROBE])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| VenvError::Spawn {
            what: what.clone(),
            program: python.to_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    if !out.status.success() || lines.len() != 3 {
        return Err(VenvError::Command {
            what,
            status: out.status.to_string(),
            last: String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("unexpected output")
                .to_owned(),
        });
    }
    Ok(PythonAbi {
        version: lines[0].to_owned(),
        executable: lines[1].to_owned(),
        soabi: lines[2].to_owned(),
    })
}

impl Venvs {
    /// The environment of `packages` plus the app's requirement `lines`: `pip download` (wheels
    /// only) into `<dir>.wheels`, then packed from the lock of those wheels into `<dir>`. The
    /// ready marker is `<dir>.ready`, outside the measured tree.
    fn packed(
        &self,
        env: &Environment,
        python: &str,
        packages: &[String],
        find_links: Option<&Path>,
        lines: &[String],
        log: &dyn OutputSink,
    ) -> Result<PathBuf, VenvError> {
        let links = find_links.map(|p| p.as_os_str().as_encoded_bytes());
        let dir = self.root.join(format!(
            "env-{}-{}",
            env.name,
            short_hash(&[
                PACK_RULES.as_bytes(),
                python.as_bytes(),
                packages.join("\n").as_bytes(),
                lines.join("\n").as_bytes(),
                links.unwrap_or(b""),
            ])
        ));
        let sibling = |ext: &str| {
            let mut name = dir.as_os_str().to_owned();
            name.push(ext);
            PathBuf::from(name)
        };
        let (wheels, ready) = (sibling(".wheels"), sibling(".ready"));
        let built = self.build_once(&dir, &ready, log, || {
            self.clean(&wheels)?;
            std::fs::create_dir_all(&wheels).map_err(io_err(&wheels))?;
            let wanted: Vec<&String> = packages.iter().chain(lines).collect();
            if !wanted.is_empty() {
                let mut cmd = Command::new(python);
                cmd.args(["-m", "pip", "--disable-pip-version-check", "--no-input"])
                    .args(["download", "--only-binary", ":all:", "--dest"])
                    .arg(&wheels);
                if let Some(dir) = find_links {
                    cmd.arg("--no-index").arg("--find-links").arg(dir);
                }
                cmd.args(&wanted);
                let what = format!(
                    "pip download {} (wheels only)",
                    wanted
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                run(&mut cmd, &what, log)?;
            }
            let lock = EnvLock {
                version: LOCK_VERSION,
                rules: PACK_RULES.to_owned(),
                python: python_abi(python)?,
                wheels: crate::envlock::lock_wheels(&wheels)?,
            };
            for w in lock.wheel_lines() {
                log.note(&format!("locked wheel {w}"));
            }
            log.note(&format!(
                "packing environment {} from {} wheels ({PACK_RULES})",
                env.name,
                lock.wheels.len()
            ));
            crate::envlock::pack(&lock, &wheels, &dir)?;
            Ok(())
        });
        if built.is_err() {
            // Nothing half-fetched is left behind either.
            let _ = std::fs::remove_dir_all(&wheels);
        }
        built
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
            "flask --config-settings=x=y",
            "flask -C x",
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

    #[test]
    fn requirements_in_a_dir_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(requirements_in_dir(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join("requirements.txt"), "flask\n").unwrap();
        assert_eq!(
            requirements_in_dir(dir.path()).unwrap().as_deref(),
            Some("flask\n")
        );
        std::fs::write(
            dir.path().join("requirements.txt"),
            vec![b'#'; MAX_REQUIREMENTS as usize + 1],
        )
        .unwrap();
        assert_eq!(
            requirements_in_dir(dir.path()).unwrap_err().to_string(),
            "requirements.txt is larger than 65536 bytes"
        );
    }

    #[test]
    fn wheel_hashes_come_from_pips_report() {
        let report = r#"{"version":"1","install":[
            {"metadata":{"name":"zeta","version":"2.0"},"download_info":{"url":"file:///w/zeta.whl","archive_info":{"hash":"sha256=bb","hashes":{"sha256":"bb"}}}},
            {"metadata":{"name":"alpha","version":"1.0"},"download_info":{"url":"file:///w/alpha.whl","archive_info":{"hash":"sha256=aa"}}}
        ]}"#;
        assert_eq!(
            wheels_of_report(report),
            vec!["alpha==1.0 sha256=aa", "zeta==2.0 sha256=bb"]
        );
        assert!(wheels_of_report("not json").is_empty());
    }

    #[test]
    fn docker_names_match_environments() {
        let e = Environment {
            name: "mse-flask".into(),
            source: EnvSource::Venv("/v".into()),
        };
        assert!(e.matches("mse-flask"));
        assert!(e.matches("ghcr.io/cosmian/mse-flask:20230124182826"));
        assert!(e.matches("mse-flask@sha256:abc"));
        assert!(!e.matches("mse-flask2"));
        assert!(!e.matches("ghcr.io/mse-flask/other"));
        assert!(!e.matches("ghcr.io/cosmian/mse-fastapi:1"));
    }
}
