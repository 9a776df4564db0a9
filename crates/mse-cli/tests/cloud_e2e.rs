//! `mse` against a real `mse-node` running real `mse-enclave`s (sim TEE) on loopback: login,
//! deploy of the scaffolded app, the app through the router with only the verified certificate
//! trusted (`mse test` runs its pytest suite), status, list, logs, redeploy, stop.
//!
//! Needs the workspace binaries next to `mse` (`cargo build --workspace --bins`, as `make test`
//! does) and the pinned test virtualenv in `MSE_TEST_VENV` (Flask, pytest, requests).

mod cloud_support;

use mse_testkit::{run_ok, spawn_node};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_mse")).with_file_name(name);
    assert!(
        p.exists(),
        "{} missing: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

fn venv() -> PathBuf {
    let v = std::env::var_os("MSE_TEST_VENV")
        .map(PathBuf::from)
        .expect("MSE_TEST_VENV must name the pinned test virtualenv (the Makefile sets it)");
    assert!(
        v.join("bin/python").exists(),
        "{}: no bin/python",
        v.display()
    );
    v
}

struct Node {
    child: Child,
    api: String,
    router: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(dir: &Path, venv: &Path, enclave_bin: &Path) -> (Node, String) {
    node_with_environment(
        dir,
        enclave_bin,
        &format!("venv = {:?}\n", venv.display().to_string()),
    )
}

/// A node on loopback whose one environment `mse-flask` has these settings (TOML lines), and
/// the token of its project `default`.
fn node_with_environment(dir: &Path, enclave_bin: &Path, environment: &str) -> (Node, String) {
    serve_config(
        dir,
        &format!(
            "enclave_bin = {:?}\n\n[[environment]]\nname = \"mse-flask\"\n{environment}",
            enclave_bin.display().to_string(),
        ),
    )
}

/// A node on loopback (data in `dir/data`) with these node.toml lines after its addresses, and
/// the token of its project `default`.
fn serve_config(dir: &Path, lines: &str) -> (Node, String) {
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\napi_bind = \"127.0.0.1:0\"\nrouter_bind = \"127.0.0.1:0\"\n{lines}"
        ),
    )
    .unwrap();
    let token = create_project(&config, "default");
    (serve(&config), token)
}

/// `mse-node project create NAME`: the project's token.
fn create_project(config: &Path, name: &str) -> String {
    run_ok(
        Command::new(bin("mse-node"))
            .args(["project", "create", name, "--config"])
            .arg(config),
    )
    .trim()
    .to_owned()
}

