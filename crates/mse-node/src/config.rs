//! `node.toml`: where the node keeps its data, what it listens on, the hardware tiers it offers
//! and the Python environments an app's `docker` field can name. Every field has an embedded
//! default, so `mse-node serve` needs no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A node.toml error: file, line when known, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The node.toml read.
    pub file: PathBuf,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// A hardware tier (`GET /hardwares/{name}`): what an app deployed on it gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Tier {
    /// What mse.toml's `hardware` names, e.g. `4g-eu-001`.
    pub name: String,
    /// Memory of the tier in MB (informational, as in the original API).
    pub memory: u64,
    /// CPU cores the enclave process is pinned to.
    pub cores: u32,
    /// Enclave size in MB, passed to `mse-enclave --size`.
    pub enclave_size: u64,
}

pub use mse_launch::TeeKind;
pub use mse_launch::venv::{EnvSource, Environment};

/// An mse.toml `docker` value that names none of the node's environments.
#[derive(Debug, thiserror::Error)]
#[error("unknown environment {docker:?}: this node offers {offered}")]
pub struct UnknownEnvironment {
    /// The value asked for.
    pub docker: String,
    /// The environments the node has, comma-separated.
    pub offered: String,
}

/// The node's configuration, after defaults and validation.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Holds the SQLite store, the sim seed, the venvs and each app's work dir (absolute).
    pub data_dir: PathBuf,
    /// Where the developers' API listens (plain HTTP; default [`DEFAULT_API_BIND`]).
    pub api_bind: SocketAddr,
    /// Where the SNI router takes end users' TLS (default [`DEFAULT_ROUTER_BIND`]).
    pub router_bind: SocketAddr,
    /// DNS suffix of app domains, `<app id>.<base_domain>` (default `localhost`).
    pub base_domain: String,
    /// The TEE apps run in (`sim` on the embedded default); it goes into every launch spec.
    pub tee: TeeKind,
    /// The `mse-enclave` executable; default: next to the `mse-node` executable.
    pub enclave_bin: PathBuf,
    /// Largest code package accepted by `POST /apps`, in bytes.
    pub max_package_bytes: u64,
    /// Most apps alive (spawning, initializing or running) at once.
    pub max_apps: usize,
    /// Most live apps of one project, so that one project cannot take every slot.
    pub max_apps_per_project: usize,
    /// Most package bytes of one project's live apps together.
    pub max_project_package_bytes: u64,
    /// Longest lifetime an app may ask for (or get from its certificate), in hours.
    pub max_lifetime_hours: u64,
    /// Most connections the SNI router carries at once.
    pub router_max_connections: usize,
    /// Whether `router_max_connections` was set in node.toml (otherwise the node may lower it
    /// to fit the open-files limit; a value set explicitly that does not fit is refused).
    pub router_max_connections_explicit: bool,
    /// Most connections the router carries at once to one app, so that one tenant cannot take
    /// every router connection.
    pub router_max_connections_per_app: usize,
    /// Most connections one client address holds at once through the router (ClientHello
    /// wait included).
    pub router_max_connections_per_client: usize,
    /// A spliced connection with no byte in either direction for this long is closed, in
    /// seconds.
    pub router_idle_timeout_secs: u64,
    /// How long a client may take to send its ClientHello, in milliseconds.
    pub client_hello_timeout_ms: u64,
    /// An API client that sends nothing for this long while the server waits for its request
    /// (header or body) is disconnected, in seconds.
    pub api_read_timeout_secs: u64,
    /// An API request's header must be complete this long after its connection opened, in
    /// seconds (a client trickling bytes is cut too).
    pub api_header_timeout_secs: u64,
    /// Slowest average rate an API request body may arrive at once `api_read_timeout_secs`
    /// have passed, in KiB/s.
    pub api_min_body_rate_kib: u64,
    /// Lifetime of an app whose conf gives no expiration, in hours.
    pub default_lifetime_hours: u64,
    /// How long the enclave may take to reach `initializing`, in seconds.
    pub spawn_timeout_secs: u64,
    /// Hardware tiers offered (`[[hardware]]`), in file order.
    pub hardware: Vec<Tier>,
    /// Python environments offered (`[[environment]]`), in file order; never empty.
    pub environments: Vec<Environment>,
    /// The guest image of VM enclaves: a directory with `vmlinuz`, `initrd.img` and `image.json`
    /// (`mse-node image build --out DIR`), published at `GET /image` (image_api).
    pub vm_image: Option<PathBuf>,
    /// The VM firmware file (e.g. an AmdSev OVMF build), published at `GET /image/firmware`.
    pub vm_firmware: Option<PathBuf>,
    /// What starts enclaves: host processes (default) or VMs.
    pub launcher: LauncherKind,
    /// The VM launcher's settings (`[vm]`), used when `launcher = "vm"`.
    pub vm: VmSettings,
}

