//! The user's configuration directory and the login (node URL + bearer token) stored in it.
//!
//! Directory: `$MSE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/mse`, else `~/.config/mse` (the
//! original's `~/.config/mse/`). Files holding a secret (the token, code keys) are written
//! atomically with mode 0600 in directories of mode 0700.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Name of the login file inside the configuration directory.
pub const LOGIN_FILE: &str = "login.toml";

/// The configuration directory, from the environment (not created).
pub fn config_dir() -> anyhow::Result<PathBuf> {
    config_dir_from(|k| std::env::var_os(k))
}

fn config_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> anyhow::Result<PathBuf> {
    let non_empty = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("MSE_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME") {
        return Ok(xdg.join("mse"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(home.join(".config").join("mse")),
        None => bail!("cannot find a configuration directory: set MSE_CONFIG_DIR or HOME"),
    }
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `bytes` to `path` through a temporary file (mode 0600) renamed over it: readers see
/// the old or the new content, never half of it.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".mse-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What `mse login` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The node's API base URL, e.g. `http://127.0.0.1:9443`.
    pub url: String,
    /// The project's bearer token.
    pub token: String,
    /// SHA-256 of the node's mock Intel root (sim TEE only), recorded at the first deploy and
    /// required to stay the same afterwards (trust on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_root_sha256: Option<String>,
    /// The same for the node's mock AMD ARK (sim-snp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_amd_root_sha256: Option<String>,
}

impl Login {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(LOGIN_FILE)
    }

    /// The stored login, or a clear error telling how to log in.
    pub fn load(dir: &Path) -> anyhow::Result<Login> {
        let path = Login::path(dir);
        let text =
            match mse_conf::bounded::read_bounded_string(&path, mse_conf::bounded::MAX_CONF_FILE)
                .map_err(std::io::Error::from)
            {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("not logged in: run `mse login --url URL --token TOKEN` first")
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
        // The file holds the token: never echo its content in an error.
        let login: Login = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a valid login file ({}); run `mse login` again",
                path.display(),
                e.message()
            )
        })?;
        Ok(login)
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self).context("encoding the login file")?;
        write_private(&Login::path(dir), text.as_bytes())
    }

    /// Removes the login; false when there was none.
    pub fn remove(dir: &Path) -> anyhow::Result<bool> {
        let path = Login::path(dir);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// Checks a node URL given to `mse login`: http(s), a host, no query; returns it without a
/// trailing slash.
pub fn normalize_url(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim();
    let (scheme, rest) = if let Some(r) = trimmed.strip_prefix("http://") {
        ("http://", r)
    } else if let Some(r) = trimmed.strip_prefix("https://") {
        ("https://", r)
    } else {
        bail!("--url {url:?} must start with http:// or https://");
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        bail!("--url {url:?} has no host");
    }
    if rest.contains(['?', '#', ' ']) {
        bail!("--url {url:?} must be a base URL (no query, fragment or space)");
    }
    Ok(format!("{scheme}{rest}"))
}

/// Checks a bearer token's shape (the node judges it): printable ASCII without spaces.
pub fn check_token(token: &str) -> anyhow::Result<()> {
    if token.is_empty() {
        bail!("--token is empty");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("--token must be printable ASCII without spaces");
    }
    Ok(())
}

/// Opens `path` for reading with a message naming it.
pub fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            config_dir_from(env(&[
                ("MSE_CONFIG_DIR", "/a"),
                ("XDG_CONFIG_HOME", "/b"),
                ("HOME", "/h")
            ]))
            .unwrap(),
            PathBuf::from("/a")
        );
        assert_eq!(
            config_dir_from(env(&[("XDG_CONFIG_HOME", "/b"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/b/mse")
        );
        assert_eq!(
            config_dir_from(env(&[("MSE_CONFIG_DIR", ""), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/h/.config/mse")
        );
        assert_eq!(
            config_dir_from(env(&[])).unwrap_err().to_string(),
            "cannot find a configuration directory: set MSE_CONFIG_DIR or HOME"
        );
    }

    #[test]
    fn login_round_trip_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg");
        assert_eq!(
            Login::load(&cfg).unwrap_err().to_string(),
            "not logged in: run `mse login --url URL --token TOKEN` first"
        );
        let login = Login {
            url: "http://127.0.0.1:9443".into(),
            token: "tok-123".into(),
            sim_root_sha256: None,
            sim_amd_root_sha256: None,
        };
        login.save(&cfg).unwrap();
        assert_eq!(Login::load(&cfg).unwrap(), login);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&Login::path(&cfg)), 0o600);
        assert_eq!(mode(&cfg), 0o700);
        assert!(Login::remove(&cfg).unwrap());
        assert!(!Login::remove(&cfg).unwrap());
    }

    #[test]
    fn a_corrupt_login_file_does_not_echo_the_token() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            Login::path(dir.path()),
            "url = \"x\"\ntoken = secret-token\n",
        )
        .unwrap();
        let err = Login::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a valid login file"), "{err}");
        assert!(!err.contains("secret-token"), "{err}");
    }

    #[test]
    fn url_and_token_checks() {
        for (url, normalized) in [
            ("http://127.0.0.1:9443/", "http://127.0.0.1:9443"),
            (
                "https://node.example.com/api",
                "https://node.example.com/api",
            ),
        ] {
            assert_eq!(normalize_url(url).unwrap(), normalized);
        }
        for (url, refusal) in [
            (
                "127.0.0.1:9443",
                "--url \"127.0.0.1:9443\" must start with http:// or https://",
            ),
            ("http://", "--url \"http://\" has no host"),
            (
                "http://a/?x=1",
                "--url \"http://a/?x=1\" must be a base URL (no query, fragment or space)",
            ),
        ] {
            assert_eq!(normalize_url(url).unwrap_err().to_string(), refusal);
        }
        check_token("abc_DEF-123.xyz").unwrap();
        for (token, refusal) in [
            ("", "--token is empty"),
            ("a b", "--token must be printable ASCII without spaces"),
        ] {
            assert_eq!(check_token(token).unwrap_err().to_string(), refusal);
        }
    }
}