/// `mse-node serve`, its addresses read from its first line of output.
fn serve(config: &Path) -> Node {
    let (child, api, router) = spawn_node(
        Command::new(bin("mse-node"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null()),
    );
    Node { child, api, router }
}

struct Cli {
    dir: PathBuf,
    path: std::ffi::OsString,
    venv: PathBuf,
}

impl Cli {
    /// A CLI in `dir` whose PATH starts with the test venv's bin (pytest for `mse test`).
    fn new(dir: &Path, venv: &Path) -> Cli {
        let mut path = std::ffi::OsString::from(venv.join("bin"));
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        Cli {
            dir: dir.to_path_buf(),
            path,
            venv: venv.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mse"))
            .args(args)
            .current_dir(&self.dir)
            .env("MSE_CONFIG_DIR", self.dir.join("config"))
            .env("PATH", &self.path)
            // `mse test`'s tests venv: the pinned one (pytest, requests), not a pip install.
            .env("MSE_LOCALTEST_TESTS_VENV", &self.venv)
            .env("NO_PROXY", "127.0.0.1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A deploy that uploads and then fails (exit 1): its stdout, stderr and the app's id.
    fn refused_deploy(&self, args: &[&str]) -> (String, String, String) {
        let o = self.run(args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{text}{err}");
        let id = field(&text, "Uploaded; the node created app ")
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        (text, err, id)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            o.status.code(),
            Some(0),
            "mse {args:?}:\n{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    }
}

/// `mse verify` of app `id` by its domain through the node's router (sim TEE, the node's mock
/// PCCS), with `extra` arguments; its output.
fn verify_through_router(cli: &Cli, node: &Node, id: &str, extra: &[&str]) -> String {
    let port = node.router.rsplit_once(':').unwrap().1;
    let target = format!("{id}.localhost:{port}");
    let pccs = format!("{}/pccs", node.api);
    let mut args = vec![
        "verify",
        &target,
        "--connect",
        &node.router,
        "--allow-simulation",
        "--pccs-url",
        &pccs,
    ];
    args.extend_from_slice(extra);
    cli.ok(&args)
}

fn field<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
        .trim()
}

/// A node running the real mse-enclave with the test venv as `mse-flask`, its project's token,
/// and a CLI in `dir` where the app `helloworld` is scaffolded.
fn scaffolded_on_a_node(dir: &Path) -> (Node, String, Cli) {
    let venv = venv();
    let (node, token) = start_node(dir, &venv, &bin("mse-enclave"));
    let cli = Cli::new(dir, &venv);
    cli.ok(&["scaffold", "helloworld"]);
    (node, token, cli)
}

#[test]
fn deploy_the_scaffolded_app_on_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, token, cli) = scaffolded_on_a_node(dir.path());
    let code_canary = "canary-code-5d1e9b";
    let secret_canary = "canary-secret-83c4aa";
    let app_py = dir.path().join("helloworld/mse_src/app.py");
    let mut code = std::fs::read_to_string(&app_py).unwrap();
    code.push_str(&format!("# {code_canary}\n"));
    std::fs::write(&app_py, code).unwrap();
    let secrets = dir.path().join("helloworld/secrets.json");
    let text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::write(
        &secrets,
        text.replacen('{', &format!("{{\"canary\": \"{secret_canary}\","), 1),
    )
    .unwrap();
    assert_eq!(
        cli.ok(&["cloud", "login", "--url", &node.api, "--token", &token]),
        format!("Logged in to {} (project default)\n", node.api)
    );
    let text = cli.ok(&["deploy", "--path", "helloworld/mse.toml"]);
    assert!(
        text.contains("WARNING: this node declares a SIMULATED TEE"),
        "{text}"
    );
    assert!(text.contains(" (recomputed locally: match)\n"), "{text}");
    assert!(text.contains("App helloworld is running ("), "{text}");
    let id = field(&text, "  id:").to_owned();
    let port = node.router.rsplit_once(':').unwrap().1;
    assert_eq!(
        field(&text, "  url:"),
        format!("https://{id}.localhost:{port}")
    );
    let measurement = field(&text, "Enclave verified: SIMULATED TEE, measurement ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    // The seeds' routes (/, /health, /whoami with the secret, /date) through the router,
    // trusting only the verified certificate.
    let text = cli.ok(&["test", &id]);
    assert!(text.contains("4 passed"), "{text}");
    assert!(
        text.contains(&format!("Tests of app {id} passed\n")),
        "{text}"
    );

    // An end user's check of the same app, by its domain through the router.
    let text = verify_through_router(&cli, &node, &id, &["--fingerprint", &measurement]);
    assert!(text.ends_with("Verdict:      TRUSTED\n"), "{text}");

    let text = cli.ok(&["status", &id]);
    assert!(text.contains("Status:       running\n"), "{text}");
    assert!(
        text.contains(&format!("Measurement:  {measurement}\n")),
        "{text}"
    );
    let text = cli.ok(&["list"]);
    assert!(text.contains(&format!("{id}  running ")), "{text}");
    let text = cli.ok(&["logs", &id]);
    assert!(text.contains("\"GET /whoami HTTP/1.1\" 200"), "{text}");

    // The node's data dir (store, packages, sealed state, logs) holds neither the code in clear,
    // nor the secrets, nor the code key.
    let key = std::fs::read_to_string(dir.path().join("config/context").join(&id).join("code.key"))
        .unwrap();
    let mut files = 0;
    let mut stack = vec![dir.path().join("data")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                files += 1;
                let bytes = std::fs::read(entry.path()).unwrap();
                for canary in [code_canary, secret_canary, key.trim()] {
                    assert!(
                        !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                        "{} holds {canary}",
                        entry.path().display()
                    );
                }
            }
        }
    }
    assert!(files >= 3, "only {files} files in the node's data dir");

    // Redeploying the same name: refused without -y (no terminal), replaced with -y.
    let o = cli.run(&["deploy", "--path", "helloworld/mse.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "Error: an app named \"helloworld\" is already deployed ({id}); use -y to replace it\n"
        )
    );
    // --json: one object on stdout (the progress went to stderr).
    let text = cli.ok(&["deploy", "--path", "helloworld/mse.toml", "-y", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let new_id = v["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(v["status"], "running");
    assert_eq!(v["simulated"], true);
    assert_eq!(v["measurement_recomputed"], true);
    assert_eq!(v["url"], format!("https://{new_id}.localhost:{port}"));
    assert!(
        Path::new(v["certificate"].as_str().unwrap()).is_file(),
        "{v}"
    );

    assert_eq!(
        cli.ok(&["stop", &new_id]),
        format!("App {new_id} is stopped\n")
    );
    let text = cli.ok(&["list", "--all"]);
    assert!(text.contains(&format!("{id}  stopped ")), "{text}");
    assert!(text.contains(&format!("{new_id}  stopped ")), "{text}");
    assert_eq!(cli.ok(&["list"]), format!("No live app on {}\n", node.api));
    let contexts = cli.ok(&["context", "--list"]);
    assert_eq!(contexts.lines().count(), 2, "{contexts}");
}

/// The node declares the digest of one runtime but runs another (here: a wrapper script in
/// front of the real mse-enclave, which measures itself): the measurement the CLI recomputes
/// does not match the evidence, so it sends nothing and the enclave keeps waiting.
#[test]
fn a_measurement_mismatch_on_a_real_node_sends_nothing() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    // A node that lies: the enclave runs with another spec than the one the API declares
    // (another vCPU count, and the real runtime's digest instead of this wrapper's). The enclave is
    // consistent with what it was given, so only the measurement tells.
    let real = bin("mse-enclave");
    let real_digest = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        std::fs::read(&real).unwrap(),
    )));
    let wrapper = dir.path().join("enclave-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsed -E 's/\"enclave_sha256\":\"[0-9a-f]{{64}}\"/\"enclave_sha256\":\"{real_digest}\"/; s/\"vcpus\":([0-9]+)/\"vcpus\":1\\1/' | exec {:?} \"$@\"\n",
            real.display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (node, token) = start_node(dir.path(), &venv, &wrapper);
    let cli = Cli::new(dir.path(), &venv);
    cli.ok(&["scaffold", "helloworld"]);
    cli.ok(&["login", "--url", &node.api, "--token", &token]);
    let (text, err, id) = cli.refused_deploy(&["deploy", "--path", "helloworld/mse.toml"]);
    let expected = field(&text, "Expected measurement ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        err.starts_with(&format!(
            "Error: nothing was sent to the enclave: the enclave of app {id} is NOT trusted: measurement mismatch: expected {expected}, evidence has "
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!text.contains("Sent the code key"), "{text}");
    assert_left_waiting(&cli, &node, &id);
}

/// The enclave side of "nothing was sent": app `id` is still initializing and its enclave still
/// answers `Mse-Status: Waiting` (it got no configuration). Then stops it.
fn assert_left_waiting(cli: &Cli, node: &Node, id: &str) {
    let status = cli.ok(&["status", id]);
    assert!(status.contains("Status:       initializing\n"), "{status}");
    let router: std::net::SocketAddr = node.router.parse().unwrap();
    assert_eq!(
        cloud_support::mse_status(router, &format!("{id}.localhost")).as_deref(),
        Some("Waiting")
    );
    cli.ok(&["stop", id]);
}

/// Owner mode: the node gets the certificate chain, the enclave alone gets its private key
/// (over the attested channel, with sealed secrets), and then serves the owner's certificate
/// for the owner's domain through the router.
#[test]
fn owner_certificate_and_sealed_secrets_on_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, token, cli) = scaffolded_on_a_node(dir.path());
    let app = dir.path().join("helloworld");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(app.join("fullchain.pem"), cert.pem()).unwrap();
    std::fs::write(app.join("privkey.pem"), key.serialize_pem()).unwrap();
    let mut toml = std::fs::read_to_string(app.join("mse.toml")).unwrap();
    toml.push_str(
        "\n[cloud.ssl]\ndomain_name = \"app.example.com\"\ncertificate = \"fullchain.pem\"\nprivate_key = \"privkey.pem\"\n",
    );
    std::fs::write(app.join("mse.toml"), toml).unwrap();
    std::fs::write(app.join("to_seal.json"), "{\"api_key\": \"sealed-canary\"}").unwrap();

    cli.ok(&["login", "--url", &node.api, "--token", &token]);
    let text = cli.ok(&[
        "deploy",
        "--path",
        "helloworld/mse.toml",
        "--sealed-secrets",
        "helloworld/to_seal.json",
    ]);
    assert!(
        text.contains(
            "Sent the code key, the secrets, the sealed secrets, the TLS private key to the attested enclave\n"
        ),
        "{text}"
    );
    let port = node.router.rsplit_once(':').unwrap().1;
    assert_eq!(
        field(&text, "  url:"),
        format!("https://app.example.com:{port}")
    );
    let id = field(&text, "  id:").to_owned();

    let router: std::net::SocketAddr = node.router.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served = rt
        .block_on(mse_attest::ratls::fetch_server_certificate(
            &router.ip().to_string(),
            router.port(),
            "app.example.com",
            std::time::Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(served, cert.der().to_vec());
    cli.ok(&["stop", &id]);
}

/// An enclave that dies at start: the deploy stops with the node's reason and sends nothing.
#[test]
fn an_enclave_that_dies_at_start_fails_the_deploy_with_the_reason() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let (node, token) = start_node(dir.path(), &venv, Path::new("/bin/false"));
    let cli = Cli::new(dir.path(), &venv);
    cli.ok(&["scaffold", "helloworld"]);
    cli.ok(&["login", "--url", &node.api, "--token", &token]);
    let (text, err, id) = cli.refused_deploy(&["deploy", "--path", "helloworld/mse.toml"]);
    assert_eq!(
        err,
        format!(
            "Error: app {id} is on_error instead of waiting for its configuration (enclave exited with code 1); `mse logs {id}` may tell why\n"
        )
    );
    assert!(!text.contains("Sent the code key"), "{text}");
}

/// Another project's token sees none of the app; after the node is killed and restarted,
/// `mse list --all` still shows the app (marked on_error by the restart).
#[test]
fn other_projects_and_a_node_restart() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let (node, token) = start_node(dir.path(), &venv, &bin("mse-enclave"));
    let config = dir.path().join("node.toml");
    let cli = Cli::new(dir.path(), &venv);
    cli.ok(&["scaffold", "helloworld"]);
    cli.ok(&["login", "--url", &node.api, "--token", &token]);
    let text = cli.ok(&["deploy", "--path", "helloworld/mse.toml"]);
    let id = field(&text, "  id:").to_owned();

    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = Cli::new(&other_dir, &venv);
    let other_token = create_project(&config, "other");
    other.ok(&["login", "--url", &node.api, "--token", &other_token]);
    assert_eq!(
        other.ok(&["list", "--all"]),
        format!("No app on {}\n", node.api)
    );
    for cmd in [&["status", id.as_str()][..], &["logs", &id], &["stop", &id]] {
        let o = other.run(cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("HTTP 404 Not Found: app not found"),
            "{cmd:?}: {err}"
        );
    }
    let status = cli.ok(&["status", &id]);
    assert!(status.contains("Status:       running\n"), "{status}");

    drop(node);
    let node = serve(&config);
    cli.ok(&["login", "--url", &node.api, "--token", &token]);
    let text = cli.ok(&["list", "--all"]);
    assert!(text.contains(&format!("{id}  on_error ")), "{text}");
    let status = cli.ok(&["status", &id]);
    assert!(status.contains("Exit reason:  node restarted"), "{status}");
}

