//! The measurement of an `mse-enclave` instance: SHA-256 over a canonical, versioned manifest of
//! what runs (runtime executable, Python environment, encrypted code package) and of the launch
//! arguments that change its behaviour. The sim TEE reports it as MRENCLAVE; `mse` recomputes
//! it from the same inputs before it sends any key or secret.
//!
//! # Manifest bytes (version 1)
//!
//! Canonical JSON: one object, keys in byte order, no whitespace, strings escaped as
//! `serde_json` escapes them, digests as lowercase hex, integers in decimal:
//!
//! ```text
//! {"app_id":S,"application":S,"environment_digest":H,"package_digest":H,"runtime_digest":H,
//!  "san":S,"size_mb":N,"tls":T,"version":1}
//! ```
//! (on one line) where `T` is `{"expiration":N}` (RA-TLS certificate valid until Unix time N) or
//! `{"owner_certificate_sha256":H}` (the app serves the owner's certificate, whose PEM file's
//! SHA-256 is H). measurement = SHA-256(manifest bytes).
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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest version this code writes and accepts.
pub const MANIFEST_VERSION: u32 = 1;

/// What went wrong while measuring or reading a context.
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
    /// The measurement context JSON is invalid.
    #[error("measurement context: {0}")]
    Context(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MeasurementError + '_ {
    move |source| MeasurementError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How the app's TLS certificate is chosen, which the measurement binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TlsMode {
    /// Self mode: the RA-TLS certificate, valid until this Unix time.
    Expiration(i64),
    /// Owner mode: the owner's certificate chain file (PEM), by its SHA-256.
    #[serde(with = "hex32")]
    OwnerCertificateSha256([u8; 32]),
}

/// The canonical manifest. Serialised with serde it is also the "context" JSON the CLI saves
/// (key order there does not matter: [`Manifest::canonical_bytes`] is what gets hashed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// SHA-256 of the enclave runtime binary.
    #[serde(with = "hex32")]
    pub runtime_digest: [u8; 32],
    /// Digest of the Python environment (virtualenv) tree.
    #[serde(with = "hex32")]
    pub environment_digest: [u8; 32],
    /// SHA-256 of the encrypted code package.
    #[serde(with = "hex32")]
    pub package_digest: [u8; 32],
    /// The app's id (UUID).
    pub app_id: String,
    /// The domain name in the RA-TLS certificate's SAN.
    pub san: String,
    /// The WSGI/ASGI application (`module:variable`).
    pub application: String,
    /// Memory size of the enclave (MB).
    pub size_mb: u64,
    /// How TLS is set up (expiration date or owner certificate).
    pub tls: TlsMode,
}

/// The inputs to measure, as files on disk plus the launch arguments.
#[derive(Debug, Clone)]
pub struct MeasurementInputs<'a> {
    /// The `mse-enclave` executable.
    pub runtime: &'a Path,
    /// The app's virtualenv directory.
    pub environment: &'a Path,
    /// The encrypted code package (tar).
    pub package: &'a Path,
    /// The app's id (UUID).
    pub app_id: &'a str,
    /// The domain name in the RA-TLS certificate's SAN.
    pub san: &'a str,
    /// The WSGI/ASGI application (`module:variable`).
    pub application: &'a str,
    /// Memory size of the enclave (MB).
    pub size_mb: u64,
    /// `Ok(expiration)` in self mode, `Err(path)` of the owner's certificate file in owner mode.
    pub tls: TlsInput<'a>,
}

/// The TLS part of [`MeasurementInputs`].
#[derive(Debug, Clone, Copy)]
pub enum TlsInput<'a> {
    /// Self-signed RA-TLS certificate expiring at this Unix time.
    Expiration(i64),
    /// The owner's certificate (PEM file) that the enclave serves.
    OwnerCertificate(&'a Path),
}

impl Manifest {
    /// Measure `inputs` (reads and hashes the runtime, the venv tree and the package).
    pub fn compute(inputs: &MeasurementInputs<'_>) -> Result<Manifest, MeasurementError> {
        let tls = match inputs.tls {
            TlsInput::Expiration(t) => TlsMode::Expiration(t),
            TlsInput::OwnerCertificate(p) => TlsMode::OwnerCertificateSha256(file_digest(p)?),
        };
        Ok(Manifest {
            version: MANIFEST_VERSION,
            runtime_digest: file_digest(inputs.runtime)?,
            environment_digest: environment_digest(inputs.environment)?,
            package_digest: file_digest(inputs.package)?,
            app_id: inputs.app_id.to_owned(),
            san: inputs.san.to_owned(),
            application: inputs.application.to_owned(),
            size_mb: inputs.size_mb,
            tls,
        })
    }

