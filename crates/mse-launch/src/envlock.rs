//! The environment lock and the deterministic environment pack.
//!
//! A node that builds an environment from packages publishes its [`EnvLock`]: every wheel's
//! name, version, SHA-256 and file name, the Python it is for, and the pack rules. [`pack`]
//! turns the lock plus the wheel files into the environment tree, and nothing else goes in: no
//! pip run, no `.pyc`, no absolute path of the build directory, modes set explicitly (not from
//! the umask), no timestamps (the environment digest reads none). So anyone holding the same
//! wheels rebuilds a tree with the same environment digest (`mse deploy --rebuild-env`).
//!
//! # Pack rules `mse-env-pack-v1`
//!
//! With `X.Y` the lock's Python version and `SP = lib/pythonX.Y/site-packages`:
//! - `pyvenv.cfg` = `home = <dir of executable>`, `include-system-site-packages = false`,
//!   `version = <version>`, `executable = <executable>` (one per line);
//!   `bin/python` → `<executable>`, `bin/python3` → `python`, `bin/pythonX.Y` → `python`;
//! - every wheel, checked against its SHA-256 first: `<dist>.data/purelib|platlib/F` → `SP/F`,
//!   `<dist>.data/scripts/F` → `bin/F` (a `#!python` first line becomes
//!   `#!/usr/bin/env python3`), `<dist>.data/headers/F` → `include/site/pythonX.Y/<name>/F`,
//!   `<dist>.data/data/F` → `F`, anything else `F` → `SP/F`; entry-point console scripts are not
//!   generated (an enclave app cannot run subprocesses); `.pyc` files are skipped;
//! - files are 0755 when the wheel marks them executable, else 0644; directories 0755;
//! - two wheels writing the same file is an error;
//! - [`WHEELS_FILE`] lists `name==version sha256=HEX` (sorted), [`LOCK_FILE`] holds the lock's
//!   [`EnvLock::to_json`], so the digest covers the lock itself.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Digest32;
use crate::venv::WHEELS_FILE;

/// The lock version this code writes and reads.
pub const LOCK_VERSION: u32 = 1;
/// The pack rules this code implements (see the module documentation).
pub const PACK_RULES: &str = "mse-env-pack-v1";
/// The lock, inside the packed environment.
pub const LOCK_FILE: &str = "mse-env-lock.json";
/// Largest lock accepted by [`EnvLock::from_json`].
pub const MAX_LOCK_BYTES: usize = 1024 * 1024;
/// Most bytes one environment may unpack to (a zip bomb stops here).
const MAX_UNPACKED: u64 = 8 << 30;

/// The Python an environment is packed for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonAbi {
    /// Full version (`3.11.7`); `X.Y` names site-packages.
    pub version: String,
    /// The interpreter's absolute path (what `bin/python` points to).
    pub executable: String,
    /// `sysconfig`'s SOABI (`cpython-311-x86_64-linux-gnu`): which binary wheels fit.
    pub soabi: String,
}

/// One wheel of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedWheel {
    /// Project name, as in the file name.
    pub name: String,
    /// Version, as in the file name.
    pub version: String,
    /// SHA-256 of the wheel file.
    pub sha256: Digest32,
    /// The wheel's file name (`flask-3.0.0-py3-none-any.whl`).
    pub file: String,
}

/// What an environment is made of. Wheels sorted by file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvLock {
    /// Always [`LOCK_VERSION`].
    pub version: u32,
    /// Always [`PACK_RULES`].
    pub rules: String,
    /// The Python.
    pub python: PythonAbi,
    /// The wheels.
    pub wheels: Vec<LockedWheel>,
}

/// Why a lock is refused or an environment cannot be packed. One line each.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The lock is not valid.
    #[error("environment lock: {0}")]
    Lock(String),
    /// A wheel file is missing or unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A wheel's bytes are not the ones the lock names.
    #[error("wheel {file}: SHA-256 {found}, but the lock says {expected}")]
    WheelHash {
        /// The file name.
        file: String,
        /// What the file hashes to.
        found: Digest32,
        /// What the lock says.
        expected: Digest32,
    },
    /// A wheel is not a usable zip.
    #[error("wheel {file}: {why}")]
    BadWheel {
        /// The file name.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// Two wheels write the same file.
    #[error("wheels {first} and {second} both write {path}")]
    Conflict {
        /// The first wheel.
        first: String,
        /// The second.
        second: String,
        /// The file, relative to the environment.
        path: String,
    },
}

