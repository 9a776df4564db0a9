//! The deployment contexts kept under `<config dir>/context/<app id>/`: what `mse` needs to
//! re-verify, test or re-create a deployment later.
//!
//! Files of a context (all mode 0600, directory 0700):
//! - `context.toml`: [`ContextInfo`] (ids, names, domains, node, measurement, tests);
//! - `code.key`: the code key, 64 hex characters (secret: it decrypts the code);
//! - `nonces.json`: the per-file nonces (with the key, the package rebuilds byte for byte);
//! - `launch-spec.json`: the launch spec (canonical bytes) whose hash the evidence was checked against;
//! - `ratls.pem`: the enclave certificate that was verified (for `curl --cacert`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::config::{ensure_private_dir, write_private};

pub const INFO_FILE: &str = "context.toml";
pub const KEY_FILE: &str = "code.key";
pub const NONCES_FILE: &str = "nonces.json";
pub const SPEC_FILE: &str = "launch-spec.json";
pub const CERT_FILE: &str = "ratls.pem";

/// Version of the `context.toml` layout this code writes.
pub const CONTEXT_VERSION: u32 = 1;

/// `context.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextInfo {
    pub version: u32,
    pub id: String,
    pub name: String,
    pub project: String,
    /// The node's API URL.
    pub node_url: String,
    /// The RA-TLS certificate's SAN (the router's SNI).
    pub config_domain_name: String,
    /// Where users reach the app.
    pub domain_name: String,
    /// The router address the app was reached through (`host:port`).
    pub router_address: String,
    /// When the deployment started (RFC 3339).
    pub created_at: String,
    pub python_application: String,
    pub healthcheck_endpoint: String,
    pub tee: String,
    /// The measurement the evidence carried (hex); empty until verified.
    #[serde(default)]
    pub measurement: String,
    /// Whether the measurement was recomputed locally (false with `--no-verify`).
    #[serde(default)]
    pub measurement_recomputed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_cmd: Option<String>,
    #[serde(default)]
    pub tests_requirements: Vec<String>,
}

/// An app deployed from this machine, found by its domain: its context and the launch spec
/// checked at deploy (what `mse verify DOMAIN` holds the enclave against).
pub struct Deployed {
    pub info: ContextInfo,
    pub spec: mse_launch::LaunchSpec,
}

/// The app deployed from here (contexts under `config_dir`) whose domain is `host`, newest
/// first; `None` when there is none.
pub fn deployed_at(config_dir: &Path, host: &str) -> anyhow::Result<Option<Deployed>> {
    let store = ContextStore::new(config_dir);
    let (infos, _) = store.list()?;
    let Some(info) = infos
        .into_iter()
        .rev()
        .find(|i| i.domain_name == host || i.config_domain_name == host)
    else {
        return Ok(None);
    };
    let spec = mse_launch::LaunchSpec::from_json(store.read_file(&info.id, SPEC_FILE)?.as_bytes())
        .with_context(|| format!("the launch spec saved for app {}", info.id))?;
    Ok(Some(Deployed { info, spec }))
}

/// The contexts directory.
pub struct ContextStore {
    root: PathBuf,
}

/// An app id usable as a directory name: letters, digits and dashes only.
pub fn check_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        bail!(
            "{id:?} is not an app id (expected a UUID such as 123e4567-e89b-12d3-a456-426614174000)"
        );
    }
    Ok(())
}

