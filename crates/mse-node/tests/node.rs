//! mse-node end to end on loopback, with the fake enclave (examples/fake_enclave.rs).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn every_route_needs_a_valid_token() {
    let node = TestNode::start("");
    for (method, path) in [
        ("GET", "/apps"),
        ("GET", "/apps/x"),
        ("POST", "/apps/x/stop"),
        ("GET", "/apps/x/logs"),
        ("GET", "/apps/x/metrics"),
        ("GET", "/projects"),
        ("GET", "/hardwares/4g-eu-001"),
        ("GET", "/users/me"),
        ("POST", "/apps"),
    ] {
        let (code, body) = http(node.api, method, path, None, None, b"");
        assert_eq!(code, 401, "{method} {path}");
        assert_eq!(
            body,
            json!({"error": "missing bearer token (Authorization: Bearer <token>)"})
        );
        let (code, body) = http(node.api, method, path, Some("mse_00"), None, b"");
        assert_eq!(code, 401, "{method} {path}");
        assert_eq!(body, json!({"error": "invalid bearer token"}));
    }
    let token = node.project("alpha");
    let (code, body) = http_raw_headers(
        node.api,
        "/users/me",
        &format!("Authorization: bearer {token}"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        http_raw_headers(
            node.api,
            "/users/me",
            &format!("Authorization: Basic {token}")
        ),
        (
            401,
            "{\"error\":\"malformed Authorization header: expected \\\"Bearer <token>\\\"\"}"
                .to_owned()
        )
    );
    let (code, me) = node.get("/users/me", Some(&token));
    assert_eq!(code, 200);
    assert_eq!(me["project"]["name"], "alpha");
    let (code, hw) = node.get("/hardwares/4g-eu-001", Some(&token));
    assert_eq!(code, 200);
    assert_eq!(
        hw,
        json!({"name": "4g-eu-001", "memory": 4096, "cores": 1, "enclave_size": 4096})
    );
    assert_eq!(
        node.get("/hardwares/nope", Some(&token)),
        (404, json!({"error": "hardware not found"}))
    );
    let (_, projects) = node.get("/projects?name=alpha", Some(&token));
    assert_eq!(projects.as_array().unwrap().len(), 1);
    let (_, projects) = node.get("/projects?name=beta", Some(&token));
    assert_eq!(projects, json!([]));
    // The mock PCCS is public: collateral is signed data every verifier needs.
    let (code, _) = http_raw(
        node.api,
        "GET",
        "/pccs/sgx/certification/v4/qe/identity",
        None,
        None,
        b"",
    );
    assert_eq!(code, 200);
    // ... and derives from this node's seed.
    let seed: [u8; 32] = std::fs::read(node.data().join("sim-seed"))
        .unwrap()
        .try_into()
        .unwrap();
    let pki = mse_attest_sim::SimPki::from_seed(&seed).unwrap();
    let (code, crl) = http_raw(
        node.api,
        "GET",
        "/pccs/sgx/certification/v4/rootcacrl",
        None,
        None,
        b"",
    );
    assert_eq!(code, 200);
    assert_eq!(
        String::from_utf8(crl).unwrap(),
        hex::encode(&pki.root_crl_der)
    );
}