/// `launcher` in node.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    /// `mse-enclave` as a host process in a namespace sandbox.
    Process,
    /// One QEMU VM per app, booted from the guest image.
    Vm,
}

/// `[vm]` in node.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSettings {
    /// The QEMU binary; default `qemu-system-x86_64` from the PATH.
    pub qemu: PathBuf,
    /// vCPU model of SEV-SNP guests.
    pub vcpu_type: String,
    /// `restrict = true`: guests get no outbound network (forwarded ports still work).
    pub restrict: bool,
    /// TDX reference values of the image (`tdx_mrtd`, `tdx_rtmr0..2`), measured by the operator
    /// and published in `GET /image`: a client cannot recompute them without a TDX measurement
    /// tool, so the node states them and the quote must match.
    pub tdx: Option<TdxReference>,
}

/// MRTD and RTMR0..2 of the image's TD (48 bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxReference {
    /// MRTD: the initial TD memory (firmware) measurement.
    pub mr_td: [u8; 48],
    /// RTMR0, RTMR1 and RTMR2, in that order.
    pub rtmrs: [[u8; 48]; 3],
}

impl Default for VmSettings {
    fn default() -> VmSettings {
        VmSettings {
            qemu: PathBuf::from("qemu-system-x86_64"),
            vcpu_type: "EPYC-v4".into(),
            restrict: false,
            tdx: None,
        }
    }
}

/// Default `api_bind`: loopback only, as the API is plain HTTP.
pub const DEFAULT_API_BIND: &str = "127.0.0.1:9443";
/// Default `router_bind`.
pub const DEFAULT_ROUTER_BIND: &str = "127.0.0.1:8443";

fn default_tiers() -> Vec<Tier> {
    let tier = |name: &str, memory, cores, enclave_size| Tier {
        name: name.to_owned(),
        memory,
        cores,
        enclave_size,
    };
    vec![
        tier("2g-eu-001", 2048, 1, 2048),
        tier("4g-eu-001", 4096, 1, 4096),
        tier("8g-eu-001", 8192, 2, 8192),
    ]
}

