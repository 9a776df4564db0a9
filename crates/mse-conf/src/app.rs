//! `mse.toml`: one model for the three schema generations of the original system.
//!
//! - 1.x: top level `name, python_application, healthcheck_endpoint, tests_cmd, tests_requirements`,
//!   then `[cloud]` (`code, tests, docker, project, hardware, expiration_date?, secrets?`) and
//!   `[cloud.ssl]` (`domain_name, certificate, private_key`). `[cloud]` may be absent (home use).
//! - 0.11–0.12: top level `name, project, hardware, expiration_date?`, `[code]` (`location, docker,
//!   python_application, healthcheck_endpoint, secrets?`) and `[ssl]`.
//! - 0.9–0.10: as 0.11 with `resource` instead of `hardware`.
//!
//! Paths are relative to the directory of the toml file.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use toml::de::DeTable;

use crate::cert::read_certificate;
use crate::doc::{Doc, Located, TableReader};
use crate::error::{ConfError, ConfWarning};
use crate::secrets::load_secrets;

/// Which generation of the `mse.toml` schema a file was written for (detected from its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// mse-cli 1.x
    V1,
    /// mse-cli 0.11–0.12 (`hardware`)
    V0_11,
    /// mse-cli 0.9–0.10 (`resource`)
    V0_9,
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schema::V1 => "1.x",
            Schema::V0_11 => "0.11-0.12",
            Schema::V0_9 => "0.9-0.10",
        })
    }
}

/// `module:variable`, e.g. `app:app` or `pkg.web:create_app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonApp {
    /// Dotted Python module path (each part an identifier), e.g. `pkg.web`.
    pub module: String,
    /// Name of the ASGI/WSGI application object (or factory) in that module.
    pub variable: String,
}

impl PythonApp {
    /// Parses `module:variable`; `None` unless every module part and the variable are
    /// Python identifiers.
    pub fn parse(text: &str) -> Option<Self> {
        let (module, variable) = text.split_once(':')?;
        let ident = |s: &str| {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        };
        (module.split('.').all(ident) && ident(variable)).then(|| Self {
            module: module.to_string(),
            variable: variable.to_string(),
        })
    }

    /// Candidate files of the module, relative to the code directory.
    pub fn module_files(&self) -> [PathBuf; 2] {
        let base: PathBuf = self.module.split('.').collect();
        [base.with_extension("py"), base.join("__init__.py")]
    }
}

impl fmt::Display for PythonApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.variable)
    }
}

/// The owner's own TLS identity for the app (`[cloud.ssl]`, or `[ssl]` in 0.x files), checked
/// on load: both files exist, the key is outside the code directory, the certificate covers the
/// domain and has not expired.
#[derive(Debug, Clone)]
pub struct SslConf {
    /// Domain the app is served under; covered by the certificate's SAN DNS names.
    pub domain_name: String,
    /// PEM certificate (chain, leaf first), resolved against the toml file's directory.
    pub certificate: PathBuf,
    /// PEM private key of the certificate, resolved likewise; never packaged.
    pub private_key: PathBuf,
    /// The leaf certificate's notAfter, read on load (the default expiration date).
    pub certificate_not_after: DateTime<Utc>,
}

/// What deploying to a node needs (`[cloud]` in 1.x, top level and `[code]` in 0.x). Paths are
/// resolved against the toml file's directory and checked to exist on load.
#[derive(Debug, Clone)]
pub struct CloudConf {
    /// Code directory to package (`code`, or `code.location` in 0.x); holds the Python module.
    pub code: PathBuf,
    /// Directory of the app's tests (`tests`); 1.x only, `None` for 0.x files.
    pub tests: Option<PathBuf>,
    /// Environment the app runs in, as the node names it (a Docker image reference in the
    /// original), 1 to 1024 characters.
    pub docker: String,
    /// The project to deploy to; `None` (1.x schema only, when mse.toml names none) means the
    /// project the CLI is logged in to.
    pub project: Option<String>,
    /// Hardware (enclave size) name such as `4g-eu-001` (`resource` in 0.9–0.10), 1 to 16
    /// characters.
    pub hardware: String,
    /// From the file, or else the certificate's notAfter when `[ssl]` is given.
    pub expiration_date: Option<DateTime<Utc>>,
    /// `secrets.json` sent to the attested enclave; a JSON object, outside the code directory.
    pub secrets: Option<PathBuf>,
    /// The owner's TLS certificate and key; `None` means the enclave's self-signed RA-TLS one.
    pub ssl: Option<SslConf>,
}