impl ContextStore {
    pub fn new(config_dir: &Path) -> ContextStore {
        ContextStore {
            root: config_dir.join("context"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> anyhow::Result<PathBuf> {
        check_id(id)?;
        Ok(self.root.join(id))
    }

    /// Creates the context of a new deployment (fails if it exists).
    pub fn create(
        &self,
        info: &ContextInfo,
        key_hex: &str,
        nonces_json: &str,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.dir(&info.id)?;
        ensure_private_dir(&self.root)?;
        if dir.exists() {
            bail!(
                "a context for app {} already exists in {}",
                info.id,
                dir.display()
            );
        }
        // Built next to its final place and renamed: never a context without its key.
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)
            .with_context(|| format!("cannot create a directory in {}", self.root.display()))?;
        write_private(&staging.path().join(KEY_FILE), key_hex.as_bytes())?;
        write_private(&staging.path().join(NONCES_FILE), nonces_json.as_bytes())?;
        write_info(staging.path(), info)?;
        fs::rename(staging.path(), &dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // The rename moved the directory: nothing left for the guard to delete.
        let _ = staging.keep();
        Ok(dir)
    }

    pub fn load(&self, id: &str) -> anyhow::Result<ContextInfo> {
        let dir = self.dir(id)?;
        let path = dir.join(INFO_FILE);
        let text =
            match mse_conf::bounded::read_bounded_string(&path, mse_conf::bounded::MAX_CONF_FILE)
                .map_err(std::io::Error::from)
            {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "no context for app {id} in {} (deployed from another machine or removed?)",
                    self.root.display()
                ),
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
        let info: ContextInfo = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        if info.version != CONTEXT_VERSION {
            bail!(
                "{}: context version {} is not supported (expected {CONTEXT_VERSION})",
                path.display(),
                info.version
            );
        }
        if info.id != id {
            bail!("{}: holds app {}, not {id}", path.display(), info.id);
        }
        Ok(info)
    }

    pub fn save(&self, info: &ContextInfo) -> anyhow::Result<()> {
        write_info(&self.dir(&info.id)?, info)
    }

    /// Writes one more file of a context.
    pub fn write_file(&self, id: &str, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.dir(id)?.join(name);
        write_private(&path, bytes)?;
        Ok(path)
    }

    pub fn read_file(&self, id: &str, name: &str) -> anyhow::Result<String> {
        let path = self.dir(id)?.join(name);
        mse_conf::bounded::read_bounded_string(&path, mse_conf::bounded::MAX_CERT_FILE)
            .with_context(|| format!("cannot read {}", path.display()))
    }

    /// Every context, oldest first; unreadable ones are reported, not fatal.
    pub fn list(&self) -> anyhow::Result<(Vec<ContextInfo>, Vec<String>)> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((out, problems)),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.root.display()));
            }
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", self.root.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            match self.load(&name) {
                Ok(info) => out.push(info),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok((out, problems))
    }

    /// Removes one context; false when there was none.
    pub fn remove(&self, id: &str) -> anyhow::Result<bool> {
        let dir = self.dir(id)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
        }
    }

    /// Removes every context; returns how many there were.
    pub fn purge(&self) -> anyhow::Result<usize> {
        let (list, _) = self.list()?;
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(list.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.root.display())),
        }
    }

    /// One self-contained TOML file with the whole context (key included), for another
    /// machine or a verifier who recomputes the measurement.
    pub fn export(&self, id: &str) -> anyhow::Result<String> {
        let info = self.load(id)?;
        let key = self.read_file(id, KEY_FILE)?;
        let nonces = self.read_file(id, NONCES_FILE)?;
        let optional = |name| self.read_file(id, name).ok();
        let export = Export {
            context: info,
            code_secret_key: key.trim().to_owned(),
            nonces: serde_json::from_str(&nonces).context("nonces.json is not JSON")?,
            launch_spec: optional(SPEC_FILE),
            ratls_certificate: optional(CERT_FILE),
        };
        toml::to_string(&export).context("encoding the exported context")
    }
}

#[derive(Serialize)]
struct Export {
    context: ContextInfo,
    code_secret_key: String,
    nonces: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    launch_spec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratls_certificate: Option<String>,
}