fn default_environments() -> Vec<Environment> {
    let env = |name: &str, packages: &[&str]| Environment {
        name: name.to_owned(),
        source: EnvSource::Packages {
            python: "python3".to_owned(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            find_links: None,
        },
    };
    vec![
        env("mse-flask", &["flask>=3,<4"]),
        env("mse-fastapi", &["fastapi"]),
    ]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<Spanned<String>>,
    api_bind: Option<Spanned<String>>,
    router_bind: Option<Spanned<String>>,
    base_domain: Option<Spanned<String>>,
    tee: Option<Spanned<String>>,
    enclave_bin: Option<Spanned<String>>,
    max_package_mb: Option<Spanned<u64>>,
    max_apps: Option<Spanned<u64>>,
    max_apps_per_project: Option<Spanned<u64>>,
    max_project_package_mb: Option<Spanned<u64>>,
    max_lifetime_hours: Option<Spanned<u64>>,
    router_max_connections: Option<Spanned<u64>>,
    router_max_connections_per_app: Option<Spanned<u64>>,
    router_max_connections_per_client: Option<Spanned<u64>>,
    router_idle_timeout_secs: Option<Spanned<u64>>,
    client_hello_timeout_ms: Option<Spanned<u64>>,
    api_read_timeout_secs: Option<Spanned<u64>>,
    api_header_timeout_secs: Option<Spanned<u64>>,
    api_min_body_rate_kib: Option<Spanned<u64>>,
    default_lifetime_hours: Option<Spanned<u64>>,
    spawn_timeout_secs: Option<Spanned<u64>>,
    hardware: Option<Vec<Spanned<RawTier>>>,
    environment: Option<Vec<Spanned<RawEnv>>>,
    vm_image: Option<Spanned<String>>,
    vm_firmware: Option<Spanned<String>>,
    launcher: Option<Spanned<String>>,
    vm: Option<RawVm>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    qemu: Option<String>,
    vcpu_type: Option<String>,
    restrict: Option<bool>,
    tdx_mrtd: Option<Spanned<String>>,
    tdx_rtmr0: Option<Spanned<String>>,
    tdx_rtmr1: Option<Spanned<String>>,
    tdx_rtmr2: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: String,
    memory: u64,
    cores: u32,
    enclave_size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    name: String,
    venv: Option<String>,
    python: Option<String>,
    packages: Option<Vec<String>>,
    find_links: Option<String>,
}

/// What the names of a table's entries may be.
struct NameRule {
    table: &'static str,
    max_len: usize,
    /// Bytes allowed besides ASCII letters and digits.
    extra: &'static [u8],
    /// The rule in words.
    allowed: &'static str,
    /// The error when the table is there but empty.
    none: &'static str,
}

const TIER_NAME: NameRule = NameRule {
    table: "hardware",
    max_len: 16,
    extra: b"-",
    allowed: "1..16 letters, digits or '-'",
    none: "at least one [[hardware]] tier is needed",
};

const ENVIRONMENT_NAME: NameRule = NameRule {
    table: "environment",
    max_len: usize::MAX,
    extra: b"-_.",
    allowed: "letters, digits, '-', '_' or '.'",
    none: "at least one [[environment]] is needed",
};

struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Doc<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(&self, span: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: Some(self.line(span.span().start)),
            message: message.into(),
        }
    }

    /// The entries of a `[[table]]` (at least one), each turned into a `T` by `build` once its
    /// name passes `rule` and is not taken by an earlier entry.
    fn table<R, T>(
        &self,
        entries: &[Spanned<R>],
        rule: &NameRule,
        name: fn(&R) -> &str,
        mut build: impl FnMut(&Spanned<R>, &R) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let mut names: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for entry in entries {
            let r = entry.get_ref();
            let n = name(r);
            if n.is_empty()
                || n.len() > rule.max_len
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || rule.extra.contains(&b))
            {
                return Err(self.err(
                    entry,
                    format!("{} name {n:?} must be {}", rule.table, rule.allowed),
                ));
            }
            if names.contains(&n) {
                return Err(self.err(entry, format!("{} {n:?} is defined twice", rule.table)));
            }
            names.push(n);
            out.push(build(entry, r)?);
        }
        if out.is_empty() {
            return Err(ConfigError {
                file: self.file.to_path_buf(),
                line: None,
                message: rule.none.to_owned(),
            });
        }
        Ok(out)
    }
}