#[test]
fn a_project_never_sees_another_projects_app() {
    let node = TestNode::start("");
    let alpha = node.project("alpha");
    let beta = node.project("beta");
    let (code, app) = node.deploy(&alpha, &package(), &conf("one"));
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/apps/{id}"),
        format!("/apps/{id}/logs"),
        format!("/apps/{id}/metrics"),
    ] {
        assert_eq!(
            node.get(&path, Some(&beta)),
            (404, json!({"error": "app not found"})),
            "{path}"
        );
    }
    assert_eq!(
        node.post(&format!("/apps/{id}/stop"), Some(&beta)),
        (404, json!({"error": "app not found"}))
    );
    assert_eq!(node.get("/apps", Some(&beta)), (200, json!([])));
    let (_, list) = node.get(&format!("/apps?project={}", "alpha"), Some(&beta));
    assert_eq!(list, json!([]));
    // Still alive and untouched for its owner.
    let app = node.wait_status(&alpha, &id, "initializing", 20);
    assert_eq!(app["name"], "one");
    let (_, list) = node.get("/apps?status=spawning,initializing,running", Some(&alpha));
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn bad_deploys_are_refused_and_leave_nothing() {
    let node = TestNode::start("max_package_mb = 1");
    let token = node.project("alpha");
    let apps_dir = node.data().join("apps");
    let big = vec![7u8; (1 << 20) + 10];
    let (code, body) = node.deploy(&token, &big, &conf("big"));
    assert_eq!(code, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let cases = [
        (
            json!({"docker": "ghcr.io/cosmian/mse-pytorch:1"}),
            "unknown environment \"ghcr.io/cosmian/mse-pytorch:1\": this node offers mse-flask",
        ),
        (
            json!({"hardware": "64g-eu-001"}),
            "unknown hardware \"64g-eu-001\": this node offers 2g-eu-001, 4g-eu-001, 8g-eu-001",
        ),
        (
            json!({"python_application": "app"}),
            "conf.python_application \"app\" must be \"module:variable\"",
        ),
        (
            json!({"healthcheck_endpoint": "health"}),
            "conf.healthcheck_endpoint \"health\" must be a path starting with '/'",
        ),
        (
            json!({"dev_mode": true}),
            "conf.dev_mode (TLS ended by the operator) is not offered: TLS always ends inside the enclave",
        ),
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            "conf.expires_at \"2001-01-01T00:00:00Z\" is in the past",
        ),
        (
            json!({"domain_name": "x.example.com"}),
            "conf.domain_name and conf.ssl_certificate go together",
        ),
    ];
    for (patch, message) in cases {
        let mut c = conf("bad");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        assert_eq!(
            node.deploy(&token, &package(), &c),
            (400, json!({"error": message}))
        );
    }
    let (ct, body) = multipart(&[("conf", "", conf("x").to_string().as_bytes())]);
    assert_eq!(
        http(node.api, "POST", "/apps", Some(&token), Some(&ct), &body),
        (400, json!({"error": "missing multipart part \"code\""}))
    );
    let (ct, body) = multipart(&[("code", "app.tar", &package()), ("conf", "", b"{nope")]);
    let (code, err) = http(node.api, "POST", "/apps", Some(&token), Some(&ct), &body);
    assert_eq!(code, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .starts_with("conf: key must be a string"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&apps_dir).unwrap().count(), 0);
    assert_eq!(node.get("/apps", Some(&token)), (200, json!([])));
    // Under the limit (and far over the 64 KiB of ordinary routes): accepted, stored whole.
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![0x5a; 900 * 1024];
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "big.bin.enc", &data[..]).unwrap();
    let pkg = b.into_inner().unwrap();
    let (code, app) = node.deploy(&token, &pkg, &conf("fits"));
    assert_eq!(code, 201, "{app}");
    let stored = node
        .data()
        .join("apps")
        .join(app["id"].as_str().unwrap())
        .join("app.tar");
    assert_eq!(std::fs::read(stored).unwrap(), pkg);
}