/// A loaded and validated `mse.toml`, whatever its schema generation.
#[derive(Debug, Clone)]
pub struct AppConf {
    /// The file as the user named it (used in messages).
    pub file: PathBuf,
    /// Schema generation the file was read as.
    pub schema: Schema,
    /// App name, trimmed, 1 to 255 characters.
    pub name: String,
    /// The app object to serve; its module file exists in the code directory when `[cloud]` is
    /// given.
    pub python_application: PythonApp,
    /// Path the app answers on once up; starts with `/`.
    pub healthcheck_endpoint: String,
    /// Command that runs the app's tests (1.x only; `None` for 0.x files).
    pub tests_cmd: Option<String>,
    /// pip requirements the tests need on top of the app's (1.x only; empty for 0.x files).
    pub tests_requirements: Vec<String>,
    /// Deployment part; `None` only for a 1.x file without `[cloud]` (home use).
    pub cloud: Option<CloudConf>,
    /// Non-fatal findings of the load (e.g. unknown fields), for the caller to print.
    pub warnings: Vec<ConfWarning>,
}

/// Parameters of [`AppConf::load_with`] that are not in the file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// "Now", for the expiration checks (injectable for tests).
    pub now: DateTime<Utc>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { now: Utc::now() }
    }
}

impl AppConf {
    /// Reads, parses and validates the file at `path`, with expiration checked against now.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// As [`AppConf::load`], with explicit options (e.g. a fixed "now" in tests).
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Self, ConfError> {
        let text = crate::bounded::read_bounded_string(path, crate::bounded::MAX_CONF_FILE)
            .map_err(|e| {
                let mut err = ConfError::at(path, None, format!("cannot read: {e}"));
                err.source = Some(Box::new(e));
                err
            })?;
        Self::parse(path, &text, opts)
    }

    /// Parses and validates `text` as the content of `path` (whose directory anchors the paths).
    pub fn parse(path: &Path, text: &str, opts: &LoadOptions) -> Result<Self, ConfError> {
        let doc = Doc::new(path, text);
        let table = DeTable::parse(text).map_err(|e| syntax_error(&doc, &e))?;
        let top = TableReader::top(&doc, table.get_ref());
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut conf = if top.has("code") && !top.has("python_application") {
            load_legacy(&top, &base, opts)?
        } else {
            load_v1(&top, &base, opts)?
        };
        conf.file = path.to_path_buf();
        Ok(conf)
    }

    /// The `[cloud]` part, which every command that talks to a node needs.
    pub fn cloud(&self) -> Result<&CloudConf, ConfError> {
        self.cloud.as_ref().ok_or_else(|| {
            ConfError::at(
                &self.file,
                None,
                "missing table [cloud] (expected code, tests, docker, project and hardware)",
            )
        })
    }

    /// Files that must never be packaged, whatever `.mseignore` says.
    pub fn never_packaged(&self) -> Vec<PathBuf> {
        let mut out = vec![self.file.clone()];
        if let Some(cloud) = &self.cloud {
            out.extend(cloud.secrets.clone());
            if let Some(ssl) = &cloud.ssl {
                out.push(ssl.private_key.clone());
            }
        }
        out
    }
}

fn syntax_error(doc: &Doc<'_>, e: &toml::de::Error) -> ConfError {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => ConfError::at(
            doc.file,
            Some(doc.line(span.start)),
            format!(
                "invalid TOML at column {}: {message}",
                doc.column(span.start)
            ),
        ),
        None => ConfError::at(doc.file, None, format!("invalid TOML: {message}")),
    }
}

const PYAPP_EXPECTED: &str = "a string \"module:variable\" such as \"app:app\"";
const HEALTH_EXPECTED: &str = "a string starting with \"/\" such as \"/health\"";