/// `[vm] tdx_mrtd` and `tdx_rtmr0..2`: all four or none, each 48 bytes of hex.
fn tdx_reference(doc: &Doc<'_>, vm: &RawVm) -> Result<Option<TdxReference>, ConfigError> {
    let keys = [
        ("tdx_mrtd", &vm.tdx_mrtd),
        ("tdx_rtmr0", &vm.tdx_rtmr0),
        ("tdx_rtmr1", &vm.tdx_rtmr1),
        ("tdx_rtmr2", &vm.tdx_rtmr2),
    ];
    let Some((_, first)) = keys.iter().find_map(|(k, v)| v.as_ref().map(|v| (k, v))) else {
        return Ok(None);
    };
    let mut values = [[0u8; 48]; 4];
    for ((key, value), out) in keys.iter().zip(values.iter_mut()) {
        let Some(value) = value else {
            return Err(doc.err(
                first,
                format!("{key} is missing: the TDX reference values are tdx_mrtd, tdx_rtmr0, tdx_rtmr1 and tdx_rtmr2, all four"),
            ));
        };
        let text = value.get_ref().trim();
        hex::decode_to_slice(text, out).map_err(|_| {
            doc.err(
                value,
                format!(
                    "{key} must be 96 hex characters (48 bytes), got {} characters{}",
                    text.len(),
                    if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        ""
                    } else {
                        " with non-hex ones"
                    }
                ),
            )
        })?;
    }
    let [mr_td, r0, r1, r2] = values;
    Ok(Some(TdxReference {
        mr_td,
        rtmrs: [r0, r1, r2],
    }))
}

fn default_enclave_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("mse-enclave")))
        .unwrap_or_else(|| PathBuf::from("mse-enclave"))
}

