//! The original client, PyPI `mse-cli` 1.3 unchanged (its pinned venv, MSE_CLI_VENV), against a
//! live node on loopback: it trades its refresh token (a project token) for an access token at
//! the node's `/oauth/token` (MSE_AUTH0_DOMAIN_NAME names the node) and runs `login --whoami`,
//! `list`, `list <project>`, `status`, `logs`, `stop`, `scaffold` and `context`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn original_mse() -> PathBuf {
    let venv = std::env::var("MSE_CLI_VENV")
        .expect("MSE_CLI_VENV must name the original client's venv (the Makefile sets it)");
    let bin = Path::new(&venv).join("bin").join("mse");
    assert!(bin.is_file(), "{} missing: run `make setup`", bin.display());
    bin
}

struct Client {
    bin: PathBuf,
    api: String,
    conf_dir: PathBuf,
    cwd: PathBuf,
}

impl Client {
    /// `mse --color never cloud ARGS`; returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.bin)
            .args(["--color", "never", "cloud"])
            .args(args)
            .current_dir(&self.cwd)
            .env("MSE_BASE_URL", &self.api)
            .env("MSE_AUTH0_DOMAIN_NAME", &self.api)
            .env("MSE_CONF_PATH", &self.conf_dir)
            .env("TZ", "UTC")
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("MSE_BACKTRACE")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "mse cloud {args:?}\nstdout: {out}\nstderr: {err}");
        out
    }
}

/// An RFC 3339 time from the API as Python prints the datetime pydantic makes of it (TZ=UTC).
fn py_datetime(v: &Value) -> String {
    let t = time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // "YYYY-MM-DDTHH:MM:SSZ" → "YYYY-MM-DD HH:MM:SS".
    let base = mse_attest::encode::rfc3339(t.unix_timestamp())
        .unwrap()
        .replacen('T', " ", 1)
        .replace('Z', "");
    match t.microsecond() {
        0 => format!("{base}+00:00"),
        us => format!("{base}.{us:06}+00:00"),
    }
}

fn table_header() -> String {
    format!(
        "\n{} | {} | {:>12} | {} \n{}\n",
        py_center("App UUID", 36),
        py_center("Creation date", 32),
        py_center("Status", 12),
        py_center("App summary", 36),
        "-".repeat(126)
    )
}

/// Python's `str.center` (CPython puts an odd space on the left only when the width is odd).
fn py_center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_owned();
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    format!("{}{s}{}", " ".repeat(left), " ".repeat(marg - left))
}

fn table_row(app: &Value) -> String {
    format!(
        "{} | {} | {} | {} on {}\n",
        app["id"].as_str().unwrap(),
        py_datetime(&app["created_at"]),
        py_center(app["status"].as_str().unwrap(), 12),
        app["name"].as_str().unwrap(),
        app["domain_name"].as_str().unwrap(),
    )
}