#[test]
fn lifecycle_through_the_router() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let (code, app) = node.deploy(&token, &package(), &conf("web"));
    assert_eq!(code, 201, "{app}");
    assert_eq!(app["status"], "spawning");
    assert_eq!(app["tee"], "sim");
    assert_eq!(app["ssl_certificate_origin"], "self");
    assert_eq!(app["router_address"], node.router.to_string());
    assert_eq!(app["pccs_url"], format!("http://{}/pccs", node.api));
    let id = app["id"].as_str().unwrap().to_owned();
    let domain = format!("{id}.localhost");
    assert_eq!(app["config_domain_name"], domain);
    assert_eq!(app["owner_certificate_sha256"], serde_json::Value::Null);
    let expiration = app["expiration"].as_i64().unwrap();
    let expires_at = time::OffsetDateTime::parse(
        app["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expiration, expires_at.unix_timestamp());
    let app = node.wait_status(&token, &id, "initializing", 20);
    assert_eq!(
        app["runtime_digest"].as_str().unwrap(),
        mse_launch::process::file_sha256(&fake_enclave())
            .unwrap()
            .to_hex()
    );
    assert_eq!(app["environment_digest"].as_str().unwrap().len(), 64);

    // The configuration server answers through the router, by SNI.
    let (code, head, _) = https(node.router, &domain, "GET", "/").unwrap();
    assert_eq!(code, 200);
    assert!(head.contains("mse-status: waiting"), "{head}");
    // Unknown names and garbage are closed without an answer.
    assert!(https(node.router, "nope.localhost", "GET", "/").is_err());
    let mut raw = std::net::TcpStream::connect(node.router).unwrap();
    std::io::Write::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = std::io::Read::read_to_end(&mut raw, &mut buf).unwrap_or(0);
    assert_eq!(n, 0);

    // Provisioning (what `mse deploy` does after verifying) makes it run.
    let (code, _, _) = https(node.router, &domain, "POST", "/").unwrap();
    assert_eq!(code, 200);
    let app = node.wait_status(&token, &id, "running", 20);
    assert!(app["ready_at"].is_string());
    let (code, head, body) = https(node.router, &domain, "GET", "/whoami").unwrap();
    assert_eq!(code, 200);
    assert!(!head.contains("mse-status"));
    assert_eq!(body, format!("app {id} /whoami"));

    let (_, metrics) = node.get(&format!("/apps/{id}/metrics"), Some(&token));
    assert!(
        metrics["total_connections"][1].as_u64().unwrap() >= 3,
        "{metrics}"
    );
    let logs = node.stdout_of(&token, &id);
    assert!(
        logs.contains(&format!("fake-enclave: app {id} starting")),
        "{logs}"
    );
    assert!(
        logs.contains("fake-enclave: provisioned, app running"),
        "{logs}"
    );

    // Same name while alive: refused.
    let (code, err) = node.deploy(&token, &package(), &conf("web"));
    assert_eq!(code, 409);
    assert_eq!(
        err["error"],
        format!("an app named \"web\" is already alive in this project ({id}); stop it first")
    );

    let state = node.data().join("apps").join(&id).join("state");
    std::fs::write(state.join("sealed-file"), b"x").unwrap();
    let (code, _) = node.post(&format!("/apps/{id}/stop"), Some(&token));
    assert_eq!(code, 200);
    let app = node.wait_status(&token, &id, "stopped", 10);
    assert_eq!(app["exit_reason"], "stopped by its owner");
    assert!(app["stopped_at"].is_string());
    assert!(!state.exists());
    assert!(pid_with_arg(&id).is_none());
    assert!(https(node.router, &domain, "GET", "/").is_err());
}

#[test]
fn a_dead_enclave_is_on_error_within_5s_with_its_last_log() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let (_, app) = node.deploy(&token, &package(), &conf("victim"));
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let pid = pid_with_arg(&id).expect("enclave process");
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let app = node.wait_status(&token, &id, "on_error", 5);
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert_eq!(app["exit_reason"], "enclave killed by signal 9");
    assert!(
        node.stdout_of(&token, &id)
            .contains("fake-enclave: SIMULATED, attests nothing")
    );

    // An enclave that dies on its own: exit code and its last words kept.
    let mut c = conf("crasher");
    c["python_application"] = json!("crash:app");
    let (_, app) = node.deploy(&token, &package(), &c);
    let id = app["id"].as_str().unwrap().to_owned();
    let app = node.wait_status(&token, &id, "on_error", 10);
    assert_eq!(app["exit_reason"], "enclave exited with code 3");
    let logs = node.stdout_of(&token, &id);
    assert!(
        logs.contains("fake-enclave: crashing as asked (last words)"),
        "{logs}"
    );
    assert!(
        logs.contains("[mse-node] status on_error: enclave exited with code 3"),
        "{logs}"
    );
}

#[test]
fn node_restart_keeps_the_list_right() {
    let mut node = TestNode::start("");
    let token = node.project("alpha");
    let (_, a) = node.deploy(&token, &package(), &conf("stays"));
    let (_, b) = node.deploy(&token, &package(), &conf("stopped"));
    let a = a["id"].as_str().unwrap().to_owned();
    let b = b["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &a, "initializing", 20);
    node.wait_status(&token, &b, "initializing", 20);
    node.post(&format!("/apps/{b}/stop"), Some(&token));
    node.wait_status(&token, &b, "stopped", 10);
    node.kill();
    // The enclave dies with its node (parent-death signal).
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_with_arg(&a).is_some() {
        assert!(Instant::now() < deadline, "enclave outlived its node");
        std::thread::sleep(Duration::from_millis(50));
    }
    node.spawn();
    let (_, list) = node.get("/apps", Some(&token));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let by_id = |id: &str| list.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(by_id(&a)["status"], "on_error");
    assert_eq!(by_id(&a)["exit_reason"], "node restarted");
    assert_eq!(by_id(&b)["status"], "stopped");
    let logs = node.stdout_of(&token, &a);
    assert!(
        logs.contains(&format!("fake-enclave: app {a} starting")),
        "{logs}"
    );
    assert!(logs.contains("node restarted"), "{logs}");
    // The same token still works, and a new deploy of the name is allowed again.
    let (code, _) = node.deploy(&token, &package(), &conf("stays"));
    assert_eq!(code, 201);
}

#[test]
fn expiration_stops_the_app() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let mut c = conf("brief");
    let at = time::OffsetDateTime::now_utc() + Duration::from_secs(3);
    c["expires_at"] = json!(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let (code, app) = node.deploy(&token, &package(), &c);
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let app = node.wait_status(&token, &id, "stopped", 15);
    assert_eq!(app["exit_reason"], "expired");
}

#[test]
fn the_node_only_ever_holds_ciphertext() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let canary = "CANARY-9f86d081884c7d659a2feaa0c55ad015";
    let code_dir = node.dir.path().join("code");
    std::fs::create_dir_all(&code_dir).unwrap();
    std::fs::write(code_dir.join("app.py"), format!("SECRET = '{canary}'\n")).unwrap();
    let files = vec![mse_crypto::PackageFile {
        rel: "app.py".into(),
        abs: code_dir.join("app.py"),
    }];
    let key = mse_crypto::CodeKey::generate();
    let mut tar = Vec::new();
    mse_crypto::build_package(&files, &key, None, &mut tar, &|_| {}).unwrap();
    let (code, app) = node.deploy(&token, &tar, &conf("secretive"));
    assert_eq!(code, 201);
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let mut checked = 0;
    let mut stack = vec![node.data()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                checked += 1;
                assert!(
                    !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                    "{} holds the plaintext",
                    p.display()
                );
            }
        }
    }
    assert!(checked >= 3, "checked {checked} files");
    assert!(node.data().join("apps").join(&id).join("app.tar").exists());
}

