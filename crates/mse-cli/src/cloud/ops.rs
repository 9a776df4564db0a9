//! `mse login | logout | status | list | logs | stop | test | context`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use serde_json::Value;

use super::api::{App, NodeClient};
use super::config::{Login, check_token, config_dir, normalize_url, write_private};
use super::context::{CERT_FILE, ContextStore, check_id};
use super::{LIVE, app_url, wait_until};

/// How long `mse stop` waits for each app to end.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// How often `mse logs -f` asks for new output.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The node's API URL, e.g. http://127.0.0.1:9443.
    #[arg(long)]
    pub url: String,
    /// The project's bearer token (from `mse-node project create`).
    #[arg(long)]
    pub token: String,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The app id.
    pub id: String,
    /// Print the node's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Also list stopped and failed apps.
    #[arg(long)]
    pub all: bool,
    /// Print the node's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The app id.
    pub id: String,
    /// Keep printing new output until the app ends (Ctrl-C to quit).
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// The ids of the apps to stop.
    #[arg(required = true)]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The app id (its context gives the tests directory and command).
    pub id: String,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["list", "remove", "purge", "export"])))]
pub struct ContextArgs {
    /// List the saved contexts.
    #[arg(long)]
    pub list: bool,
    /// Remove the context of this app.
    #[arg(long, value_name = "ID")]
    pub remove: Option<String>,
    /// Remove every context.
    #[arg(long)]
    pub purge: bool,
    /// Write the context of this app (code key included) to ./<ID>.toml.
    #[arg(long, value_name = "ID")]
    pub export: Option<String>,
}

fn client() -> anyhow::Result<NodeClient> {
    let login = Login::load(&config_dir()?)?;
    Ok(NodeClient::new(&login.url, &login.token))
}

pub fn login(args: &LoginArgs) -> anyhow::Result<ExitCode> {
    let url = normalize_url(&args.url)?;
    check_token(&args.token)?;
    let client = NodeClient::new(&url, &args.token);
    let me = client.me().context("cannot log in")?;
    // A login is an explicit trust decision: it also forgets any simulation root pinned for
    // the previous node (a re-created node has a new one).
    Login {
        url: url.clone(),
        token: args.token.clone(),
        sim_root_sha256: None,
        sim_amd_root_sha256: None,
    }
    .save(&config_dir()?)?;
    let project = me.project.map(|p| p.name).unwrap_or_else(|| "?".into());
    println!("Logged in to {url} (project {project})");
    Ok(ExitCode::SUCCESS)
}

