//! The `mse` cloud commands (login, deploy, status, list, logs, stop, test, context) against a
//! fake node and a fake sim enclave on loopback (tests/cloud_support).

mod cloud_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cloud_support::*;
use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn mse(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mse"))
            .args(args)
            .current_dir(self.dir.path())
            .env("MSE_CONFIG_DIR", self.config())
            .env("NO_PROXY", "127.0.0.1")
            .env_remove("MSE_PCCS_URL")
            .env_remove("MSE_BACKTRACE")
            .output()
            .expect("run mse")
    }

    fn login(&self, node: &FakeNode) {
        let o = self.mse(&["login", "--url", &node.url, "--token", TOKEN]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    }

    /// A fresh directory logged in to `node` with a scaffolded app: the env and the app's mse.toml.
    fn ready(node: &FakeNode) -> (Env, PathBuf) {
        let env = Env::new();
        let toml = env.scaffold();
        env.login(node);
        (env, toml)
    }

    /// A scaffolded app; returns its mse.toml.
    fn scaffold(&self) -> PathBuf {
        let app = self.dir.path().join("helloworld");
        let o = self.mse(&["scaffold", &app.display().to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        app.join("mse.toml")
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn login_checks_the_token_and_stores_it_privately() {
    let node = FakeNode::start(Tamper::None);
    let env = Env::new();
    let o = env.mse(&["login", "--url", &node.url, "--token", "wrong"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "Error: cannot log in: GET {}/users/me: HTTP 401 Unauthorized: invalid bearer token\n",
            node.url
        )
    );
    assert!(!env.config().join("login.toml").exists());

    let o = env.mse(&[
        "cloud",
        "login",
        "--url",
        &format!("{}/", node.url),
        "--token",
        TOKEN,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        out(&o),
        format!("Logged in to {} (project default)\n", node.url)
    );
    let login = env.config().join("login.toml");
    assert_eq!(mode(&login), 0o600);
    assert_eq!(
        std::fs::read_to_string(&login).unwrap(),
        format!("url = \"{}\"\ntoken = \"{TOKEN}\"\n", node.url)
    );

    let o = env.mse(&["logout"]);
    assert_eq!(out(&o), "Logged out\n");
    assert!(!login.exists());
    let o = env.mse(&["cloud", "logout"]);
    assert_eq!(out(&o), "Not logged in\n");
    let o = env.mse(&["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "Error: not logged in: run `mse login --url URL --token TOKEN` first\n"
    );
}

#[test]
fn status_list_logs_and_stop() {
    let node = FakeNode::start(Tamper::None);
    node.state.add_app(APP_ID, "helloworld", "running");
    node.state.add_app(OTHER_ID, "old", "stopped");
    *node.state.logs.lock().unwrap() = "line 1\nline 2\n".into();
    let env = Env::new();
    env.login(&node);

    let o = env.mse(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains(&format!("{APP_ID}  running ")), "{text}");
    assert!(!text.contains(OTHER_ID), "{text}");
    let text = out(&env.mse(&["cloud", "list", "--all"]));
    assert!(text.contains(&format!("{OTHER_ID}  stopped ")), "{text}");
    let v: Value = serde_json::from_slice(&env.mse(&["list", "--json"]).stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);

    let o = env.mse(&["status", APP_ID]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!("App:          helloworld ({APP_ID})\n")),
        "{text}"
    );
    assert!(text.contains("Status:       running\n"), "{text}");
    assert!(text.contains("Enclave size: 4096 MB\n"), "{text}");

    let o = env.mse(&["status", "5e1f0000-0000-4000-8000-000000000000"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "Error: GET {}/apps/5e1f0000-0000-4000-8000-000000000000: HTTP 404 Not Found: app not found\n",
            node.url
        )
    );
    let o = env.mse(&["status", "../users/me"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        "Error: \"../users/me\" is not an app id (expected a UUID such as 123e4567-e89b-12d3-a456-426614174000)\n"
    );

    let o = env.mse(&["logs", APP_ID]);
    assert_eq!(out(&o), "line 1\nline 2\n");

    let missing = "5e1f0000-0000-4000-8000-000000000000";
    let o = env.mse(&["stop", APP_ID, missing]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), format!("App {APP_ID} is stopped\n"));
    assert_eq!(
        err(&o),
        format!(
            "Error: cannot stop {missing}: POST {}/apps/{missing}/stop: HTTP 404 Not Found: app not found\n",
            node.url
        )
    );
    assert_eq!(node.state.status_of(APP_ID).unwrap(), "stopped");
    let auth = node.state.recorded.lock().unwrap().auth.clone();
    assert!(
        auth.iter().all(|a| a == &format!("Bearer {TOKEN}")),
        "{auth:?}"
    );

    // logs -f ends once the app is no longer live.
    let o = env.mse(&["logs", "-f", APP_ID]);
    assert_eq!(
        out(&o),
        format!("line 1\nline 2\n(app {APP_ID} is stopped)\n")
    );
}

fn deploy(env: &Env, toml: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["deploy", "--path"];
    let p = toml.display().to_string();
    args.push(&p);
    args.extend_from_slice(extra);
    env.mse(&args)
}

#[test]
fn deploy_attests_then_sends_key_and_secrets_and_saves_the_context() {
    let node = FakeNode::start(Tamper::None);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", err(&o));
    assert!(
        text.contains("WARNING: this node declares a SIMULATED TEE"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Uploaded; the node created app {APP_ID} (helloworld)\n"
        )),
        "{text}"
    );
    assert!(text.contains(" (recomputed locally: match)\n"), "{text}");
    // The scaffolded mse.toml names no project: the logged-in one is used, and said.
    assert!(
        text.contains(&format!(
            "Using project \"default\" (the one you are logged in to; {} names none)\n",
            toml.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("Sent the code key, the secrets to the attested enclave\n"),
        "{text}"
    );
    assert!(text.contains("App helloworld is running ("), "{text}");
    let addr = node.enclave_addr().unwrap();
    assert!(
        text.contains(&format!(
            "  url:         https://{APP_ID}.localhost:{}\n",
            addr.port()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            " --resolve {APP_ID}.localhost:{}:127.0.0.1 ",
            addr.port()
        )),
        "{text}"
    );

    let rec = node.state.recorded.lock().unwrap();
    // What the node got: the conf (no secret in it) and the encrypted package.
    assert_eq!(rec.uploads.len(), 1);
    let (conf, package) = &rec.uploads[0];
    assert_eq!(conf["name"], "helloworld");
    assert_eq!(conf["project"], "default");
    assert_eq!(conf["hardware"], "4g-eu-001");
    assert_eq!(conf["docker"], "mse-flask");
    assert_eq!(conf["python_application"], "app:app");
    assert_eq!(conf["healthcheck_endpoint"], "/health");
    assert_eq!(conf["dev_mode"], false);
    assert_eq!(conf["ssl_certificate"], Value::Null);
    let secrets = std::fs::read_to_string(toml.with_file_name("secrets.json")).unwrap();
    let secret_value: Value = serde_json::from_str(&secrets).unwrap();
    let canary = secret_value
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!String::from_utf8_lossy(package).contains(&canary));
    assert!(!conf.to_string().contains(&canary));

    // What the enclave got, over TLS with the app's domain as SNI: uuid, key, secrets.
    assert!(
        rec.snis.iter().all(|s| s == &format!("{APP_ID}.localhost")),
        "{:?}",
        rec.snis
    );
    assert_eq!(rec.config_posts.len(), 1);
    let payload: Value = serde_json::from_slice(&rec.config_posts[0]).unwrap();
    assert_eq!(payload["uuid"], APP_ID);
    assert_eq!(payload["app_secrets"], secret_value);
    assert_eq!(payload.as_object().unwrap().len(), 3, "{payload}");
    let key = mse_crypto::CodeKey::from_hex(payload["code_secret_key"].as_str().unwrap()).unwrap();
    let plain = env.dir.path().join("decrypted");
    mse_crypto::unpack_package(
        std::io::Cursor::new(package.clone()),
        &key,
        &plain,
        &mse_crypto::UnpackLimits::default(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(plain.join("app.py")).unwrap(),
        std::fs::read(toml.with_file_name("mse_src").join("app.py")).unwrap()
    );
    drop(rec);

    // The context: private files, the verified certificate and the launch spec.
    let ctx = env.config().join("context").join(APP_ID);
    for f in [
        "context.toml",
        "code.key",
        "nonces.json",
        "launch-spec.json",
        "ratls.pem",
    ] {
        assert_eq!(mode(&ctx.join(f)), 0o600, "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(ctx.join("code.key")).unwrap(),
        payload["code_secret_key"].as_str().unwrap()
    );
    let manifest =
        mse_launch::LaunchSpec::from_json(&std::fs::read(ctx.join("launch-spec.json")).unwrap())
            .unwrap();
    assert_eq!(manifest.app_id, APP_ID);
    assert_eq!(manifest.san, format!("{APP_ID}.localhost"));
    assert_eq!(manifest.memory_mb, ENCLAVE_SIZE);
    let info: toml::Value =
        toml::from_str(&std::fs::read_to_string(ctx.join("context.toml")).unwrap()).unwrap();
    assert_eq!(
        info["measurement"].as_str().unwrap(),
        hex::encode(manifest.sim_measurement())
    );
    assert_eq!(info["measurement_recomputed"].as_bool(), Some(true));
    let login = std::fs::read_to_string(env.config().join("login.toml")).unwrap();
    assert!(login.contains("sim_root_sha256 = \""), "{login}");

    // mse test: the tests reach the app by its domain, trusting only the verified certificate.
    let venv = std::env::var("MSE_TEST_VENV").unwrap_or_else(|_| "/work/main/.venv".into());
    let tests = toml.with_file_name("tests");
    std::fs::write(
        tests.join("check.py"),
        "import os, requests\n\
         url = os.environ['TEST_REMOTE_URL']\n\
         r = requests.get(url + '/health', timeout=10)\n\
         assert r.headers['Mse-Status'] == 'Waiting', r.headers\n\
         assert os.environ['REQUESTS_CA_BUNDLE'].endswith('ratls.pem')\n\
         print('checked', url)\n",
    )
    .unwrap();
    let ctx_toml = std::fs::read_to_string(ctx.join("context.toml")).unwrap();
    let ctx_toml = ctx_toml.replace(
        "tests_cmd = \"pytest\"",
        // Quoted for sh: the venv's path may hold a space.
        &format!("tests_cmd = \"'{venv}/bin/python' check.py\""),
    );
    std::fs::write(ctx.join("context.toml"), ctx_toml).unwrap();
    let o = env.mse(&["test", APP_ID]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", err(&o));
    assert!(
        text.contains(&format!(
            "checked https://{APP_ID}.localhost:{}\n",
            addr.port()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Tests of app {APP_ID} passed\n")),
        "{text}"
    );

    // mse context
    let o = env.mse(&["context", "--list"]);
    assert!(
        out(&o).starts_with(&format!("{APP_ID} -> helloworld (")),
        "{}",
        out(&o)
    );
    let o = env.mse(&["context", "--export", APP_ID]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let exported = env.dir.path().join(format!("{APP_ID}.toml"));
    assert_eq!(mode(&exported), 0o600);
    let o = env.mse(&["context", "--export", APP_ID]);
    assert_eq!(
        err(&o),
        format!("Error: {APP_ID}.toml already exists: refusing to overwrite it\n")
    );
    let o = env.mse(&["context", "--remove", APP_ID]);
    assert_eq!(out(&o), format!("Removed the context of app {APP_ID}\n"));
    assert!(!ctx.exists());
    let o = env.mse(&["context", "--list", "--purge"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses two actions");
}

/// A refused deployment: exit 1, one line, and the enclave still waits with nothing received.
fn assert_refused(node: &FakeNode, o: &Output, reason: &str) {
    assert_refused_with(node, o, reason, true);
}

/// Same, the error line starting with `reason` when not `exact` (it ends with random hex).
fn assert_refused_with(node: &FakeNode, o: &Output, reason: &str, exact: bool) {
    assert_eq!(o.status.code(), Some(1), "{}{}", out(o), err(o));
    let line = format!("Error: nothing was sent to the enclave: {reason}");
    if exact {
        assert_eq!(err(o), format!("{line}\n"), "{}", out(o));
    } else {
        assert!(err(o).starts_with(&line), "{}{}", out(o), err(o));
        assert_eq!(err(o).lines().count(), 1, "{}", err(o));
    }
    assert!(node.state.recorded.lock().unwrap().config_posts.is_empty());
    assert_eq!(node.enclave_mse_status().as_deref(), Some("Waiting"));
    assert!(!out(o).contains("is running"));
    assert!(
        out(o).contains(&format!(
            "App {APP_ID} got nothing and is left waiting on the node: `mse stop {APP_ID}` removes it.\n"
        )),
        "{}",
        out(o)
    );
}

#[test]
fn a_measurement_mismatch_sends_nothing() {
    let node = FakeNode::start(Tamper::OtherCode);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    let text = out(&o);
    let expected = text
        .lines()
        .find_map(|l| l.strip_prefix("Expected measurement "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_owned();
    let (conf, package) = node.state.recorded.lock().unwrap().uploads[0].clone();
    drop(conf);
    let mut digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        &package,
    ))
    .into();
    digest[0] ^= 1;
    let mut manifest = mse_launch::LaunchSpec::from_json(
        &std::fs::read(
            env.config()
                .join("context")
                .join(APP_ID)
                .join("launch-spec.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(hex::encode(manifest.sim_measurement()), expected);
    manifest.package.sha256 = mse_launch::Digest32(digest);
    let actual = hex::encode(manifest.sim_measurement());
    assert_refused(
        &node,
        &o,
        &format!(
            "the enclave of app {APP_ID} is NOT trusted: measurement mismatch: expected {expected}, evidence has {actual}"
        ),
    );
}

#[test]
fn no_verify_skips_only_the_measurement_recomputation() {
    let node = FakeNode::start(Tamper::OtherCode);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &["--no-verify"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", err(&o));
    assert!(
        text.contains(" (NOT recomputed locally: --no-verify)\n"),
        "{text}"
    );
    assert_eq!(node.state.recorded.lock().unwrap().config_posts.len(), 1);

    // The evidence itself is still checked.
    let node = FakeNode::start(Tamper::ForgedCertificate);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &["--no-verify"]);
    assert_refused_with(
        &node,
        &o,
        &format!("the enclave of app {APP_ID} is NOT trusted: {FORGED_REASON}"),
        false,
    );
}

const FORGED_REASON: &str = "report_data does not bind the expected data: expected ";

#[test]
fn a_tampered_certificate_sends_nothing() {
    let node = FakeNode::start(Tamper::ForgedCertificate);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    assert_refused_with(
        &node,
        &o,
        &format!("the enclave of app {APP_ID} is NOT trusted: {FORGED_REASON}"),
        false,
    );
}

#[test]
fn a_certificate_for_another_domain_sends_nothing() {
    let node = FakeNode::start(Tamper::WrongSan);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    assert_refused(
        &node,
        &o,
        &format!(
            "the enclave of app {APP_ID} is NOT trusted: its certificate names [\"evil.localhost\"], not \"{APP_ID}.localhost\""
        ),
    );
}

#[test]
fn simulated_evidence_needs_the_node_to_declare_the_sim_tee() {
    let node = FakeNode::start(Tamper::NodeClaimsHardware);
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    assert_refused(
        &node,
        &o,
        "the enclave presents simulated evidence, but the node declares the TEE \"gramine-sgx\": refusing (nothing was sent)",
    );
    assert!(!out(&o).contains("WARNING"));
}

#[test]
fn redeploying_a_name_asks_first() {
    let node = FakeNode::start(Tamper::None);
    node.state.add_app(OTHER_ID, "helloworld", "running");
    let (env, toml) = Env::ready(&node);
    let o = deploy(&env, &toml, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "Error: an app named \"helloworld\" is already deployed ({OTHER_ID}); use -y to replace it\n"
        )
    );
    assert!(node.state.recorded.lock().unwrap().uploads.is_empty());
    assert_eq!(node.state.status_of(OTHER_ID).unwrap(), "running");

    let o = deploy(&env, &toml, &["-y"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", err(&o));
    assert!(
        text.contains(&format!("Stopped app {OTHER_ID}\n")),
        "{text}"
    );
    assert_eq!(node.state.status_of(OTHER_ID).unwrap(), "stopped");
    assert_eq!(node.state.status_of(APP_ID).unwrap(), "running");
}

#[test]
fn deploy_errors_before_anything_is_uploaded() {
    let node = FakeNode::start(Tamper::None);
    let (env, toml) = Env::ready(&node);
    // Unknown hardware: the node's message, nothing uploaded.
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("4g-eu-001", "64g-eu-001")).unwrap();
    let o = deploy(&env, &toml, &[]);
    assert_eq!(
        err(&o),
        format!(
            "Error: GET {}/hardwares/64g-eu-001: HTTP 404 Not Found: hardware not found\n",
            node.url
        )
    );
    // Unknown project.
    std::fs::write(
        &toml,
        text.replace("[cloud]\n", "[cloud]\nproject = \"other\"\n"),
    )
    .unwrap();
    let o = deploy(&env, &toml, &[]);
    assert_eq!(
        err(&o),
        format!(
            "Error: project \"other\" of {} is not on {} (this token belongs to project \"default\")\n",
            toml.display(),
            node.url
        )
    );
    // A broken secrets.json: named with its line, its content never shown.
    std::fs::write(&toml, &text).unwrap();
    let secrets = toml.with_file_name("secrets.json");
    std::fs::write(&secrets, "{\"login\": \"hunter2\",\n").unwrap();
    let o = deploy(&env, &toml, &[]);
    assert_eq!(
        err(&o),
        format!(
            "Error: {}:12: cloud.secrets: {}:2:0: invalid JSON: EOF while parsing a value\n",
            toml.display(),
            secrets.display()
        )
    );
    assert!(!err(&o).contains("hunter2"));
    assert!(node.state.recorded.lock().unwrap().uploads.is_empty());
    assert!(!env.config().join("context").exists());
}

#[test]
fn a_changed_simulation_root_is_refused() {
    let node = FakeNode::start(Tamper::None);
    let (env, toml) = Env::ready(&node);
    let login = env.config().join("login.toml");
    let text = std::fs::read_to_string(&login).unwrap();
    std::fs::write(
        &login,
        format!("{text}sim_root_sha256 = \"{}\"\n", "00".repeat(32)),
    )
    .unwrap();
    let o = deploy(&env, &toml, &[]);
    assert_refused_with(
        &node,
        &o,
        &format!(
            "the node's simulation root changed (was {}, now ",
            "00".repeat(32)
        ),
        false,
    );
}

/// On a terminal, `mse deploy` asks before replacing an app (util-linux `script` gives it one).
#[test]
fn redeploying_on_a_terminal_asks_and_honours_the_answer() {
    let node = FakeNode::start(Tamper::None);
    node.state.add_app(OTHER_ID, "helloworld", "running");
    let (env, toml) = Env::ready(&node);
    let on_terminal = |answer: &str| {
        // Quoted for sh: the repository's path may hold a space.
        let cmd = format!(
            "'{}' deploy --path '{}'",
            env!("CARGO_BIN_EXE_mse"),
            toml.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(env.dir.path())
            .env("MSE_CONFIG_DIR", env.config())
            .env("NO_PROXY", "127.0.0.1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("util-linux script");
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
        // Keep the terminal open until mse is done with it.
        let o = child.wait_with_output().unwrap();
        drop(stdin);
        o
    };
    let o = on_terminal("n\n");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "An app named \"helloworld\" is already deployed ({OTHER_ID}). Replace it? [y/N] "
        )),
        "{text}"
    );
    assert!(
        text.contains("Error: deployment cancelled: app \"helloworld\" is left as it was"),
        "{text}"
    );
    assert!(node.state.recorded.lock().unwrap().uploads.is_empty());
    assert_eq!(node.state.status_of(OTHER_ID).unwrap(), "running");

    let o = on_terminal("y\n");
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("Stopped app {OTHER_ID}")), "{text}");
    assert_eq!(node.state.status_of(APP_ID).unwrap(), "running");
}