fn load_v1(
    top: &TableReader<'_, '_>,
    base: &Path,
    opts: &LoadOptions,
) -> Result<AppConf, ConfError> {
    let mut warnings = Vec::new();
    let name = name_field(top, "name")?;
    let python_application = pyapp_field(top)?;
    let healthcheck_endpoint = health_field(top)?;
    let tests_cmd = top
        .req_str("tests_cmd", "a string such as \"pytest\"")?
        .value;
    let tests_requirements = top.req_str_list("tests_requirements")?.value;
    let cloud = match top.opt_table("cloud")? {
        None => None,
        Some(t) => {
            let code = path_field(&t, "code", base)?;
            let tests = Some(path_field(&t, "tests", base)?);
            let docker = nonempty(&t, "docker", 1024, "an environment name")?;
            let project = if t.has("project") {
                Some(nonempty(&t, "project", 255, "a project name")?)
            } else {
                None
            };
            let hardware = nonempty(&t, "hardware", 16, "a hardware name such as \"4g-eu-001\"")?;
            let expiration = t.opt_datetime("expiration_date")?;
            let secrets = opt_path_field(&t, "secrets", base)?;
            if let Some(dev) = t.opt_bool("dev_mode")? {
                if dev.value {
                    return Err(t.err(dev.line, "cloud.dev_mode cannot be set in mse.toml (use `mse deploy --untrusted-ssl`)"));
                }
            }
            let ssl = opt_ssl(&t, base, &mut warnings)?;
            t.warn_unknown(&mut warnings);
            let raw = CloudRaw {
                code,
                tests,
                docker,
                project,
                hardware,
                expiration,
                secrets,
                ssl,
            };
            Some(finish_cloud(&t, raw, &python_application, opts)?)
        }
    };
    top.warn_unknown(&mut warnings);
    Ok(AppConf {
        file: PathBuf::new(),
        schema: Schema::V1,
        name,
        python_application: python_application.value,
        healthcheck_endpoint,
        tests_cmd: Some(tests_cmd),
        tests_requirements,
        cloud,
        warnings,
    })
}

fn load_legacy(
    top: &TableReader<'_, '_>,
    base: &Path,
    opts: &LoadOptions,
) -> Result<AppConf, ConfError> {
    let mut warnings = Vec::new();
    let name = name_field(top, "name")?;
    let project = Some(nonempty(top, "project", 255, "a project name")?);
    let (schema, hardware) = if top.has("resource") {
        (
            Schema::V0_9,
            nonempty(top, "resource", 16, "a resource name such as \"free\"")?,
        )
    } else {
        (
            Schema::V0_11,
            nonempty(top, "hardware", 16, "a hardware name such as \"4g-eu-001\"")?,
        )
    };
    let expiration = top.opt_datetime("expiration_date")?;
    let code = top.req_table("code")?;
    let location = path_field(&code, "location", base)?;
    let docker = nonempty(&code, "docker", 1024, "an environment name")?;
    let python_application = pyapp_field(&code)?;
    let healthcheck_endpoint = health_field(&code)?;
    let secrets = opt_path_field(&code, "secrets", base)?;
    code.warn_unknown(&mut warnings);
    let ssl = opt_ssl(top, base, &mut warnings)?;
    let raw = CloudRaw {
        code: location,
        tests: None,
        docker,
        project,
        hardware,
        expiration,
        secrets,
        ssl,
    };
    let cloud = finish_cloud(top, raw, &python_application, opts)?;
    top.warn_unknown(&mut warnings);
    Ok(AppConf {
        file: PathBuf::new(),
        schema,
        name,
        python_application: python_application.value,
        healthcheck_endpoint,
        tests_cmd: None,
        tests_requirements: Vec::new(),
        cloud: Some(cloud),
        warnings,
    })
}

fn name_field(t: &TableReader<'_, '_>, key: &str) -> Result<String, ConfError> {
    nonempty(t, key, 255, "the app name")
}

/// A string of 1..=max characters once trimmed.
fn nonempty(
    t: &TableReader<'_, '_>,
    key: &str,
    max: usize,
    what: &str,
) -> Result<String, ConfError> {
    let v = t.req_str(key, &format!("a string: {what}"))?;
    let trimmed = v.value.trim();
    let n = trimmed.chars().count();
    if n == 0 || n > max {
        return Err(t.err(
            v.line,
            format!(
                "{} must be 1 to {max} characters, got {}",
                t.field(key),
                crate::bounded::quote(&v.value)
            ),
        ));
    }
    Ok(trimmed.to_string())
}