/// The QEMU process of app `id` (its `-name mse-<id>`), from /proc.
fn qemu_pid_of(id: &str) -> Option<i32> {
    let name = format!("mse-{id}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_qemu = args
            .first()
            .is_some_and(|a| a.ends_with(b"qemu-system-x86_64"));
        (is_qemu && args.contains(&name.as_bytes())).then_some(pid)
    })
}

/// A node with `launcher = "vm"` (the guest image of `MSE_VM_IMAGE`, one 1-vCPU tier, the VM
/// venv of `MSE_VM_VENV`) and `extra` node.toml lines, and a CLI logged in to it with the
/// scaffolded app in `dir/helloworld`.
fn vm_node(dir: &Path, extra: &str) -> (Node, Cli) {
    let venv = venv();
    let image = std::env::var_os("MSE_VM_IMAGE").map(PathBuf::from).expect(
        "MSE_VM_IMAGE must name the guest image directory (make image; the Makefile sets it)",
    );
    let vm_venv = std::env::var_os("MSE_VM_VENV")
        .map(PathBuf::from)
        .expect("MSE_VM_VENV must name the VM tests' Flask venv (the Makefile sets it)");
    let (node, token) = serve_config(
        dir,
        &format!(
            "launcher = \"vm\"\nvm_image = {:?}\nspawn_timeout_secs = 600\n{extra}\n[[hardware]]\nname = \"4g-eu-001\"\nmemory = 1024\ncores = 1\nenclave_size = 1024\n\n[[environment]]\nname = \"mse-flask\"\nvenv = {:?}\n",
            image.display().to_string(),
            vm_venv.display().to_string()
        ),
    );
    let cli = Cli::new(dir, &venv);
    cli.ok(&["scaffold", "helloworld"]);
    cli.ok(&["cloud", "login", "--url", &node.api, "--token", &token]);
    (node, cli)
}