#[test]
fn original_client_runs_against_the_node() {
    let mse = original_mse();
    let node = TestNode::start("");
    let token = node.project("alpha");
    let home = tempfile::tempdir().unwrap();
    let client = Client {
        bin: mse,
        api: format!("http://{}", node.api),
        conf_dir: home.path().join("conf"),
        cwd: home.path().join("work"),
    };
    std::fs::create_dir_all(&client.cwd).unwrap();

    // Not logged in yet.
    let (code, out, _) = client.run(&["login", "--whoami"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "You are not logged in yet!\n"),
        "{out}"
    );

    // `login` itself needs a browser (Auth0's authorisation-code flow); what it leaves behind
    // is login.toml with the refresh token, here a project token of the node.
    std::fs::create_dir_all(&client.conf_dir).unwrap();
    std::fs::write(
        client.conf_dir.join("login.toml"),
        format!("email = \"alpha@mse-node\"\nrefresh_token = \"{token}\"\n"),
    )
    .unwrap();
    assert_eq!(
        client.ok(&["login", "--whoami"]),
        "You are currently logged in as: alpha@mse-node\n"
    );

    // An app, deployed and provisioned (as `mse deploy` does), expiring in 10.5 days.
    let mut c = conf("web");
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(10 * 24 + 12);
    c["expires_at"] = json!(
        expires
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let (code, app) = node.deploy(&token, &package(), &c);
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let domain = format!("{id}.localhost");
    let (code, _, _) = https(node.router, &domain, "POST", "/").unwrap();
    assert_eq!(code, 200);
    let app = node.wait_status(&token, &id, "running", 20);

    let listing = format!("{}{}", table_header(), table_row(&app));
    assert_eq!(
        client.ok(&["list"]),
        format!("Fetching the apps in all projects...\n{listing}")
    );
    assert_eq!(
        client.ok(&["list", "alpha"]),
        format!("Fetching the apps in project alpha...\n{listing}")
    );
    let (code, out, _) = client.run(&["list", "nope"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "Project nope does not exist\n"),
        "{out}"
    );

    let status = client.ok(&["status", &id]);
    let expected = format!(
        "Fetching the app status for {id}...\n\
         \n> Microservice\n\
         \tName        = web\n\
         \tDomain name = {domain}\n\
         \tHardware    = 4g-eu-001\n\
         \tApplication = app:app\n\
         \tMSE docker  = ghcr.io/cosmian/mse-flask:20230124182826\n\
         \tHealthcheck = /health\n\
         \n> Deployment status\n\
         \tUUID               = {id}\n\
         \tCertificate origin = self\n\
         \tMemory size        = 4096M\n\
         \tCores amount       = 1\n\
         \tCreated at         = {}\n\
         \tExpires at         = {} (10 days remaining)\n\
         \tStatus             = running\n\
         \tOnline since       = {}\n\
         \n> Current metrics\n",
        py_datetime(&app["created_at"]),
        py_datetime(&app["expires_at"]),
        py_datetime(&app["ready_at"]),
    );
    assert!(status.starts_with(&expected), "{status}\n---\n{expected}");
    // The metrics are live counters: their lines, not their values.
    for line in status[expected.len()..].lines() {
        assert!(
            line.starts_with("\tFS usage              = ")
                || line.starts_with("\tInput throughput      = ")
                || line.starts_with("\tOutput throughput     = ")
                || line.starts_with("\tAmount of connection  = "),
            "{line:?}"
        );
    }

    let logs = node.stdout_of(&token, &id);
    assert_eq!(
        client.ok(&["logs", &id]),
        format!("Fetching the logs (last 64kB) for {id}...\n\n{logs}\n")
    );

    let out = client.ok(&["stop", &id]);
    assert!(out.ends_with("App gracefully stopped\n"), "{out:?}");
    let (_, app) = node.get(&format!("/apps/{id}"), Some(&token));
    assert_eq!(app["status"], "stopped");
    assert_eq!(
        client.ok(&["list"]),
        format!("Fetching the apps in all projects...\n{}", table_header())
    );
    assert_eq!(
        client.ok(&["list", "--all"]),
        format!(
            "Fetching the apps in all projects...\n{}{}",
            table_header(),
            table_row(&app)
        )
    );
    let status = client.ok(&["status", &id]);
    assert!(
        status.ends_with(&format!(
            "\tStatus             = stopped\n\tStopped since      = {}\n",
            py_datetime(&app["stopped_at"])
        )),
        "{status}"
    );

    // scaffold takes the node's defaults (GET /apps/default).
    let out = client.ok(&["scaffold", "hello"]);
    assert_eq!(
        out,
        format!(
            "An example app has been generated in the directory: hello/\n\
         You can configure your MSE application in: {}\n\
         You can now test it locally from the 'hello/' directory using: \n\n\tmse cloud localtest\n\n\
         Or deploy it from the 'hello/' directory using: \n\n\tmse cloud deploy\n\n\
         Refer to the 'hello/README.md' for more details\n",
            client.cwd.join("hello/mse.toml").display()
        )
    );
    let toml = std::fs::read_to_string(client.cwd.join("hello/mse.toml")).unwrap();
    assert!(
        toml.contains(
            "[cloud]\ncode = \"mse_src\"\ntests = \"tests\"\ndocker = \"mse-flask\"\nproject = \"alpha\"\nhardware = \"2g-eu-001\""
        ),
        "{toml}"
    );

    // context: the client's local store (written by its deploy).
    assert_eq!(client.ok(&["context", "--list"]), "");
    let (code, out, _) = client.run(&["context", "--export", &id]);
    assert_eq!(
        (code, out),
        (1, format!("Can't find context for UUID: {id}\n"))
    );
    assert_eq!(
        client.ok(&["context", "--purge"]),
        "Removing all contexts...\nAll context successfully removed\n"
    );

    // A wrong refresh token is refused by the node's token endpoint, with its reason.
    std::fs::write(
        client.conf_dir.join("login.toml"),
        "email = \"alpha@mse-node\"\nrefresh_token = \"mse_00\"\n",
    )
    .unwrap();
    let (code, out, _) = client.run(&["list"]);
    assert_eq!(
        (code, out.as_str()),
        (
            1,
            "Are you logged in? Can't get access token: unknown refresh token: use a project token of this node\n"
        ),
        "{out}"
    );
}

#[test]
fn token_endpoint_answers_like_an_oauth_server() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let form = "application/x-www-form-urlencoded";
    let (code, body) = http(
        node.api,
        "POST",
        "/oauth/token",
        None,
        Some(form),
        format!("grant_type=refresh_token&client_id=x&refresh_token={token}").as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(access.split('.').count(), 3);
    let (code, me) = node.get("/users/me", Some(&access));
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["given_name"], "alpha");
    // A flipped signature bit is refused.
    let mut forged = access.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (code, body) = node.get("/users/me", Some(std::str::from_utf8(&forged).unwrap()));
    assert_eq!(
        (code, body),
        (401, json!({"error": "invalid bearer token"}))
    );
    for (body, status, error) in [
        (
            "grant_type=password&refresh_token=x",
            400,
            "unsupported_grant_type",
        ),
        ("grant_type=refresh_token", 400, "invalid_request"),
        (
            "grant_type=refresh_token&refresh_token=mse_00",
            401,
            "invalid_grant",
        ),
    ] {
        let (code, answer) = http(
            node.api,
            "POST",
            "/oauth/token",
            None,
            Some(form),
            body.as_bytes(),
        );
        assert_eq!((code, &answer["error"]), (status, &json!(error)), "{body}");
        assert!(answer["error_description"].is_string());
    }
    let (code, answer) = http(node.api, "POST", "/oauth/token", None, None, b"{}");
    assert_eq!(code, 415, "{answer}");
}