fn pyapp_field(t: &TableReader<'_, '_>) -> Result<Located<PythonApp>, ConfError> {
    let key = "python_application";
    let v = t.req_str(key, PYAPP_EXPECTED)?;
    match PythonApp::parse(v.value.trim()) {
        Some(app) => Ok(Located {
            value: app,
            line: v.line,
            field: v.field,
        }),
        None => Err(t.err(
            v.line,
            format!(
                "{} must be \"module:variable\", got {}",
                t.field(key),
                crate::bounded::quote(&v.value)
            ),
        )),
    }
}

fn health_field(t: &TableReader<'_, '_>) -> Result<String, ConfError> {
    let key = "healthcheck_endpoint";
    let v = t.req_str(key, HEALTH_EXPECTED)?;
    if !v.value.starts_with('/') {
        return Err(t.err(
            v.line,
            format!(
                "{} must start with \"/\", got {}",
                t.field(key),
                crate::bounded::quote(&v.value)
            ),
        ));
    }
    Ok(v.value)
}

fn path_field(
    t: &TableReader<'_, '_>,
    key: &str,
    base: &Path,
) -> Result<Located<PathBuf>, ConfError> {
    let v = t.req_str(key, "a path relative to mse.toml")?;
    Ok(Located {
        value: base.join(&v.value),
        line: v.line,
        field: v.field,
    })
}

fn opt_path_field(
    t: &TableReader<'_, '_>,
    key: &str,
    base: &Path,
) -> Result<Option<Located<PathBuf>>, ConfError> {
    Ok(t.opt_str(key)?.map(|v| Located {
        value: base.join(&v.value),
        line: v.line,
        field: v.field,
    }))
}

struct SslRaw {
    domain: Located<String>,
    certificate: Located<PathBuf>,
    private_key: Located<PathBuf>,
}

fn ssl_table(s: &TableReader<'_, '_>, base: &Path) -> Result<SslRaw, ConfError> {
    Ok(SslRaw {
        domain: s.req_str("domain_name", "a domain name such as \"example.com\"")?,
        certificate: path_field(s, "certificate", base)?,
        private_key: path_field(s, "private_key", base)?,
    })
}

/// The `[cloud]` fields (or their 0.x places) as read, before the checks that need the disk.
struct CloudRaw {
    code: Located<PathBuf>,
    tests: Option<Located<PathBuf>>,
    docker: String,
    project: Option<String>,
    hardware: String,
    expiration: Option<Located<DateTime<Utc>>>,
    secrets: Option<Located<PathBuf>>,
    ssl: Option<SslRaw>,
}

/// The optional `ssl` table below `t` (`[cloud.ssl]`, or `[ssl]` in 0.x files).
fn opt_ssl(
    t: &TableReader<'_, '_>,
    base: &Path,
    warnings: &mut Vec<ConfWarning>,
) -> Result<Option<SslRaw>, ConfError> {
    let Some(s) = t.opt_table("ssl")? else {
        return Ok(None);
    };
    let ssl = ssl_table(&s, base)?;
    s.warn_unknown(warnings);
    Ok(Some(ssl))
}