/// Whether `name` is a valid DNS name made of LDH labels.
pub fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl NodeConfig {
    /// The embedded defaults, with the data directory at `./mse-node-data`.
    pub fn defaults() -> NodeConfig {
        NodeConfig {
            data_dir: std::path::absolute("mse-node-data")
                .unwrap_or_else(|_| PathBuf::from("mse-node-data")),
            api_bind: DEFAULT_API_BIND.parse().expect("constant address"),
            router_bind: DEFAULT_ROUTER_BIND.parse().expect("constant address"),
            base_domain: "localhost".to_owned(),
            tee: TeeKind::Sim,
            enclave_bin: default_enclave_bin(),
            max_package_bytes: 256 << 20,
            max_apps: 64,
            max_apps_per_project: 32,
            max_project_package_bytes: 1 << 30,
            max_lifetime_hours: 24 * 90,
            router_max_connections: 4096,
            router_max_connections_explicit: false,
            router_max_connections_per_app: 512,
            router_max_connections_per_client: 256,
            router_idle_timeout_secs: 300,
            client_hello_timeout_ms: 5000,
            api_read_timeout_secs: 30,
            api_header_timeout_secs: 10,
            api_min_body_rate_kib: 64,
            default_lifetime_hours: 24,
            spawn_timeout_secs: 120,
            hardware: default_tiers(),
            environments: default_environments(),
            vm_image: None,
            vm_firmware: None,
            launcher: LauncherKind::Process,
            vm: VmSettings::default(),
        }
    }

    /// Reads `path`; relative paths inside it are relative to its directory.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses node.toml text; `file` names it in errors and anchors its relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        let doc = Doc { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            line: e.span().map(|s| doc.line(s.start)),
            message: e.message().trim().to_owned(),
        })?;
        // Relative paths are anchored to the file's directory, made absolute: the enclave runs
        // in its app dir, so a relative path handed to it would point elsewhere.
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
        let base_dir = std::path::absolute(parent.unwrap_or(Path::new(".")))
            .unwrap_or_else(|_| PathBuf::from("."));
        let base_dir = base_dir.as_path();
        let rel = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base_dir.join(p) }
        };
        let mut cfg = NodeConfig::defaults();
        if let Some(d) = &raw.data_dir {
            if d.get_ref().is_empty() {
                return Err(doc.err(d, "data_dir must not be empty"));
            }
            cfg.data_dir = rel(d.get_ref());
        } else {
            cfg.data_dir = base_dir.join("mse-node-data");
        }
        let addr = |s: &Spanned<String>, field: &str| -> Result<SocketAddr, ConfigError> {
            s.get_ref().parse::<SocketAddr>().map_err(|_| {
                doc.err(
                    s,
                    format!(
                        "{field} = {:?} is not an IP:port address (e.g. \"127.0.0.1:9443\")",
                        s.get_ref()
                    ),
                )
            })
        };
        if let Some(a) = &raw.api_bind {
            cfg.api_bind = addr(a, "api_bind")?;
            // The API carries bearer tokens over plain HTTP: loopback only.
            if !cfg.api_bind.ip().is_loopback() {
                return Err(doc.err(
                    a,
                    "api_bind must be a loopback address: the API is plain HTTP and carries bearer tokens",
                ));
            }
        }
        if let Some(a) = &raw.router_bind {
            cfg.router_bind = addr(a, "router_bind")?;
        }
        if let Some(d) = &raw.base_domain {
            let name = d.get_ref().trim_end_matches('.').to_ascii_lowercase();
            if !valid_dns_name(&name) {
                return Err(doc.err(
                    d,
                    format!("base_domain = {:?} is not a DNS name", d.get_ref()),
                ));
            }
            cfg.base_domain = name;
        }
        if let Some(t) = &raw.tee {
            cfg.tee = match t.get_ref().as_str() {
                // Today's spelling for a node that is itself a TDX or SEV-SNP guest.
                "tsm" => {
                    return Err(doc.err(
                        t,
                        "tee = \"tsm\" is now named after the guest: \"sev-snp\" or \"tdx\"",
                    ));
                }
                other => other
                    .parse::<TeeKind>()
                    .map_err(|e| doc.err(t, format!("tee: {e}")))?,
            };
        }
        cfg.vm_image = raw.vm_image.as_ref().map(|p| rel(p.get_ref()));
        cfg.vm_firmware = raw.vm_firmware.as_ref().map(|p| rel(p.get_ref()));
        if let Some(b) = &raw.enclave_bin {
            cfg.enclave_bin = rel(b.get_ref());
        }
        if let Some(l) = &raw.launcher {
            cfg.launcher = match l.get_ref().as_str() {
                "process" => LauncherKind::Process,
                "vm" => LauncherKind::Vm,
                other => {
                    return Err(doc.err(
                        l,
                        format!("launcher = {other:?}: expected \"process\" or \"vm\""),
                    ));
                }
            };
        }
        if let Some(vm) = &raw.vm {
            if let Some(q) = &vm.qemu {
                // A bare name is looked up on the PATH; a path is anchored like the others.
                cfg.vm.qemu = if q.contains('/') {
                    rel(q)
                } else {
                    PathBuf::from(q)
                };
            }
            if let Some(t) = &vm.vcpu_type {
                cfg.vm.vcpu_type = t.clone();
            }
            if let Some(r) = vm.restrict {
                cfg.vm.restrict = r;
            }
            cfg.vm.tdx = tdx_reference(&doc, vm)?;
        }
        let positive = |v: &Spanned<u64>, field: &str| -> Result<u64, ConfigError> {
            if *v.get_ref() == 0 {
                Err(doc.err(v, format!("{field} must be at least 1")))
            } else {
                Ok(*v.get_ref())
            }
        };
        if let Some(v) = &raw.max_package_mb {
            cfg.max_package_bytes = positive(v, "max_package_mb")?.saturating_mul(1 << 20);
        }
        // Counts kept under the same name in NodeConfig, each at least 1.
        macro_rules! positive_fields {
            ($($field:ident $(as $t:ty)?),* $(,)?) => {$(
                if let Some(v) = &raw.$field {
                    cfg.$field = positive(v, stringify!($field))? $(as $t)?;
                }
            )*};
        }
        positive_fields!(max_apps as usize, max_apps_per_project as usize);
        if let Some(v) = &raw.max_project_package_mb {
            cfg.max_project_package_bytes =
                positive(v, "max_project_package_mb")?.saturating_mul(1 << 20);
        }
        positive_fields!(max_lifetime_hours, router_max_connections as usize);
        cfg.router_max_connections_explicit = raw.router_max_connections.is_some();
        positive_fields!(
            router_max_connections_per_app as usize,
            router_max_connections_per_client as usize,
            router_idle_timeout_secs,
            client_hello_timeout_ms,
            api_read_timeout_secs,
            api_header_timeout_secs,
            api_min_body_rate_kib,
            default_lifetime_hours,
            spawn_timeout_secs,
        );
        if let Some(tiers) = &raw.hardware {
            cfg.hardware = doc.table(tiers, &TIER_NAME, |r| &r.name, |t, r| {
                if r.enclave_size < 256 || !r.enclave_size.is_power_of_two() {
                    return Err(doc.err(
                        t,
                        format!(
                            "hardware {:?}: enclave_size = {} must be a power of two of at least 256 (MB)",
                            r.name, r.enclave_size
                        ),
                    ));
                }
                if r.cores == 0 || r.memory == 0 {
                    return Err(doc.err(
                        t,
                        format!("hardware {:?}: memory and cores must be at least 1", r.name),
                    ));
                }
                Ok(Tier {
                    name: r.name.clone(),
                    memory: r.memory,
                    cores: r.cores,
                    enclave_size: r.enclave_size,
                })
            })?;
        }
        if let Some(envs) = &raw.environment {
            cfg.environments = doc.table(envs, &ENVIRONMENT_NAME, |r| &r.name, |e, r| {
                let source = match (&r.venv, &r.packages) {
                    (Some(v), None) => {
                        if r.python.is_some() || r.find_links.is_some() {
                            return Err(doc.err(
                                e,
                                format!("environment {:?}: `python` and `find_links` only go with `packages`, not with `venv`", r.name),
                            ));
                        }
                        let v = rel(v);
                        if !v.join("bin").join("python").exists() {
                            return Err(doc.err(
                                e,
                                format!(
                                    "environment {:?}: venv {} has no bin/python",
                                    r.name,
                                    v.display()
                                ),
                            ));
                        }
                        EnvSource::Venv(v)
                    }
                    (None, Some(p)) => EnvSource::Packages {
                        python: r.python.clone().unwrap_or_else(|| "python3".to_owned()),
                        packages: p.clone(),
                        find_links: r.find_links.as_deref().map(rel),
                    },
                    _ => {
                        return Err(doc.err(
                            e,
                            format!(
                                "environment {:?} needs exactly one of `venv` or `packages`",
                                r.name
                            ),
                        ));
                    }
                };
                Ok(Environment {
                    name: r.name.clone(),
                    source,
                })
            })?;
        }
        Ok(cfg)
    }

    /// The hardware tier called `name`, if the node offers it.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.hardware.iter().find(|t| t.name == name)
    }

    /// The environment a `docker` value names, or an error listing the available ones.
    pub fn environment(&self, docker: &str) -> Result<&Environment, UnknownEnvironment> {
        self.environments
            .iter()
            .find(|e| e.matches(docker))
            .ok_or_else(|| UnknownEnvironment {
                docker: docker.to_owned(),
                offered: self
                    .environments
                    .iter()
                    .map(|e| e.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The app domain for an app id: `<id>.<base_domain>`.
    pub fn app_domain(&self, id: &str) -> String {
        format!("{id}.{}", self.base_domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        NodeConfig::parse(Path::new("/etc/node.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/etc/mse-node-data"));
        assert_eq!(cfg.api_bind.to_string(), "127.0.0.1:9443");
        assert_eq!(cfg.router_bind.to_string(), "127.0.0.1:8443");
        assert_eq!(cfg.base_domain, "localhost");
        assert_eq!(cfg.tier("4g-eu-001").unwrap().enclave_size, 4096);
        assert_eq!(
            cfg.environment("ghcr.io/cosmian/mse-flask:20230124182826")
                .unwrap()
                .name,
            "mse-flask"
        );
        assert_eq!(
            cfg.environment("ghcr.io/cosmian/mse-pytorch:20230104085621")
                .unwrap_err()
                .to_string(),
            "unknown environment \"ghcr.io/cosmian/mse-pytorch:20230104085621\": this node offers mse-flask, mse-fastapi"
        );
    }

    #[test]
    fn relative_paths_become_absolute_next_to_the_file() {
        let cfg = NodeConfig::parse(
            Path::new("node.toml"),
            "data_dir = \"d\"\nenclave_bin = \"bin/mse-enclave\"\n",
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(cfg.data_dir, cwd.join("d"));
        assert_eq!(cfg.enclave_bin, cwd.join("bin/mse-enclave"));
    }

    #[test]
    fn errors_name_file_and_line() {
        for (toml, error) in [
            (
                "data_dir = \"d\"\n\napi_bind = \"0.0.0.0:1\"\n",
                "/etc/node.toml:3: api_bind must be a loopback address: the API is plain HTTP and carries bearer tokens",
            ),
            (
                "router_bind = \"nope\"\n",
                "/etc/node.toml:1: router_bind = \"nope\" is not an IP:port address (e.g. \"127.0.0.1:9443\")",
            ),
            (
                "tee = \"sim\"\nfoo = 1\n",
                "/etc/node.toml:2: unknown field `foo`, expected one of `data_dir`, `api_bind`, `router_bind`, `base_domain`, `tee`, `enclave_bin`, `max_package_mb`, `max_apps`, `max_apps_per_project`, `max_project_package_mb`, `max_lifetime_hours`, `router_max_connections`, `router_max_connections_per_app`, `router_max_connections_per_client`, `router_idle_timeout_secs`, `client_hello_timeout_ms`, `api_read_timeout_secs`, `api_header_timeout_secs`, `api_min_body_rate_kib`, `default_lifetime_hours`, `spawn_timeout_secs`, `hardware`, `environment`, `vm_image`, `vm_firmware`, `launcher`, `vm`",
            ),
            (
                "[[hardware]]\nname = \"x\"\nmemory = 1\ncores = 1\nenclave_size = 1000\n",
                "/etc/node.toml:1: hardware \"x\": enclave_size = 1000 must be a power of two of at least 256 (MB)",
            ),
            (
                "[[hardware]]\nname = \"x_1\"\nmemory = 1\ncores = 1\nenclave_size = 256\n",
                "/etc/node.toml:1: hardware name \"x_1\" must be 1..16 letters, digits or '-'",
            ),
            (
                "[[environment]]\nname = \"e/1\"\npackages = []\n",
                "/etc/node.toml:1: environment name \"e/1\" must be letters, digits, '-', '_' or '.'",
            ),
            (
                "[[environment]]\nname = \"e\"\npackages = []\n\n[[environment]]\nname = \"e\"\npackages = []\n",
                "/etc/node.toml:5: environment \"e\" is defined twice",
            ),
            (
                "environment = []\n",
                "/etc/node.toml: at least one [[environment]] is needed",
            ),
            (
                "[[environment]]\nname = \"e\"\n",
                "/etc/node.toml:1: environment \"e\" needs exactly one of `venv` or `packages`",
            ),
            (
                "[[environment]]\nname = \"e\"\nvenv = \"/nonexistent-venv\"\n",
                "/etc/node.toml:1: environment \"e\": venv /nonexistent-venv has no bin/python",
            ),
        ] {
            assert_eq!(parse(toml).unwrap_err(), error, "{toml}");
        }
    }

    /// docs/guide/node-operator.md has a row for every node.toml key (the list is serde's own,
    /// from the unknown-field error).
    #[test]
    fn the_operator_guide_lists_every_key() {
        let err = parse("not_a_key = 1\n").unwrap_err();
        let keys: Vec<&str> = err
            .split_once("expected one of ")
            .unwrap()
            .1
            .split(", ")
            .map(|k| k.trim_matches('`'))
            .collect();
        assert!(keys.len() > 20, "{err}");
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guide/node-operator.md"),
        )
        .unwrap();
        let missing: Vec<&&str> = keys
            .iter()
            .filter(|k| {
                !doc.contains(&format!("| `{k}` |"))
                    && !doc.contains(&format!("| `[{k}]")) // [vm] keys
                    && !doc.contains(&format!("| `[[{k}]]` |"))
            })
            .collect();
        assert!(missing.is_empty(), "not in node-operator.md: {missing:?}");
    }

    #[test]
    fn launcher_and_vm_settings() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.launcher, LauncherKind::Process);
        assert_eq!(cfg.vm, VmSettings::default());
        let cfg = parse(
            "launcher = \"vm\"\nvm_image = \"img\"\n[vm]\nqemu = \"q/qemu\"\nvcpu_type = \"EPYC-Genoa\"\nrestrict = true\n",
        )
        .unwrap();
        assert_eq!(cfg.launcher, LauncherKind::Vm);
        assert_eq!(cfg.vm_image, Some(PathBuf::from("/etc/img")));
        assert_eq!(cfg.vm.qemu, PathBuf::from("/etc/q/qemu"));
        assert_eq!(cfg.vm.vcpu_type, "EPYC-Genoa");
        assert!(cfg.vm.restrict);
        assert_eq!(
            parse("launcher = \"kvm\"\n").unwrap_err().to_string(),
            "/etc/node.toml:1: launcher = \"kvm\": expected \"process\" or \"vm\""
        );
    }

    #[test]
    fn tdx_reference_values() {
        let h = |b: u8| hex::encode([b; 48]);
        let all = format!(
            "[vm]\ntdx_mrtd = \"{}\"\ntdx_rtmr0 = \"{}\"\ntdx_rtmr1 = \"{}\"\ntdx_rtmr2 = \"{}\"\n",
            h(1),
            h(2),
            h(3),
            h(4)
        );
        assert_eq!(
            parse(&all).unwrap().vm.tdx,
            Some(TdxReference {
                mr_td: [1; 48],
                rtmrs: [[2; 48], [3; 48], [4; 48]],
            })
        );
        assert_eq!(parse("[vm]\nrestrict = true\n").unwrap().vm.tdx, None);
        let bad_hex = all.replace(&h(3), &"zz".repeat(48));
        assert_eq!(
            parse(&bad_hex).unwrap_err().to_string(),
            "/etc/node.toml:4: tdx_rtmr1 must be 96 hex characters (48 bytes), got 96 characters with non-hex ones"
        );
        let short = all.replace(&h(1), &hex::encode([1u8; 32]));
        assert_eq!(
            parse(&short).unwrap_err().to_string(),
            "/etc/node.toml:2: tdx_mrtd must be 96 hex characters (48 bytes), got 64 characters"
        );
        let missing = format!("[vm]\ntdx_mrtd = \"{}\"\ntdx_rtmr0 = \"{}\"\n", h(1), h(2));
        assert_eq!(
            parse(&missing).unwrap_err().to_string(),
            "/etc/node.toml:2: tdx_rtmr1 is missing: the TDX reference values are tdx_mrtd, tdx_rtmr0, tdx_rtmr1 and tdx_rtmr2, all four"
        );
    }

    #[test]
    fn tee_spellings() {
        let tee = |text: &str| parse(text).map(|c| c.tee).map_err(|e| e.to_string());
        let cases = [
            ("", Ok(TeeKind::Sim)),
            ("tee = \"gramine\"\n", Ok(TeeKind::GramineSgx)),
            ("tee = \"tdx\"\n", Ok(TeeKind::Tdx)),
            (
                "tee = \"tsm\"\n",
                Err(
                    "/etc/node.toml:1: tee = \"tsm\" is now named after the guest: \"sev-snp\" or \"tdx\"",
                ),
            ),
            (
                "tee = \"sgx\"\n",
                Err(
                    "/etc/node.toml:1: tee: unknown TEE \"sgx\" (expected one of \"sim\", \"sim-snp\", \"sev-snp\", \"tdx\", \"gramine-sgx\")",
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(tee(text), want.map_err(str::to_owned), "{text}");
        }
    }
}