#[test]
fn slow_or_nameless_client_hellos_are_dropped() {
    let node = TestNode::start("");
    // Half a record header, then silence: closed after client_hello_timeout_ms (1 s here).
    let mut s = std::net::TcpStream::connect(node.router).unwrap();
    std::io::Write::write_all(&mut s, &[22, 3, 1]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(9));
    // An IP address as server name is not sent as SNI by rustls: no name, closed.
    assert!(https(node.router, "127.0.0.1", "GET", "/").is_err());
}

#[test]
fn owner_mode_routes_the_owners_domain() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let cert_pem = self_signed_pem("*.example.com");
    let mut c = conf("owned");
    c["domain_name"] = json!("shop.example.com");
    c["ssl_certificate"] = json!(cert_pem);
    let (code, app) = node.deploy(&token, &package(), &c);
    assert_eq!(code, 201, "{app}");
    assert_eq!(app["ssl_certificate_origin"], "owner");
    assert_eq!(app["domain_name"], "shop.example.com");
    assert_eq!(app["expiration"], serde_json::Value::Null);
    use sha2::Digest;
    assert_eq!(
        app["owner_certificate_sha256"],
        hex::encode(sha2::Sha256::digest(cert_pem.as_bytes()))
    );
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let (code, head, _) = https(node.router, "shop.example.com", "GET", "/").unwrap();
    assert_eq!(code, 200);
    assert!(head.contains("mse-status: waiting"));
    // The fake enclave was given the chain instead of an expiration.
    let fullchain = node.data().join("apps").join(&id).join("fullchain.pem");
    assert_eq!(std::fs::read_to_string(&fullchain).unwrap(), cert_pem);
    let pid = pid_with_arg(&id).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"--certificate").unwrap();
    assert_eq!(args[at + 1], fullchain.as_os_str().as_encoded_bytes());
    // The launch spec (an object in the API) binds the chain's digest, not an expiration.
    let (_, now) = node.get(&format!("/apps/{id}"), Some(&token));
    assert_eq!(
        now["launch_spec"]["tls"],
        json!({"owner_certificate_sha256": hex::encode(sha2::Sha256::digest(cert_pem.as_bytes()))})
    );

    // A second app cannot take the domain; a certificate that does not cover it is refused.
    let mut c2 = c.clone();
    c2["name"] = json!("thief");
    assert_eq!(
        node.deploy(&token, &package(), &c2),
        (
            409,
            json!({"error": "domain \"shop.example.com\" is already used by another app"})
        )
    );
    c2["domain_name"] = json!("shop.other.org");
    assert_eq!(
        node.deploy(&token, &package(), &c2),
        (
            400,
            json!({"error": "conf.ssl_certificate does not cover shop.other.org (nor its wildcard)"})
        )
    );
    c2["domain_name"] = json!("evil.localhost");
    assert_eq!(
        node.deploy(&token, &package(), &c2),
        (
            400,
            json!({"error": "conf.domain_name \"evil.localhost\" is inside this node's own domain localhost"})
        )
    );
}