fn finish_cloud(
    t: &TableReader<'_, '_>,
    raw: CloudRaw,
    app: &Located<PythonApp>,
    opts: &LoadOptions,
) -> Result<CloudConf, ConfError> {
    let CloudRaw {
        code,
        tests,
        docker,
        project,
        hardware,
        expiration,
        secrets,
        ssl,
    } = raw;
    if let Some(exp) = &expiration {
        if exp.value <= opts.now {
            return Err(t.err(
                exp.line,
                format!(
                    "{} must be in the future, got {}",
                    exp.field,
                    rfc3339(exp.value)
                ),
            ));
        }
    }
    let code_field = &code.field;
    if !code.value.is_dir() {
        return Err(t.err(
            code.line,
            format!(
                "{code_field}: code directory not found: {}",
                code.value.display()
            ),
        ));
    }
    check_module(t, app, &code.value)?;
    let code_canon = std::fs::canonicalize(&code.value).ok();
    let inside_code = |p: &Path| {
        code_canon
            .as_ref()
            .is_some_and(|c| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(c)))
    };
    let secrets = match secrets {
        None => None,
        Some(s) => {
            let field = &s.field;
            if !s.value.is_file() {
                return Err(t.err(
                    s.line,
                    format!("{field}: file not found: {}", s.value.display()),
                ));
            }
            if inside_code(&s.value) {
                return Err(t.err(s.line,
                    format!(
                        "{field}: {} is inside the code directory {}: move it out (the code directory is packaged and shared with your users)",
                        s.value.display(),
                        code.value.display()
                    ),
                ));
            }
            if let Err(e) = load_secrets(&s.value) {
                let mut err = t.err(s.line, format!("{field}: {e}"));
                err.source = Some(Box::new(e));
                return Err(err);
            }
            Some(s.value)
        }
    };
    let mut expiration_date = expiration.as_ref().map(|e| e.value);
    let ssl = match ssl {
        None => None,
        Some(raw) => {
            let cert_field = &raw.certificate.field;
            let key_field = &raw.private_key.field;
            let domain_field = &raw.domain.field;
            if !raw.certificate.value.is_file() {
                return Err(t.err(
                    raw.certificate.line,
                    format!(
                        "{cert_field}: file not found: {}",
                        raw.certificate.value.display()
                    ),
                ));
            }
            if !raw.private_key.value.is_file() {
                return Err(t.err(
                    raw.private_key.line,
                    format!(
                        "{key_field}: file not found: {}",
                        raw.private_key.value.display()
                    ),
                ));
            }
            if inside_code(&raw.private_key.value) {
                return Err(t.err(raw.private_key.line,
                    format!(
                        "{key_field}: {} is inside the code directory {}: move it out (the code directory is packaged and shared with your users)",
                        raw.private_key.value.display(),
                        code.value.display()
                    ),
                ));
            }
            let info = read_certificate(&raw.certificate.value).map_err(|e| {
                t.err(
                    raw.certificate.line,
                    format!("{cert_field}: {}: {e}", raw.certificate.value.display()),
                )
            })?;
            if !info.covers(&raw.domain.value) {
                let names = if info.dns_names.is_empty() {
                    "none".to_string()
                } else {
                    info.dns_names.join(", ")
                };
                return Err(t.err(raw.domain.line,
                    format!(
                        "{domain_field} {} is not covered by the certificate {} (its SAN DNS names: {names})",
                        crate::bounded::quote(&raw.domain.value),
                        raw.certificate.value.display()
                    ),
                ));
            }
            if info.not_after <= opts.now {
                return Err(t.err(
                    raw.certificate.line,
                    format!(
                        "{cert_field}: the certificate {} expired on {}",
                        raw.certificate.value.display(),
                        rfc3339(info.not_after)
                    ),
                ));
            }
            match &expiration {
                Some(exp) if exp.value > info.not_after => {
                    return Err(t.err(
                        exp.line,
                        format!(
                            "{} {} is after the certificate's notAfter {}",
                            exp.field,
                            rfc3339(exp.value),
                            rfc3339(info.not_after)
                        ),
                    ));
                }
                Some(_) => {}
                None => expiration_date = Some(info.not_after),
            }
            Some(SslConf {
                domain_name: raw.domain.value,
                certificate: raw.certificate.value,
                private_key: raw.private_key.value,
                certificate_not_after: info.not_after,
            })
        }
    };
    Ok(CloudConf {
        code: code.value,
        tests: tests.map(|t| t.value),
        docker,
        project,
        hardware,
        expiration_date,
        secrets,
        ssl,
    })
}

/// The module named by `python_application` must be in the code directory.
fn check_module(
    t: &TableReader<'_, '_>,
    app: &Located<PythonApp>,
    code: &Path,
) -> Result<(), ConfError> {
    let files = app.value.module_files();
    if files.iter().any(|f| code.join(f).is_file()) {
        return Ok(());
    }
    Err(t.err(
        app.line,
        format!(
            "{} \"{}\": {} not found in the code directory {}",
            app.field,
            app.value,
            files[0].display(),
            code.display()
        ),
    ))
}

fn rfc3339(dt: DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
}
