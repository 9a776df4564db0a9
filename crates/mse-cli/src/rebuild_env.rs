//! `--rebuild-env`: the app's environment is checked, not taken on the node's word. The node
//! publishes the lock of the environment it packed (`environment_lock` in `GET /apps/{id}`); `mse`
//! fetches the same wheels by file name (a PEP 503 simple index, or a local directory), checks
//! each one's SHA-256 against the lock, packs them with the same code as the node
//! (`mse_launch::envlock::pack`), measures the tree with the same code as the enclave
//! (`mse_attest::measurement::environment_digest`) and compares that digest with the launch
//! spec's, before anything is sent to the enclave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mse_launch::Digest32;
use mse_launch::envlock::{self, EnvLock};

use crate::cloud::api::NodeClient;

/// PyPI's simple index, where `--wheel-index` points by default.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";
/// Largest wheel downloaded.
const MAX_WHEEL_BYTES: u64 = 1 << 30;
/// Largest index page read.
const MAX_PAGE_BYTES: u64 = 16 << 20;

/// The `--rebuild-env` options of `mse deploy`.
#[derive(Args, Debug, Clone, Default)]
pub struct RebuildEnvArgs {
    /// Rebuild the app's environment here from the lock the node publishes (the same wheels,
    /// checked by SHA-256, packed with the same rules) and refuse to send anything unless its
    /// digest is the launch spec's.
    #[arg(long)]
    pub rebuild_env: bool,
    /// PEP 503 simple index to download the locked wheels from [default: https://pypi.org/simple].
    #[arg(
        long,
        value_name = "URL",
        requires = "rebuild_env",
        conflicts_with = "find_links"
    )]
    pub wheel_index: Option<String>,
    /// Take the locked wheels from this directory instead of an index.
    #[arg(long, value_name = "DIR", requires = "rebuild_env")]
    pub find_links: Option<PathBuf>,
}

/// Where the wheels come from.
enum Source {
    Dir(PathBuf),
    Index { agent: ureq::Agent, base: String },
}

impl Source {
    fn of(args: &RebuildEnvArgs) -> Source {
        match &args.find_links {
            Some(dir) => Source::Dir(dir.clone()),
            None => Source::Index {
                agent: ureq::Agent::new_with_config(
                    ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(600)))
                        .http_status_as_error(false)
                        // The system's roots (and a proxy's CA the machine trusts), as pip does.
                        .tls_config(
                            ureq::tls::TlsConfig::builder()
                                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                                .build(),
                        )
                        .user_agent(concat!("mse-cli/", env!("CARGO_PKG_VERSION")))
                        .build(),
                ),
                base: args
                    .wheel_index
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INDEX.to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::Index { base, .. } => base.clone(),
        }
    }

    /// The bytes of one locked wheel.
    fn fetch(&self, wheel: &envlock::LockedWheel) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::Dir(dir) => {
                let path = dir.join(&wheel.file);
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            }
            Source::Index { agent, base } => {
                let page_url = format!("{base}/{}/", envlock::normalized_name(&wheel.name));
                let page = get(agent, &page_url, MAX_PAGE_BYTES)?;
                let href = find_link(&String::from_utf8_lossy(&page), &wheel.file)
                    .with_context(|| format!("{page_url} does not list {}", wheel.file))?;
                get(agent, &resolve(&page_url, &href), MAX_WHEEL_BYTES)
            }
        }
    }
}

/// The body of `GET url` (at most `limit` bytes); any status but 2xx is an error naming the URL.
/// Also the download of a node's published VM image (vm_expect).
pub(crate) fn get(agent: &ureq::Agent, url: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        bail!("GET {url}: HTTP {}", resp.status());
    }
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}"))
}

/// The `href` of the anchor of a simple-index page whose file name is `file` (fragment dropped).
fn find_link(page: &str, file: &str) -> Option<String> {
    page.split("href=\"").skip(1).find_map(|rest| {
        let href = rest.split('"').next()?.replace("&amp;", "&");
        let path = href.split('#').next().unwrap_or(&href);
        let name = path.rsplit('/').next().unwrap_or(path);
        (name == file || name.replace("%2B", "+").replace("%2b", "+") == file)
            .then(|| path.to_owned())
    })
}