/// `launcher = "vm"`: the same deploy of the scaffolded app, the enclave a QEMU VM booted from
/// the guest image (TCG here) with the simulated TEE inside; `mse test` passes through the
/// router; `kill -9` of the QEMU makes the app `on_error` within 5 s with its log kept. One VM
/// boot (TCG is slow): the seeds' app, the limitations, the disks and $HOME are proven by
/// crates/mse-launch/tests/vm.rs through the launcher.
#[test]
fn deploy_the_scaffolded_app_on_a_vm_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, cli) = vm_node(dir.path(), "");
    let text = cli.ok(&["deploy", "--path", "helloworld/mse.toml"]);
    assert!(text.contains("App helloworld is running ("), "{text}");
    assert!(text.contains(" (VM image "), "{text}");
    let id = field(&text, "  id:").to_owned();

    let text = cli.ok(&["test", &id]);
    assert!(text.contains("4 passed"), "{text}");
    let text = cli.ok(&["logs", &id]);
    assert!(text.contains("VM: QEMU 10."), "{text}");
    assert!(text.contains("verified against mse.spec="), "{text}");

    let pid = qemu_pid_of(&id).expect("the app's QEMU process");
    let killed = std::time::Instant::now();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    loop {
        let text = cli.ok(&["status", &id]);
        if text.contains("Status:       on_error\n") {
            break;
        }
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(5),
            "not on_error 5 s after kill -9:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = cli.ok(&["logs", &id]);
    assert!(text.contains("VM ended: QEMU killed by signal 9"), "{text}");
    assert!(text.contains("configuration server on"), "log kept: {text}");
}