    /// The exact bytes that get hashed (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let tls = match &self.tls {
            TlsMode::Expiration(t) => format!(r#"{{"expiration":{t}}}"#),
            TlsMode::OwnerCertificateSha256(h) => {
                format!(r#"{{"owner_certificate_sha256":"{}"}}"#, hex::encode(h))
            }
        };
        format!(
            r#"{{"app_id":{},"application":{},"environment_digest":"{}","package_digest":"{}","runtime_digest":"{}","san":{},"size_mb":{},"tls":{},"version":{}}}"#,
            s(&self.app_id),
            s(&self.application),
            hex::encode(self.environment_digest),
            hex::encode(self.package_digest),
            hex::encode(self.runtime_digest),
            s(&self.san),
            self.size_mb,
            tls,
            self.version
        )
        .into_bytes()
    }

    /// SHA-256 of the canonical bytes: the enclave's MRENCLAVE under the sim TEE.
    pub fn measurement(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }

    /// The context JSON (pretty) that `mse` saves next to a deployment.
    pub fn to_context_json(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Read a context JSON back; refuses unknown fields and other manifest versions.
    pub fn from_context_json(text: &str) -> Result<Manifest, MeasurementError> {
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| MeasurementError::Context(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(MeasurementError::Context(format!(
                "manifest version {} is not supported (expected {MANIFEST_VERSION})",
                m.version
            )));
        }
        Ok(m)
    }
}

/// Recompute the measurement from the inputs (what the CLI calls before trusting an enclave).
pub fn recompute(inputs: &MeasurementInputs<'_>) -> Result<[u8; 32], MeasurementError> {
    Ok(Manifest::compute(inputs)?.measurement())
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

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text)
            .map_err(|e| D::Error::custom(format!("{text:?} is not hex: {e}")))?;
        bytes
            .try_into()
            .map_err(|b: Vec<u8>| D::Error::custom(format!("expected 32 bytes, got {}", b.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: 1,
            runtime_digest: [1; 32],
            environment_digest: [2; 32],
            package_digest: [3; 32],
            app_id: "00000000-0000-0000-0000-000000000001".into(),
            san: "app.example.com".into(),
            application: "app:app".into(),
            size_mb: 4096,
            tls: TlsMode::Expiration(1_900_000_000),
        }
    }

    #[test]
    fn canonical_bytes_and_golden_measurement() {
        let m = sample();
        assert_eq!(
            String::from_utf8(m.canonical_bytes()).unwrap(),
            concat!(
                r#"{"app_id":"00000000-0000-0000-0000-000000000001","application":"app:app","#,
                r#""environment_digest":"0202020202020202020202020202020202020202020202020202020202020202","#,
                r#""package_digest":"0303030303030303030303030303030303030303030303030303030303030303","#,
                r#""runtime_digest":"0101010101010101010101010101010101010101010101010101010101010101","#,
                r#""san":"app.example.com","size_mb":4096,"tls":{"expiration":1900000000},"version":1}"#
            )
        );
        assert_eq!(
            hex::encode(m.measurement()),
            hex::encode(Sha256::digest(m.canonical_bytes()))
        );
        assert_eq!(hex::encode(m.measurement()), GOLDEN);
    }

    const GOLDEN: &str = "b40bd8ac43a3eb6998286380d2b66762001f24eaae2924c2c29f4e5ae6628191";

    #[test]
    fn owner_mode_and_escaping() {
        let mut m = sample();
        m.san = "a\"b".into();
        m.tls = TlsMode::OwnerCertificateSha256([0xab; 32]);
        let text = String::from_utf8(m.canonical_bytes()).unwrap();
        assert!(text.contains(r#""san":"a\"b""#), "{text}");
        assert!(text.contains(&format!(
            r#""tls":{{"owner_certificate_sha256":"{}"}}"#,
            "ab".repeat(32)
        )));
        assert_ne!(m.measurement(), sample().measurement());
    }

    #[test]
    fn context_round_trip_and_refusals() {
        for m in [sample(), {
            let mut m = sample();
            m.tls = TlsMode::OwnerCertificateSha256([7; 32]);
            m
        }] {
            let back = Manifest::from_context_json(&m.to_context_json()).unwrap();
            assert_eq!(back, m);
        }
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_context_json()).unwrap();
        v["version"] = 2.into();
        assert_eq!(
            Manifest::from_context_json(&v.to_string())
                .unwrap_err()
                .to_string(),
            "measurement context: manifest version 2 is not supported (expected 1)"
        );
        v["version"] = 1.into();
        v["extra"] = true.into();
        assert!(
            Manifest::from_context_json(&v.to_string())
                .unwrap_err()
                .to_string()
                .contains("unknown field `extra`")
        );
        v.as_object_mut().unwrap().remove("extra");
        v["package_digest"] = "00".into();
        assert!(
            Manifest::from_context_json(&v.to_string())
                .unwrap_err()
                .to_string()
                .contains("expected 32 bytes, got 1")
        );
    }

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