fn write_info(dir: &Path, info: &ContextInfo) -> anyhow::Result<()> {
    let text = toml::to_string(info).context("encoding the context")?;
    write_private(&dir.join(INFO_FILE), text.as_bytes())
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A context as a deployment records it.
    pub fn info(id: &str) -> ContextInfo {
        ContextInfo {
            version: CONTEXT_VERSION,
            id: id.into(),
            name: "helloworld".into(),
            project: "default".into(),
            node_url: "http://127.0.0.1:9443".into(),
            config_domain_name: format!("{id}.localhost"),
            domain_name: format!("{id}.localhost"),
            router_address: "127.0.0.1:8443".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            python_application: "app:app".into(),
            healthcheck_endpoint: "/health".into(),
            tee: "sim".into(),
            measurement: String::new(),
            measurement_recomputed: false,
            tests_dir: Some("/work/app/tests".into()),
            tests_cmd: Some("pytest".into()),
            tests_requirements: vec!["pytest>=8".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn info(id: &str, created_at: &str) -> ContextInfo {
        ContextInfo {
            created_at: created_at.into(),
            ..tests_support::info(id)
        }
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";

    #[test]
    fn create_load_list_remove_purge() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContextStore::new(dir.path());
        assert!(store.list().unwrap().0.is_empty());
        let path = store
            .create(
                &info(B, "2026-01-02T00:00:00Z"),
                &"ab".repeat(32),
                r#"{"app.py.enc":"00"}"#,
            )
            .unwrap();
        store
            .create(&info(A, "2026-01-03T00:00:00Z"), &"cd".repeat(32), "{}")
            .unwrap();
        assert_eq!(path, dir.path().join("context").join(B));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&path.join(INFO_FILE)), 0o600);
        assert_eq!(mode(&store.root), 0o700);
        assert_eq!(store.load(B).unwrap(), info(B, "2026-01-02T00:00:00Z"));
        assert_eq!(
            store
                .create(&info(B, "x"), "k", "{}")
                .unwrap_err()
                .to_string(),
            format!("a context for app {B} already exists in {}", path.display())
        );

        let mut updated = store.load(A).unwrap();
        updated.measurement = "ee".repeat(32);
        store.save(&updated).unwrap();
        store.write_file(A, CERT_FILE, b"PEM").unwrap();
        let (list, problems) = store.list().unwrap();
        assert!(problems.is_empty());
        assert_eq!(
            list.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [B, A],
            "oldest first"
        );
        assert_eq!(list[1].measurement, "ee".repeat(32));

        let exported = store.export(A).unwrap();
        let v: toml::Value = toml::from_str(&exported).unwrap();
        assert_eq!(v["code_secret_key"].as_str().unwrap(), "cd".repeat(32));
        assert_eq!(v["context"]["id"].as_str().unwrap(), A);
        assert_eq!(v["ratls_certificate"].as_str().unwrap(), "PEM");
        assert!(v.get("launch_spec").is_none());

        assert!(store.remove(A).unwrap());
        assert!(!store.remove(A).unwrap());
        assert_eq!(
            store.load(A).unwrap_err().to_string(),
            format!(
                "no context for app {A} in {} (deployed from another machine or removed?)",
                store.root.display()
            )
        );
        assert_eq!(store.purge().unwrap(), 1);
        assert!(!store.root.exists());
        assert_eq!(store.purge().unwrap(), 0);
    }

    #[test]
    fn ids_cannot_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContextStore::new(dir.path());
        for bad in ["../x", "a/b", "", ".", "..", "a b"] {
            assert!(store.dir(bad).is_err(), "{bad:?}");
            assert!(store.remove(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_id("../etc").unwrap_err().to_string(),
            "\"../etc\" is not an app id (expected a UUID such as 123e4567-e89b-12d3-a456-426614174000)"
        );
    }

    #[test]
    fn a_broken_context_is_listed_as_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContextStore::new(dir.path());
        store.create(&info(A, "t"), "k", "{}").unwrap();
        fs::create_dir_all(store.root.join(B)).unwrap();
        fs::write(store.root.join(B).join(INFO_FILE), "version = 9\n").unwrap();
        let (list, problems) = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains(INFO_FILE), "{}", problems[0]);
    }
}