/// `href` relative to the page at `page` (absolute, host-absolute or relative).
fn resolve(page: &str, href: &str) -> String {
    if href.contains("://") {
        return href.to_owned();
    }
    if let Some(rest) = href.strip_prefix('/') {
        let origin_end = page
            .find("://")
            .and_then(|i| page[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(page.len());
        return format!("{}/{rest}", &page[..origin_end]);
    }
    // Relative: drop the page's last segment, then apply `.` and `..` segments.
    let origin_end = page
        .find("://")
        .and_then(|i| page[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(page.len());
    let (origin, path) = page.split_at(origin_end);
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if !path.ends_with('/') {
        segs.pop();
    }
    for seg in href.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("{origin}/{}", segs.join("/"))
}

/// Fetches `lock`'s wheels from `source` into `dir`, each checked against the lock.
fn fetch_wheels(lock: &EnvLock, source: &Source, dir: &Path) -> anyhow::Result<()> {
    for wheel in &lock.wheels {
        let bytes = source
            .fetch(wheel)
            .with_context(|| format!("fetching wheel {}", wheel.file))?;
        let found = Digest32::of(&bytes);
        if found != wheel.sha256 {
            bail!(
                "wheel {} from {}: SHA-256 {found}, but the node's lock says {}",
                wheel.file,
                source.describe(),
                wheel.sha256
            );
        }
        let path = dir.join(&wheel.file);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Rebuilds the environment of app `id` from the lock the node publishes and compares its
/// digest with `declared` (the launch spec's). Returns the line saying what was compared.
pub fn check(
    client: &NodeClient,
    id: &str,
    declared: Digest32,
    args: &RebuildEnvArgs,
) -> anyhow::Result<String> {
    let value = client.app(id)?.environment_lock.context(
        "the node publishes no lock of the app's environment (--rebuild-env needs one; a pre-built venv has none)",
    )?;
    let lock = EnvLock::from_json(&value.to_string()).context("the node's environment lock")?;
    let source = Source::of(args);
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let wheels = work.path().join("wheels");
    std::fs::create_dir(&wheels).context("cannot create a temporary directory")?;
    fetch_wheels(&lock, &source, &wheels)?;
    let env = work.path().join("env");
    envlock::pack(&lock, &wheels, &env).context("packing the environment")?;
    let ours = Digest32(
        mse_attest::measurement::environment_digest(&env)
            .context("measuring the rebuilt environment")?,
    );
    let what = format!(
        "{} wheels from {}, Python {} ({}), rules {}",
        lock.wheels.len(),
        source.describe(),
        lock.python.version,
        lock.python.executable,
        lock.rules
    );
    if ours != declared {
        bail!(
            "the environment in the node's launch spec ({declared}) is not the one its published lock rebuilds to here ({ours}; {what}): the node attaches another environment than it declares"
        );
    }
    Ok(format!(
        "Environment rebuilt here from the node's lock ({what}): digest {ours}, the launch spec's"
    ))
}

/// `mse verify DOMAIN --rebuild-env`: the app this CLI deployed at `host` (its context names
/// the node and holds the launch spec checked at deploy) has its environment rebuilt from the
/// node's lock and compared with that spec's. Returns the line saying so, and the measurement
/// the spec implies when its TEE is simulated (the sim measurement is the spec hash).
pub fn check_deployed(
    host: &str,
    args: &RebuildEnvArgs,
) -> anyhow::Result<(String, Option<[u8; 32]>)> {
    use crate::cloud::config::{Login, config_dir};
    use crate::cloud::context::{ContextStore, SPEC_FILE};
    let dir = config_dir()?;
    let store = ContextStore::new(&dir);
    let (infos, _) = store.list()?;
    let info = infos
        .iter()
        .find(|i| i.domain_name == host || i.config_domain_name == host)
        .with_context(|| {
            format!("--rebuild-env: no app deployed from here has the domain {host} (it needs the deploy's context)")
        })?;
    let spec = mse_launch::LaunchSpec::from_json(store.read_file(&info.id, SPEC_FILE)?.as_bytes())
        .with_context(|| format!("the launch spec saved for app {}", info.id))?;
    let login = Login::load(&dir)?;
    let client = NodeClient::new(&info.node_url, &login.token);
    let line = check(&client, &info.id, spec.environment_sha256, args).context("--rebuild-env")?;
    // The sim TEE's measurement is the spec hash; a sim-snp VM's is its launch digest, which
    // `--launch-spec`/`--node` recompute (vm_expect).
    let measurement = (spec.tee == mse_launch::TeeKind::Sim).then(|| spec.sim_measurement());
    Ok((line, measurement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_index_links() {
        let page = r#"<a href="../../packages/ab/cd/flask-3.0.0-py3-none-any.whl#sha256=00">flask-3.0.0-py3-none-any.whl</a>
<a href="https://files.example/x/Flask-2.0-py3-none-any.whl">x</a>
<a href="/p/a%2Bb-1-py3-none-any.whl">y</a>"#;
        let page_url = "https://pypi.example/simple/flask/";
        let href = find_link(page, "flask-3.0.0-py3-none-any.whl").unwrap();
        assert_eq!(
            resolve(page_url, &href),
            "https://pypi.example/packages/ab/cd/flask-3.0.0-py3-none-any.whl"
        );
        assert_eq!(
            resolve(
                page_url,
                &find_link(page, "Flask-2.0-py3-none-any.whl").unwrap()
            ),
            "https://files.example/x/Flask-2.0-py3-none-any.whl"
        );
        assert_eq!(
            resolve(
                page_url,
                &find_link(page, "a+b-1-py3-none-any.whl").unwrap()
            ),
            "https://pypi.example/p/a%2Bb-1-py3-none-any.whl"
        );
        assert_eq!(find_link(page, "other-1-py3-none-any.whl"), None);
    }
}