#[test]
fn cli_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\nmax_apps = 0\n").unwrap();
    let out = std::process::Command::new(node_bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("Error: {}:2: max_apps must be at least 1\n", cfg.display())
    );
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let create = || {
        std::process::Command::new(node_bin())
            .args(["project", "create", "alpha", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let first = create();
    assert!(first.status.success());
    assert_eq!(first.stdout.len(), 69); // "mse_" + 64 hex + newline
    let again = create();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "Error: project \"alpha\" already exists\n"
    );
    let run = |args: &[&str]| {
        std::process::Command::new(node_bin())
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let token = run(&["project", "token", "alpha"]);
    assert!(token.status.success());
    assert_eq!(token.stdout.len(), 69);
    assert_ne!(token.stdout, first.stdout);
    let missing = run(&["project", "token", "beta"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "Error: no project named \"beta\"\n"
    );
    let list = String::from_utf8(run(&["project", "list"]).stdout).unwrap();
    assert!(
        list.starts_with("alpha\t") && list.ends_with("\t2 token(s)\n"),
        "{list:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let seed = std::fs::metadata(dir.path().join("d/sim-seed")).unwrap();
    assert_eq!(seed.len(), 32);
    assert_eq!(seed.permissions().mode() & 0o777, 0o600);
}

#[test]
fn twenty_concurrent_deploys_all_run() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let node = &node;
                let token = &token;
                s.spawn(move || {
                    let (code, app) = node.deploy(token, &package(), &conf(&format!("app{i}")));
                    assert_eq!(code, 201, "{app}");
                    app["id"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        node.wait_status(&token, id, "initializing", 60);
        let domain = format!("{id}.localhost");
        assert_eq!(https(node.router, &domain, "POST", "/").unwrap().0, 200);
    }
    for id in &ids {
        node.wait_status(&token, id, "running", 30);
        let (_, _, body) = https(node.router, &format!("{id}.localhost"), "GET", "/").unwrap();
        assert_eq!(body, format!("app {id} /"));
    }
    // Tier 4g-eu-001 has 1 core: each enclave is pinned to one CPU when the node has more.
    let node_cpus = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let pid = pid_with_arg(&ids[0]).unwrap();
    let enclave = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if allowed(&node_cpus).contains(['-', ',']) {
        assert!(
            allowed(&enclave).parse::<u32>().is_ok(),
            "{}",
            allowed(&enclave)
        );
    }
    let (_, list) = node.get("/apps?status=running", Some(&token));
    assert_eq!(list.as_array().unwrap().len(), 20);
}

#[test]
fn malformed_requests_get_json_errors() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let (code, body) = http(
        node.api,
        "POST",
        "/apps",
        Some(&token),
        Some("application/json"),
        b"{}",
    );
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("POST /apps takes multipart/form-data: "),
        "{body}"
    );
    assert_eq!(
        node.get("/apps?status=sleeping", Some(&token)),
        (
            400,
            json!({"error": "unknown status \"sleeping\": expected spawning, initializing, running, stopped or on_error"})
        )
    );
    assert_eq!(
        node.get("/nowhere", Some(&token)),
        (404, json!({"error": "route not found"}))
    );
    assert_eq!(
        http(node.api, "DELETE", "/apps", Some(&token), None, b""),
        (405, json!({"error": "method not allowed on this route"}))
    );
}

#[test]
fn enclaves_outlive_the_runtime_threads_that_started_them() {
    // tokio retires idle blocking threads after 10 s; an enclave's parent-death signal must not
    // follow the thread it was forked from.
    let node = TestNode::start("");
    let token = node.project("alpha");
    let (_, app) = node.deploy(&token, &package(), &conf("patient"));
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let pid = pid_with_arg(&id).unwrap();
    std::thread::sleep(Duration::from_secs(13));
    assert_eq!(pid_with_arg(&id), Some(pid));
    let (_, app) = node.get(&format!("/apps/{id}"), Some(&token));
    assert_eq!(app["status"], "initializing", "{app}");
}

#[test]
fn a_clean_node_stop_records_its_apps() {
    let mut node = TestNode::start("");
    let token = node.project("alpha");
    let (_, app) = node.deploy(&token, &package(), &conf("graceful"));
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "initializing", 20);
    let mut child = node.child.take().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(pid_with_arg(&id).is_none());
    node.spawn();
    let (_, app) = node.get(&format!("/apps/{id}"), Some(&token));
    assert_eq!(app["status"], "on_error");
    assert_eq!(app["exit_reason"], "node stopped");
}