/// `PackError::Io` of `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `(name, version)` of a wheel file name (`name-version(-build)?-py-abi-plat.whl`), or None.
pub fn wheel_name(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let ok = (parts.len() == 5 || parts.len() == 6)
        && !file.starts_with('.')
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+!".contains(&b))
        });
    ok.then(|| (parts[0], parts[1]))
}

/// PEP 503 normalised project name (`Flask_Login` → `flask-login`).
pub fn normalized_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// SHA-256 of a file.
pub fn file_sha256(path: &Path) -> Result<Digest32, PackError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(io_err(path))?;
    Ok(Digest32(h.finalize().into()))
}

/// The lock entries of every `*.whl` in `dir`, sorted by file name.
pub fn lock_wheels(dir: &Path) -> Result<Vec<LockedWheel>, PackError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.ends_with(".whl") {
            continue;
        }
        let (name, version) = wheel_name(&file).ok_or_else(|| PackError::BadWheel {
            file: file.clone(),
            why: "not a wheel file name (name-version-python-abi-platform.whl)".into(),
        })?;
        out.push(LockedWheel {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: file_sha256(&entry.path())?,
            file: file.clone(),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

impl EnvLock {
    /// The lock's bytes: pretty JSON, fields in declaration order, a final newline.
    pub fn to_json(&self) -> String {
        // Strings and integers only: serialisation cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses and checks a lock (strict: unknown fields, other versions or rules refused).
    pub fn from_json(text: &str) -> Result<EnvLock, PackError> {
        if text.len() > MAX_LOCK_BYTES {
            return Err(PackError::Lock(format!(
                "{} bytes is more than the {MAX_LOCK_BYTES} allowed",
                text.len()
            )));
        }
        let lock: EnvLock =
            serde_json::from_str(text).map_err(|e| PackError::Lock(e.to_string()))?;
        lock.check()?;
        Ok(lock)
    }

    /// `X.Y` of the Python version.
    pub fn python_xy(&self) -> String {
        self.python
            .version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Checks what [`pack`] relies on.
    pub fn check(&self) -> Result<(), PackError> {
        let bad = |why: String| Err(PackError::Lock(why));
        if self.version != LOCK_VERSION {
            return bad(format!(
                "version {} is not supported (expected {LOCK_VERSION})",
                self.version
            ));
        }
        if self.rules != PACK_RULES {
            return bad(format!(
                "pack rules {:?} are not supported (this mse packs {PACK_RULES})",
                self.rules
            ));
        }
        let v = &self.python.version;
        if v.split('.').count() < 2
            || !v
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return bad(format!("Python version {v:?} is not X.Y[.Z]"));
        }
        let exe = &self.python.executable;
        if !exe.starts_with('/') || exe.chars().any(char::is_control) || exe.ends_with('/') {
            return bad(format!("Python executable {exe:?} is not an absolute path"));
        }
        if self.python.soabi.chars().any(char::is_control) {
            return bad("SOABI has control characters".into());
        }
        for (i, w) in self.wheels.iter().enumerate() {
            if wheel_name(&w.file) != Some((w.name.as_str(), w.version.as_str())) {
                return bad(format!(
                    "wheel {:?} does not match its name {:?} and version {:?}",
                    w.file, w.name, w.version
                ));
            }
            if i > 0 && self.wheels[i - 1].file >= w.file {
                return bad(format!(
                    "wheels are not sorted by file name at {:?}",
                    w.file
                ));
            }
        }
        Ok(())
    }

    /// The [`WHEELS_FILE`] lines: `name==version sha256=HEX`, sorted.
    pub fn wheel_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .wheels
            .iter()
            .map(|w| format!("{}=={} sha256={}", w.name, w.version, w.sha256))
            .collect();
        out.sort();
        out
    }
}

/// A wheel entry with no place in the environment.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error("entry {} is not a relative path", .0.display())]
    NotRelative(PathBuf),
    #[error("unknown .data directory {0:?}")]
    UnknownData(String),
}

/// Where one wheel entry goes, relative to the environment, or None to skip it.
fn target_of(rel: &Path, name: &str, xy: &str) -> Result<Option<(PathBuf, bool)>, EntryError> {
    let site = PathBuf::from(format!("lib/python{xy}/site-packages"));
    let mut comps = rel.components();
    let first = match comps.next() {
        Some(Component::Normal(c)) => c.to_string_lossy().into_owned(),
        _ => return Err(EntryError::NotRelative(rel.to_owned())),
    };
    if rel.extension().is_some_and(|e| e == "pyc") {
        return Ok(None);
    }
    if first.ends_with(".data") && rel.components().count() > 2 {
        let kind = comps
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let rest = comps.as_path();
        let to = match kind.as_str() {
            "purelib" | "platlib" => site.join(rest),
            "scripts" => return Ok(Some((Path::new("bin").join(rest), true))),
            "headers" => Path::new(&format!("include/site/python{xy}/{name}")).join(rest),
            "data" => rest.to_path_buf(),
            other => return Err(EntryError::UnknownData(other.to_owned())),
        };
        return Ok(Some((to, false)));
    }
    Ok(Some((site.join(rel), false)))
}

/// Unpacks the environment of `lock` into `dest` (which must not exist) from the wheel files
/// in `wheels` (found by their lock file names, each checked against its SHA-256 first).
/// The environment digest of `dest` is then a function of the lock and the wheels only.
pub fn pack(lock: &EnvLock, wheels: &Path, dest: &Path) -> Result<(), PackError> {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    lock.check()?;
    let xy = lock.python_xy();
    std::fs::create_dir(dest).map_err(io_err(dest))?;
    // Every file to write, by relative path: (its wheel, executable?, bytes).
    let mut files: BTreeMap<PathBuf, (String, bool, Vec<u8>)> = BTreeMap::new();
    let mut total = 0u64;
    for w in &lock.wheels {
        let path = wheels.join(&w.file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let found = Digest32(Sha256::digest(&bytes).into());
        if found != w.sha256 {
            return Err(PackError::WheelHash {
                file: w.file.clone(),
                found,
                expected: w.sha256,
            });
        }
        let bad = |why: String| PackError::BadWheel {
            file: w.file.clone(),
            why,
        };
        let mut zip =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
            if entry.is_dir() {
                continue;
            }
            let rel = entry
                .enclosed_name()
                .ok_or_else(|| bad(format!("entry {:?} escapes the archive", entry.name())))?;
            let Some((to, script)) =
                target_of(&rel, &w.name, &xy).map_err(|e| bad(e.to_string()))?
            else {
                continue;
            };
            let exec = script || entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
            let mut data = Vec::new();
            let limit = MAX_UNPACKED - total;
            (&mut entry)
                .take(limit + 1)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
            total += data.len() as u64;
            if total > MAX_UNPACKED {
                return Err(bad(format!("unpacks to more than {MAX_UNPACKED} bytes")));
            }
            if script && data.starts_with(b"#!python") {
                let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
                data.splice(..end, b"#!/usr/bin/env python3".iter().copied());
            }
            if let Some((first, ..)) = files.get(&to) {
                return Err(PackError::Conflict {
                    first: first.clone(),
                    second: w.file.clone(),
                    path: to.display().to_string(),
                });
            }
            files.insert(to, (w.file.clone(), exec, data));
        }
    }
    let home = Path::new(&lock.python.executable)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/".into());
    let cfg = format!(
        "home = {home}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {}\n",
        lock.python.version, lock.python.executable
    );
    let mut own = vec![
        (PathBuf::from("pyvenv.cfg"), cfg.into_bytes()),
        (
            PathBuf::from(WHEELS_FILE),
            (lock.wheel_lines().join("\n") + "\n").into_bytes(),
        ),
        (PathBuf::from(LOCK_FILE), lock.to_json().into_bytes()),
    ];
    for (path, data) in own.drain(..) {
        if files.contains_key(&path) {
            return Err(PackError::BadWheel {
                file: files[&path].0.clone(),
                why: format!("writes {}, which the pack writes", path.display()),
            });
        }
        files.insert(path, ("".into(), false, data));
    }
    let dir_mode = std::fs::Permissions::from_mode(0o755);
    let make_dir = |dir: &Path| -> Result<(), PackError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Every directory from dest down, whatever the umask made it.
        let mut d = dir;
        while d != dest {
            std::fs::set_permissions(d, dir_mode.clone()).map_err(io_err(d))?;
            d = d.parent().unwrap_or(dest);
        }
        Ok(())
    };
    std::fs::set_permissions(dest, dir_mode.clone()).map_err(io_err(dest))?;
    make_dir(&dest.join(format!("lib/python{xy}/site-packages")))?;
    make_dir(&dest.join("bin"))?;
    for (name, target) in [
        ("python", lock.python.executable.clone()),
        ("python3", "python".into()),
        (&format!("python{xy}"), "python".into()),
    ] {
        let link = dest.join("bin").join(name);
        std::os::unix::fs::symlink(&target, &link).map_err(io_err(&link))?;
    }
    for (rel, (_, exec, data)) in &files {
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            make_dir(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(data).map_err(io_err(&path))?;
        let mode = if *exec { 0o755 } else { 0o644 };
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a small wheel `name-version-py3-none-any.whl` into `dir` with these files.
    pub(crate) fn wheel(dir: &Path, name: &str, version: &str, files: &[(&str, &[u8], u32)]) {
        let path = dir.join(format!("{name}-{version}-py3-none-any.whl"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (file, data, mode) in files {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(*mode);
            zip.start_file(*file, opts).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
    }

    pub(crate) fn sample(dir: &Path) -> EnvLock {
        let alpha: &[(&str, &[u8], u32)] = &[
            ("alpha/__init__.py", b"A = 1\n", 0o600),
            ("alpha/__pycache__/__init__.cpython-311.pyc", b"junk", 0o644),
            (
                "alpha-1.0.dist-info/RECORD",
                b"alpha/__init__.py,,\n",
                0o644,
            ),
            ("alpha-1.0.data/scripts/run", b"#!python\nprint(1)\n", 0o644),
            ("alpha-1.0.data/platlib/_alpha.so", b"\x7fELF", 0o755),
        ];
        let beta: &[(&str, &[u8], u32)] = &[
            ("beta.py", b"B = 2\n", 0o664),
            ("beta-2.0.data/data/share/b.txt", b"b", 0o644),
        ];
        for (name, version, files) in [("alpha", "1.0", alpha), ("beta", "2.0", beta)] {
            wheel(dir, name, version, files);
        }
        EnvLock {
            version: LOCK_VERSION,
            rules: PACK_RULES.into(),
            python: PythonAbi {
                version: "3.11.7".into(),
                executable: "/usr/bin/python3.11".into(),
                soabi: "cpython-311-x86_64-linux-gnu".into(),
            },
            wheels: lock_wheels(dir).unwrap(),
        }
    }

    fn listing(root: &Path) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p.clone());
                }
                out.push(format!(
                    "{} {:o}",
                    p.strip_prefix(root).unwrap().display(),
                    m.permissions().mode() & 0o7777
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_pack_follows_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let lock = sample(dir.path());
        assert_eq!(
            lock.wheel_lines(),
            vec![
                format!("alpha==1.0 sha256={}", lock.wheels[0].sha256),
                format!("beta==2.0 sha256={}", lock.wheels[1].sha256)
            ]
        );
        let env = dir.path().join("env");
        pack(&lock, dir.path(), &env).unwrap();
        let sp = "lib/python3.11/site-packages";
        assert_eq!(
            listing(&env),
            [
                "bin 755",
                "bin/python 777",
                "bin/python3 777",
                "bin/python3.11 777",
                "bin/run 755",
                "lib 755",
                "lib/python3.11 755",
                &format!("{sp} 755"),
                &format!("{sp}/_alpha.so 755"),
                &format!("{sp}/alpha 755"),
                &format!("{sp}/alpha-1.0.dist-info 755"),
                &format!("{sp}/alpha-1.0.dist-info/RECORD 644"),
                &format!("{sp}/alpha/__init__.py 644"),
                &format!("{sp}/beta.py 644"),
                "mse-env-lock.json 644",
                "mse-wheels.txt 644",
                "pyvenv.cfg 644",
                "share 755",
                "share/b.txt 644",
            ]
        );
        assert_eq!(
            std::fs::read_to_string(env.join("bin/run")).unwrap(),
            "#!/usr/bin/env python3\nprint(1)\n"
        );
        assert_eq!(
            std::fs::read_to_string(env.join("pyvenv.cfg")).unwrap(),
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\nexecutable = /usr/bin/python3.11\n"
        );
        assert_eq!(
            std::fs::read_link(env.join("bin/python")).unwrap(),
            Path::new("/usr/bin/python3.11")
        );
        let back =
            EnvLock::from_json(&std::fs::read_to_string(env.join(LOCK_FILE)).unwrap()).unwrap();
        assert_eq!(back, lock);
    }

    #[test]
    fn a_wheel_with_other_bytes_or_a_bad_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = sample(dir.path());
        let good = lock.wheels[1].sha256;
        lock.wheels[1].sha256 = Digest32([7; 32]);
        let err = pack(&lock, dir.path(), &dir.path().join("e1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "wheel beta-2.0-py3-none-any.whl: SHA-256 {good}, but the lock says {}",
                Digest32([7; 32])
            )
        );
        lock.wheels[1].sha256 = good;
        lock.rules = "other".into();
        assert_eq!(
            pack(&lock, dir.path(), &dir.path().join("e2"))
                .unwrap_err()
                .to_string(),
            "environment lock: pack rules \"other\" are not supported (this mse packs mse-env-pack-v1)"
        );
        lock.rules = PACK_RULES.into();
        lock.wheels.swap(0, 1);
        assert!(
            EnvLock::from_json(&lock.to_json())
                .unwrap_err()
                .to_string()
                .contains("not sorted")
        );
        wheel(dir.path(), "gamma", "1", &[("beta.py", b"x", 0o644)]);
        let lock = EnvLock {
            wheels: lock_wheels(dir.path()).unwrap(),
            ..sample(dir.path())
        };
        assert_eq!(
            pack(&lock, dir.path(), &dir.path().join("e3"))
                .unwrap_err()
                .to_string(),
            "wheels beta-2.0-py3-none-any.whl and gamma-1-py3-none-any.whl both write lib/python3.11/site-packages/beta.py"
        );
    }

    /// Done when (c): the same lock packed in two directories, from wheels in two places,
    /// under two umasks, has one environment digest.
    #[test]
    fn two_packs_of_one_lock_have_one_digest() {
        use rustix::fs::Mode;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let lock = sample(a.path());
        for w in &lock.wheels {
            std::fs::copy(a.path().join(&w.file), b.path().join(&w.file)).unwrap();
        }
        pack(&lock, a.path(), &a.path().join("env")).unwrap();
        let old = rustix::process::umask(Mode::from_raw_mode(0o077));
        let other = b.path().join("deeper/other-name");
        std::fs::create_dir(b.path().join("deeper")).unwrap();
        let packed = pack(&lock, b.path(), &other);
        rustix::process::umask(old);
        packed.unwrap();
        let da = mse_attest::measurement::environment_digest(&a.path().join("env")).unwrap();
        let db = mse_attest::measurement::environment_digest(&other).unwrap();
        assert_eq!(hex::encode(da), hex::encode(db));
        // And the digest does see the content: one byte more in one file changes it.
        let f = other.join("lib/python3.11/site-packages/beta.py");
        std::fs::write(&f, b"B = 2\n#\n").unwrap();
        assert_ne!(
            mse_attest::measurement::environment_digest(&other).unwrap(),
            da
        );
    }

    #[test]
    fn wheel_file_names() {
        assert_eq!(
            wheel_name("Flask-3.0.0-py3-none-any.whl"),
            Some(("Flask", "3.0.0"))
        );
        assert_eq!(
            wheel_name("markupsafe-2.1.5-1-cp311-cp311-manylinux_2_17_x86_64.whl"),
            Some(("markupsafe", "2.1.5"))
        );
        for bad in [
            "x.whl",
            "a-1-py3-none-any.tar",
            "../a-1-py3-none-any.whl",
            "a-1--none-any.whl",
        ] {
            assert_eq!(wheel_name(bad), None, "{bad}");
        }
        assert_eq!(normalized_name("Flask_Login.x"), "flask-login-x");
    }
}