pub fn logout() -> anyhow::Result<ExitCode> {
    if Login::remove(&config_dir()?)? {
        println!("Logged out");
    } else {
        println!("Not logged in");
    }
    Ok(ExitCode::SUCCESS)
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

pub fn status(args: &IdArgs) -> anyhow::Result<ExitCode> {
    check_id(&args.id)?;
    let client = client()?;
    if args.json {
        let v: Value = client.get(&format!("/apps/{}", super::api::encode(&args.id)))?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let app = client.app(&args.id)?;
    println!("App:          {} ({})", app.name, app.id);
    println!("Status:       {}", app.status);
    if let Some(reason) = &app.exit_reason {
        println!("Exit reason:  {reason}");
    }
    println!("Domain:       {}", show(&app.domain_name));
    if let Ok(router) = super::router_address(&app, client.base()) {
        println!("Router:       {router}");
    }
    println!("Hardware:     {}", show(&app.hardware_name));
    println!("Environment:  {}", show(&app.docker));
    println!("Application:  {}", show(&app.python_application));
    println!("Healthcheck:  {}", show(&app.healthcheck_endpoint));
    println!(
        "TEE:          {}",
        app.tee.map_or_else(|| "-".to_owned(), |t| t.to_string())
    );
    if let Some(size) = app.enclave_size {
        println!("Enclave size: {size} MB");
    }
    println!("Certificate:  {}", show(&app.ssl_certificate_origin));
    println!("Created:      {}", show(&app.created_at));
    println!("Ready:        {}", show(&app.ready_at));
    println!("Expires:      {}", show(&app.expires_at));
    if app.stopped_at.is_some() {
        println!("Stopped:      {}", show(&app.stopped_at));
    }
    if let Ok(info) = ContextStore::new(&config_dir()?).load(&app.id) {
        println!(
            "Measurement:  {}",
            if info.measurement.is_empty() {
                "-"
            } else {
                &info.measurement
            }
        );
        println!("URL:          {}", app_url(&info));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let client = client()?;
    let statuses: &[&str] = if args.all { &[] } else { LIVE };
    if args.json {
        let path = if args.all {
            "/apps".to_owned()
        } else {
            format!("/apps?status={}", LIVE.join(","))
        };
        let v: Value = client.get(&path)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut apps = client.apps(None, statuses)?;
    apps.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    if apps.is_empty() {
        println!(
            "No {}app on {}",
            if args.all { "" } else { "live " },
            client.base()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<36}  {:<12}  {:<25}  NAME", "ID", "STATUS", "CREATED");
    for a in &apps {
        println!(
            "{:<36}  {:<12}  {:<25}  {}",
            a.id,
            a.status,
            show(&a.created_at),
            a.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The part of `new` that `old` (the previous snapshot of a 64 kB ring) had not shown yet.
fn unseen<'a>(old: &str, new: &'a str) -> &'a str {
    if old.is_empty() {
        return new;
    }
    if let Some(rest) = new.strip_prefix(old) {
        return rest;
    }
    // The ring dropped its head: new = old[k..] + appended for the smallest such k.
    for (k, _) in old.char_indices().skip(1) {
        if let Some(rest) = new.strip_prefix(&old[k..]) {
            return rest;
        }
    }
    new
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    check_id(&args.id)?;
    let client = client()?;
    let mut shown = client.logs(&args.id)?;
    print!("{shown}");
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let app = client.app(&args.id)?;
        let now = client.logs(&args.id)?;
        print!("{}", unseen(&shown, &now));
        use std::io::Write;
        std::io::stdout().flush().ok();
        shown = now;
        if !LIVE.contains(&app.status.as_str()) {
            println!("(app {} is {})", app.id, app.status);
            return Ok(ExitCode::SUCCESS);
        }
    }
}

pub fn stop(args: &StopArgs) -> anyhow::Result<ExitCode> {
    for id in &args.ids {
        check_id(id)?;
    }
    let client = client()?;
    let mut failures = Vec::new();
    for id in &args.ids {
        let result = client.stop(id).and_then(|_| {
            wait_until(&client, id, Instant::now() + STOP_WAIT, |s| {
                !LIVE.contains(&s)
            })
        });
        match result {
            Ok(App { status, .. }) => println!("App {id} is {status}"),
            Err(e) => failures.push(format!("cannot stop {id}: {e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// A `sitecustomize.py` that sends connections for `host` to `addr` (the domain of a local node
/// does not resolve); the URL keeps the domain, so TLS still checks the certificate against it.
fn resolver_shim(host: &str, addr: &str) -> String {
    let lit = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    format!(
        "# Written by `mse test`: {host} does not resolve here; connect to the node's router.\n\
         import socket\n\
         _HOST, _ADDR = {}, {}\n\
         _getaddrinfo = socket.getaddrinfo\n\
         def _mse_getaddrinfo(host, *args, **kwargs):\n\
         \x20   name = host.decode() if isinstance(host, bytes) else host\n\
         \x20   return _getaddrinfo(_ADDR if name == _HOST else host, *args, **kwargs)\n\
         socket.getaddrinfo = _mse_getaddrinfo\n",
        lit(host),
        lit(addr)
    )
}

pub fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let dir = config_dir()?;
    let store = ContextStore::new(&dir);
    let info = store.load(&args.id)?;
    let cert = store.dir(&args.id)?.join(CERT_FILE);
    if !cert.is_file() {
        bail!(
            "app {} was never verified (no {} in its context): nothing to trust",
            args.id,
            CERT_FILE
        );
    }
    let (Some(tests_dir), Some(cmd)) = (&info.tests_dir, &info.tests_cmd) else {
        bail!(
            "the mse.toml of app {} gives no tests directory or tests_cmd",
            args.id
        );
    };
    let app = client()?.app(&args.id)?;
    if app.status != "running" {
        bail!("app {} is {}, not running", args.id, app.status);
    }
    let url = app_url(&info);
    // As `mse localtest`: the tests run in a venv with the app's tests_requirements installed.
    let venv = crate::localtest::tests_venv(&info.tests_requirements)?;
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .current_dir(tests_dir)
        .env("PATH", crate::localtest::path_with_venv(&venv)?)
        .env("VIRTUAL_ENV", &venv)
        .env("TEST_REMOTE_URL", &url)
        .env("REQUESTS_CA_BUNDLE", &cert)
        .env("SSL_CERT_FILE", &cert);
    let shim_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let hint = super::resolve_hint(&info);
    if !hint.is_empty() {
        let router: std::net::SocketAddr = info
            .router_address
            .parse()
            .context("router address of the context")?;
        let domain = url
            .trim_start_matches("https://")
            .rsplit_once(':')
            .map_or(url.trim_start_matches("https://"), |(d, _)| d)
            .to_owned();
        write_private(
            &shim_dir.path().join("sitecustomize.py"),
            resolver_shim(&domain, &router.ip().to_string()).as_bytes(),
        )?;
        let mut path = std::ffi::OsString::from(shim_dir.path());
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(old);
        }
        command.env("PYTHONPATH", path);
        println!(
            "({domain} does not resolve here: the tests reach it at {})",
            router.ip()
        );
    }
    println!("Running `{cmd}` in {} against {url}", tests_dir.display());
    let status = command
        .status()
        .with_context(|| format!("cannot run `{cmd}` in {}", tests_dir.display()))?;
    if !status.success() {
        bail!(
            "tests of app {} failed: `{cmd}` exited with {}",
            args.id,
            status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"))
        );
    }
    println!("Tests of app {} passed", args.id);
    Ok(ExitCode::SUCCESS)
}

pub fn context(args: &ContextArgs) -> anyhow::Result<ExitCode> {
    let store = ContextStore::new(&config_dir()?);
    if args.list {
        let (list, problems) = store.list()?;
        for p in &problems {
            eprintln!("warning: {p}");
        }
        if list.is_empty() {
            println!("No context in {}", store.root().display());
        }
        for c in &list {
            println!("{} -> {} ({}, {})", c.id, c.name, c.created_at, app_url(c));
        }
    } else if let Some(id) = &args.remove {
        if !store.remove(id)? {
            bail!("no context for app {id} in {}", store.root().display());
        }
        println!("Removed the context of app {id}");
    } else if args.purge {
        let n = store.purge()?;
        println!("Removed {n} context(s)");
    } else if let Some(id) = &args.export {
        let text = store.export(id)?;
        let out = PathBuf::from(format!("{id}.toml"));
        if out.exists() {
            bail!("{} already exists: refusing to overwrite it", out.display());
        }
        write_private(&out, text.as_bytes())?;
        println!(
            "Exported the context of app {id} to {} (it holds the code key: keep it secret)",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_log_output() {
        assert_eq!(unseen("", "abc"), "abc");
        assert_eq!(unseen("abc", "abcdef"), "def");
        assert_eq!(unseen("abc", "abc"), "");
        // Nothing in common: all of it is new.
        assert_eq!(unseen("abc", "xyz"), "xyz");
        assert_eq!(unseen("abc", "cde"), "de");
        // The ring dropped "xx": the old tail is found, only "de" is new.
        assert_eq!(unseen("xxabc", "abcde"), "de");
    }

    #[test]
    fn resolver_shim_quotes_its_values() {
        let shim = resolver_shim("a.localhost", "127.0.0.1");
        assert!(
            shim.contains("_HOST, _ADDR = \"a.localhost\", \"127.0.0.1\"\n"),
            "{shim}"
        );
        assert!(shim.contains("    name = host.decode()"), "{shim}");
    }
}