/// `tee = "sim-snp"` on the VM launcher (TCG): `mse deploy` downloads the node's published image
/// and firmware, recomputes the SEV-SNP launch digest itself, and provisions the app only when
/// the report's MEASUREMENT, HOST_DATA, chain (the node's mock AMD KDS) and policy all match;
/// then a request works through the router. Two VM boots: first the node's seed file is
/// replaced after the node started, so the VM's report comes from another mock AMD root than
/// the one the node's KDS serves, and deploy sends nothing; then the real seed, and deploy
/// succeeds. The other refusals (another kernel/initrd, HOST_DATA of another spec, debug
/// policy, tampered byte) are exercised without a boot in src/vm_expect.rs's tests.
#[test]
fn deploy_on_a_sim_snp_vm_node_checks_the_launch_digest() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = dir.path().join("OVMF.amdsev.fd");
    std::fs::write(&firmware, mse_attest_sim::snp::amdsev_firmware()).unwrap();
    let (node, cli) = vm_node(
        dir.path(),
        &format!(
            "tee = \"sim-snp\"\nvm_firmware = {:?}\n",
            firmware.display().to_string()
        ),
    );

    // The node's KDS was built from this seed at start; the VM gets whatever the file holds.
    let seed_file = dir.path().join("data/sim-seed");
    let seed = std::fs::read(&seed_file).unwrap();
    std::fs::write(&seed_file, [0x42u8; 32]).unwrap();
    let out = cli.run(&["deploy", "--path", "helloworld/mse.toml"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Expected MEASUREMENT "), "{stdout}");
    assert!(!stdout.contains("Sent the code key"), "{stdout}");
    // The other seed's chip is unknown to the node's KDS, as AMD's KDS answers a chip that is
    // not AMD's: the report cannot chain to the root the node serves.
    let other = mse_attest_sim::SimAmdPki::from_seed(&[0x42; 32]).unwrap();
    let kds = format!("{}/kds", node.api);
    assert_eq!(
        stderr.trim_end().lines().last().unwrap_or_default(),
        format!(
            "Error: nothing was sent to the enclave: collateral from the node's mock KDS {kds}: KDS request {kds}/vcek/v1/Milan/{}?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={} returned HTTP 404",
            hex::encode(other.chip_id),
            other.tcb.bootloader,
            other.tcb.tee,
            other.tcb.snp,
            other.tcb.microcode
        ),
        "{stdout}{stderr}"
    );
    std::fs::write(&seed_file, &seed).unwrap();

    let text = cli.ok(&["deploy", "-y", "--path", "helloworld/mse.toml"]);
    assert!(text.contains("App helloworld is running ("), "{text}");
    assert!(
        text.contains("WARNING: this node declares a SIMULATED TEE (sim-snp)"),
        "{text}"
    );
    let expected = field(&text, "Expected MEASUREMENT ");
    assert_eq!(expected.len(), 96, "{text}");
    assert!(
        text.contains(&format!(
            "Enclave verified: SIMULATED TEE, measurement {expected} (recomputed locally: match)"
        )),
        "{text}"
    );
    let id = field(&text, "  id:").to_owned();
    let text = cli.ok(&["test", &id]);
    assert!(text.contains("4 passed"), "{text}");

    // `mse verify` of the VM enclave: the same recomputation, every field printed, JSON.
    let ctx = dir.path().join("config/context").join(&id);
    let spec = ctx.join("launch-spec.json");
    // The node declares the guest image as the app's runtime, as its launch spec does (not
    // the host's mse-enclave, which a VM app does not run).
    let mse_launch::Runtime::Vm { image_sha256 } =
        mse_launch::LaunchSpec::from_json(&std::fs::read(&spec).unwrap())
            .unwrap()
            .runtime
    else {
        panic!("a VM node's spec names a VM runtime")
    };
    let status: serde_json::Value =
        serde_json::from_str(&cli.ok(&["status", &id, "--json"])).unwrap();
    assert_eq!(status["runtime_digest"], image_sha256.to_hex(), "{status}");
    let info = std::fs::read_to_string(ctx.join("context.toml")).unwrap();
    let domain = info
        .lines()
        .find_map(|l| l.strip_prefix("config_domain_name = "))
        .map(|d| d.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no config_domain_name in {info}"));
    let verify = [
        "verify",
        &domain,
        "--connect",
        &node.router,
        "--allow-simulation",
        "--launch-spec",
        spec.to_str().unwrap(),
        "--node",
        &node.api,
    ];
    let json = cli.ok(&[&verify[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["trusted"], true, "{json}");
    assert_eq!(v["vm"]["tee"], "sim-snp", "{json}");
    assert_eq!(v["vm"]["fields"][0]["field"], "MEASUREMENT", "{json}");
    assert_eq!(v["vm"]["fields"][0]["expected"], expected, "{json}");
    assert_eq!(v["vm"]["fields"][0]["actual"], expected, "{json}");
    assert_eq!(v["vm"]["fields"][1]["field"], "HOST_DATA", "{json}");
    assert_eq!(v["vm"]["outcome"], "pass", "{json}");
    let text = cli.ok(&verify);
    for line in [
        "VM TEE:       sim-snp (launch spec ".to_owned(),
        format!("  [ OK ] MEASUREMENT: expected {expected}, actual {expected}"),
        "Measured:     1 vCPU(s) EPYC-v4".to_owned(),
        "Verdict:      TRUSTED".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }

    // The same running VM held against another spec (2 vCPUs instead of 1): its report's
    // MEASUREMENT and HOST_DATA are not that spec's, and verify says so in one line.
    let mut other = mse_launch::LaunchSpec::from_json(&std::fs::read(&spec).unwrap()).unwrap();
    other.vcpus = 2;
    let other_file = dir.path().join("other-spec.json");
    std::fs::write(&other_file, other.canonical_bytes()).unwrap();
    let image = PathBuf::from(std::env::var_os("MSE_VM_IMAGE").unwrap());
    let read = |f: &str| std::fs::read(image.join(f)).unwrap();
    let manifest = mse_launch::image::ImageManifest::from_bytes(&read("image.json")).unwrap();
    let (fw, kernel, initrd) = (
        mse_attest_sim::snp::amdsev_firmware(),
        read("vmlinuz"),
        read("initrd.img"),
    );
    let cmdline = manifest.cmdline.replace("{spec}", &other.hash().to_hex());
    let input =
        mse_attest::vm_identity::snp_boot_input(&fw, &kernel, &initrd, &cmdline, 2, "EPYC-v4")
            .unwrap();
    let other_digest = mse_attest::snp_measure::launch_digest(&input).unwrap();
    let mut args = verify.to_vec();
    args[6] = other_file.to_str().unwrap();
    let out = cli.run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default(),
        format!(
            "Error: https://{domain}:443 is NOT trusted: not the expected VM: MEASUREMENT is {expected}, expected {}; HOST_DATA is {}, expected {}",
            hex::encode(other_digest),
            v["vm"]["fields"][1]["actual"].as_str().unwrap(),
            other.hash().to_hex()
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // `mse verify DOMAIN` alone: the deployer's context names the launch spec and the node.
    let plain = [
        "verify",
        &domain,
        "--connect",
        &node.router,
        "--allow-simulation",
    ];
    let json = cli.ok(&[&plain[..], &["--json"]].concat());
    let c: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(c["trusted"], true, "{json}");
    assert_eq!(c["vm"]["fields"], v["vm"]["fields"], "{json}");
    let from = format!("the launch spec saved at the deploy of app {id}");
    assert_eq!(c["vm"]["launch_spec"], from, "{json}");
    assert_eq!(c["vm"]["node"], node.api, "{json}");
    let spec_hash = mse_launch::LaunchSpec::from_json(&std::fs::read(&spec).unwrap())
        .unwrap()
        .hash()
        .to_hex();
    let sha = |b: &[u8]| mse_launch::Digest32::of(b).to_hex();
    let pki = mse_attest_sim::SimAmdPki::from_seed(&seed.try_into().unwrap()).unwrap();
    let text = cli.ok(&plain);
    let report_data = c["report"]["report_data"].as_str().unwrap();
    for line in [
        "TEE:          SEV-SNP (simulated)".to_owned(),
        format!("Measurement:  {expected}"),
        format!("Report data:  {report_data}"),
        "Debug:        no".to_owned(),
        format!(
            "Platform TCB: bl{}/tee{}/snp{}/ucode{}",
            pki.tcb.bootloader, pki.tcb.tee, pki.tcb.snp, pki.tcb.microcode
        ),
        "Signing key:  VCEK (simulation)".to_owned(),
        "  [ OK ] report_signature".to_owned(),
        "  [ OK ] guest_policy".to_owned(),
        "  [ OK ] report_data_binding".to_owned(),
        format!("VM TEE:       sim-snp (launch spec {spec_hash})"),
        format!(
            "VM identity:  recomputed from {from} and the image {} publishes",
            node.api
        ),
        format!(
            "Image:        image.json {}, kernel {}, initrd {}",
            sha(&read("image.json")),
            sha(&kernel),
            sha(&initrd)
        ),
        format!("Firmware:     {}", sha(&fw)),
        format!(
            "Chip:         {} (report version 3, guest policy 0x30000)",
            hex::encode(pki.chip_id)
        ),
        "Measured:     1 vCPU(s) EPYC-v4".to_owned(),
        format!(
            "Cmdline:      {}",
            manifest.cmdline.replace("{spec}", &spec_hash)
        ),
        format!("  [ OK ] MEASUREMENT: expected {expected}, actual {expected}"),
        format!("  [ OK ] HOST_DATA: expected {spec_hash}, actual {spec_hash}"),
        "Verdict:      TRUSTED".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }

    // Without that context (another machine) nor the flags: what is missing, in one line.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Cli::new(elsewhere.path(), &venv()).run(&plain);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: SEV-SNP evidence is a VM enclave's: its expected identity needs --launch-spec FILE and --node URL (no app deployed from here has the domain {domain})\n"
        )
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// A wheelhouse made from the pinned test venv's Flask and its requirements (no index reached).
fn wheelhouse(venv: &Path, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let script = dir.with_extension("py");
    std::fs::write(&script, include_str!("cloud_support/repack_wheels.py")).unwrap();
    let out = Command::new(venv.join("bin/python"))
        .args([script.as_os_str(), dir.as_os_str(), "flask".as_ref()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "repack_wheels.py failed");
    let mut files: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    files.sort();
    files
}

/// A PEP 503 simple index of the wheels in `dir` on loopback: `/simple/<name>/` lists the
/// files (links relative to the page), `/files/<file>` serves one. Runs until the test ends.
fn simple_index(dir: &Path) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).into_owned();
            let path = req.split_whitespace().nth(1).unwrap_or("").to_owned();
            let norm = |s: &str| s.to_lowercase().replace(['_', '.'], "-");
            let (status, body) = if let Some(name) = path
                .strip_prefix("/simple/")
                .and_then(|p| p.strip_suffix('/'))
            {
                let mut page = String::from("<html><body>\n");
                for e in std::fs::read_dir(&dir).unwrap() {
                    let f = e.unwrap().file_name().to_string_lossy().into_owned();
                    if norm(f.split('-').next().unwrap()) == norm(name) {
                        page.push_str(&format!("<a href=\"../../files/{f}#sha256=x\">{f}</a>\n"));
                    }
                }
                ("200 OK", page.into_bytes())
            } else if let Some(f) = path.strip_prefix("/files/") {
                match std::fs::read(dir.join(f)) {
                    Ok(b) if !f.contains('/') => ("200 OK", b),
                    _ => ("404 Not Found", b"no".to_vec()),
                }
            } else {
                ("404 Not Found", b"no".to_vec())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    format!("http://{addr}/simple")
}

/// Issue 13, point 5. (a) `mse deploy --rebuild-env` of the scaffolded app, against a node
/// whose environment is packed from wheels, fetches the locked wheels from a (loopback) index,
/// rebuilds the environment and gets the launch spec's digest, then deploys. (b) The node then
/// attaches another environment than its lock (a file added to its cached environment, which
/// it measures and declares): the rebuild catches it before anything is sent, and the enclave
/// is left waiting with nothing.
#[test]
fn rebuild_env_reproduces_the_nodes_environment_and_catches_another() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    let files = wheelhouse(&venv, &wheels);
    assert!(
        files.iter().any(|f| f.starts_with("Flask-")) && files.len() >= 6,
        "{files:?}"
    );
    let (node, token) = node_with_environment(
        dir.path(),
        &bin("mse-enclave"),
        &format!(
            "python = {:?}\npackages = [\"flask\"]\nfind_links = {:?}\n",
            venv.join("bin/python").display().to_string(),
            wheels.display().to_string(),
        ),
    );
    let cli = Cli::new(dir.path(), &venv);
    cli.ok(&["scaffold", "helloworld"]);
    cli.ok(&["login", "--url", &node.api, "--token", &token]);

    let index = simple_index(&wheels);
    let text = cli.ok(&[
        "deploy",
        "--path",
        "helloworld/mse.toml",
        "--rebuild-env",
        "--wheel-index",
        &index,
    ]);
    let line = field(&text, "Environment rebuilt here from the node's lock (");
    let python = std::fs::canonicalize(venv.join("bin/python")).unwrap();
    let version = Command::new(&python)
        .args([
            "-c",
            "import sys; print('.'.join(map(str, sys.version_info[:3])))",
        ])
        .output()
        .unwrap()
        .stdout;
    let python = format!(
        "Python {} ({})",
        String::from_utf8(version).unwrap().trim(),
        python.display()
    );
    let (what, digest) = line.split_once("): digest ").unwrap();
    assert_eq!(
        what,
        format!(
            "{} wheels from {index}, {python}, rules mse-env-pack-v1",
            files.len()
        )
    );
    let digest = digest
        .strip_suffix(", the launch spec's")
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!(
            " and environment {digest} rebuilt here from the node's lock)\n"
        )),
        "{text}"
    );
    assert!(text.contains(" (recomputed locally: match)\n"), "{text}");
    assert!(text.contains("App helloworld is running ("), "{text}");
    let rebuilt = format!(
        "Environment rebuilt here from the node's lock ({} wheels from {}, {python}, rules mse-env-pack-v1): digest {digest}, the launch spec's\n",
        files.len(),
        wheels.display()
    );

    // An end user's check (from the deployer's context) rebuilds it too, and expects the
    // measurement of the launch spec saved at deploy.
    let id = field(&text, "  id:").to_owned();
    let text = verify_through_router(
        &cli,
        &node,
        &id,
        &["--rebuild-env", "--find-links", wheels.to_str().unwrap()],
    );
    assert!(text.starts_with(&rebuilt), "{text}");
    assert!(text.ends_with("Verdict:      TRUSTED\n"), "{text}");

    // (b) The node's cached environment gains a file; the node measures it again (its digest
    // cache is keyed on pyvenv.cfg, touched here) and declares that digest, with the same lock.
    let env_dir = std::fs::read_dir(dir.path().join("data/venvs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.extension().is_none())
        .unwrap();
    let flask = std::fs::read_dir(env_dir.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages/flask");
    std::fs::write(flask.join("extra.py"), "SURPRISE = 1\n").unwrap();
    let touch = Command::new("touch")
        .args(["-d", "2001-02-03"])
        .arg(env_dir.join("pyvenv.cfg"))
        .status()
        .unwrap();
    assert!(touch.success());
    let attached = hex::encode(mse_attest::measurement::environment_digest(&env_dir).unwrap());
    let (text, err, id) = cli.refused_deploy(&[
        "deploy",
        "--path",
        "helloworld/mse.toml",
        "-y",
        "--rebuild-env",
        "--find-links",
        wheels.to_str().unwrap(),
    ]);
    assert_eq!(
        err,
        format!(
            "Error: --rebuild-env: refusing (nothing was sent): the environment in the node's launch spec ({attached}) is not the one its published lock rebuilds to here ({digest}; {} wheels from {}, {python}, rules mse-env-pack-v1): the node attaches another environment than it declares\n",
            files.len(),
            wheels.display(),
        )
    );
    assert!(!text.contains("Sent the code key"), "{text}");
    // The enclave side: it runs (it measured what it was given), and got no configuration.
    assert_left_waiting(&cli, &node, &id);
}
