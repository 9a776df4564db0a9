//! What hostile tenants and clients try (issue 16): racing deploys for one name or one domain,
//! holding connections through the router, running the node short of file descriptors.

mod common;

use std::sync::Barrier;

use common::*;
use serde_json::{Value, json};

/// Sends every `(token, conf)` deploy at once (released together by a barrier); returns the
/// answers in order.
fn deploy_together(node: &TestNode, deploys: &[(String, Value)]) -> Vec<(u16, Value)> {
    let barrier = Barrier::new(deploys.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = deploys
            .iter()
            .map(|(token, conf)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    node.deploy(token, &package(), conf)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn six_parallel_deploys_of_one_name_give_one_app() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    let answers = deploy_together(&node, &vec![(token.clone(), conf("web")); 6]);
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(code, _)| *code == 201)
        .map(|(_, app)| app)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = created[0]["id"].as_str().unwrap();
    for (code, body) in answers.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(*code, 409, "{body}");
        assert_eq!(
            body,
            &json!({"error": format!("an app named \"web\" is already alive in this project ({id}); stop it first")})
        );
    }
    let (_, list) = node.get("/apps?name=web", Some(&token));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // The refused deploys left no app directory behind.
    assert_eq!(node.app_dirs(), 1);
}

#[test]
fn one_domain_across_two_projects_goes_to_one_app() {
    let node = TestNode::start("");
    let alpha = node.project("alpha");
    let beta = node.project("beta");
    let cert_pem = self_signed_pem("race.example.com");
    let owned = |name: &str| {
        let mut c = conf(name);
        c["domain_name"] = json!("race.example.com");
        c["ssl_certificate"] = json!(cert_pem);
        c
    };
    let deploys: Vec<(String, Value)> = (0..6)
        .map(|i| {
            let token = if i % 2 == 0 { &alpha } else { &beta };
            (token.clone(), owned(&format!("shop{i}")))
        })
        .collect();
    let answers = deploy_together(&node, &deploys);
    let winners: Vec<usize> = (0..6).filter(|&i| answers[i].0 == 201).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (code, body) in answers.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(
            (*code, body),
            (
                409,
                &json!({"error": "domain \"race.example.com\" is already used by another app"})
            )
        );
    }
    let w = winners[0];
    let (wtoken, loser_token) = if w % 2 == 0 {
        (&alpha, &beta)
    } else {
        (&beta, &alpha)
    };
    let wid = answers[w].1["id"].as_str().unwrap().to_owned();
    node.wait_status(wtoken, &wid, "initializing", 30);
    provision_and_check_route(&node, &wid);
    // A deploy refused for the domain does not unroute it.
    assert_eq!(node.deploy(loser_token, &package(), &owned("late")).0, 409);
    assert_routed_to(&node, &wid);
    // Once the winner is stopped, the other project may take the domain, and it routes there.
    let (code, _) = node.post(&format!("/apps/{wid}/stop"), Some(wtoken));
    assert_eq!(code, 200);
    node.wait_status(wtoken, &wid, "stopped", 30);
    let (code, app) = node.deploy(loser_token, &package(), &owned("next"));
    assert_eq!(code, 201, "{app}");
    let nid = app["id"].as_str().unwrap().to_owned();
    node.wait_status(loser_token, &nid, "initializing", 30);
    provision_and_check_route(&node, &nid);
}

/// Provisions the app behind race.example.com and checks the router sends it there.
fn provision_and_check_route(node: &TestNode, id: &str) {
    let (code, _, _) = https_post_json(node.router, "race.example.com", "{}").unwrap();
    assert_eq!(code, 200);
    assert_routed_to(node, id);
}

/// race.example.com routes to app `id` (the fake enclave echoes its id).
fn assert_routed_to(node: &TestNode, id: &str) {
    let (_, _, body) = https(node.router, "race.example.com", "GET", "/").unwrap();
    assert_eq!(body, format!("app {id} /"));
}

/// A TLS connection through the router to `host`, handshake done, then left idle.
fn idle_tls(router: std::net::SocketAddr, host: &str) -> Result<std::net::TcpStream, String> {
    let tcp = std::net::TcpStream::connect(router).unwrap();
    tls_over(tcp, host).map(|(tcp, _)| tcp)
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    })
}

/// The TLS handshake over `tcp` with SNI `host`.
fn tls_over(
    mut tcp: std::net::TcpStream,
    host: &str,
) -> Result<(std::net::TcpStream, rustls::ClientConnection), String> {
    tcp.set_nonblocking(false).unwrap();
    let mut conn = any_cert_client(host);
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok((tcp, conn))
}

/// Deploys an app named `name` and waits until its configuration server answers.
fn deployed(node: &TestNode, token: &str, name: &str) -> String {
    let (code, app) = node.deploy(token, &package(), &conf(name));
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(token, &id, "initializing", 30);
    format!("{id}.localhost")
}

#[test]
fn one_tenants_idle_connections_do_not_block_another_app() {
    let node = TestNode::start(
        "router_max_connections = 10\nrouter_max_connections_per_app = 6\nrouter_max_connections_per_client = 10",
    );
    let alpha = node.project("alpha");
    let beta = node.project("beta");
    let a = deployed(&node, &alpha, "hog");
    let b = deployed(&node, &beta, "victim");
    // The hog's tenant opens ten idle connections: six are spliced, the others closed.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        match idle_tls(node.router, &a) {
            Ok(s) => held.push(s),
            Err(_) => refused += 1,
        }
    }
    assert_eq!((held.len(), refused), (6, 4));
    // The other tenant's app still answers, through the same router, meanwhile.
    let (code, head, _) = https(node.router, &b, "GET", "/").unwrap();
    assert_eq!(code, 200);
    assert!(head.contains("mse-status: waiting"), "{head}");
    // And the API too.
    assert_eq!(node.get("/users/me", Some(&beta)).0, 200);
    drop(held);
}

#[test]
fn idle_spliced_connections_are_closed() {
    // 3 s, not 1: on a loaded 2-core machine a debug-build TLS handshake through the router can
    // pause for over a second, and the test's "active" connection must not look idle.
    let node = TestNode::start("router_idle_timeout_secs = 3\nrouter_max_connections_per_app = 1");
    let alpha = node.project("alpha");
    let a = deployed(&node, &alpha, "idle");
    let mut idle = idle_tls(node.router, &a).unwrap();
    // The app's only slot is taken...
    assert!(idle_tls(node.router, &a).is_err());
    // ...until the router closes the idle connection (the read sees the end, not its own
    // 30 s timeout).
    // (Session tickets the enclave sent after the handshake may come first.)
    let mut buf = [0u8; 4096];
    while std::io::Read::read(&mut idle, &mut buf).unwrap() != 0 {}
    // Once closed, the slot is free again; a connection that keeps talking is not cut.
    let (code, _, _) = https(node.router, &a, "GET", "/").unwrap();
    assert_eq!(code, 200);
}

/// Restarts `node` under `prlimit --nofile=N:N` with `config` as its node.toml; returns the
/// node's exit status and stderr when it refuses to start.
fn respawn_limited(node: &mut TestNode, nofile: u32, config: &str) -> Option<(i32, String)> {
    use std::io::BufRead;
    node.kill();
    std::fs::write(&node.config, config).unwrap();
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(node_bin())
        .args(["serve", "--config"])
        .arg(&node.config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let out = child.wait_with_output().unwrap();
        return Some((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    node.api = words[3].trim_start_matches("http://").parse().unwrap();
    node.router = words[7].parse().unwrap();
    node.child = Some(child);
    None
}

#[test]
fn caps_fit_the_open_files_limit_and_the_api_keeps_answering() {
    let mut node = TestNode::start("");
    let base = std::fs::read_to_string(&node.config).unwrap().replace(
        "client_hello_timeout_ms = 1000",
        "client_hello_timeout_ms = 60000",
    );
    // A cap that cannot fit 256 descriptors is refused, in one line naming the numbers.
    let (code, stderr) = respawn_limited(
        &mut node,
        256,
        &format!("max_apps = 8\nrouter_max_connections = 300\n{base}"),
    )
    .expect("the node must refuse this config");
    assert_eq!(code, 1);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error")).collect();
    assert_eq!(
        errors,
        [
            "Error: node.toml: router_max_connections = 300 needs 760 open files (2 per connection + 4 per app for max_apps = 8 + 128 reserved), but RLIMIT_NOFILE is 256: lower router_max_connections or max_apps, or raise the limit"
        ]
    );
    // The default cap is lowered to fit; 300 silent router connections then leave the API
    // answering.
    assert!(respawn_limited(&mut node, 256, &format!("max_apps = 8\n{base}")).is_none());
    let token = node.project("alpha");
    let silent: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(node.router).unwrap())
        .collect();
    // Let the router accept (and drop what exceeds its cap) before asking the API.
    let mut probe = std::net::TcpStream::connect(node.router).unwrap();
    probe
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut probe, &mut buf).unwrap_or(0), 0);
    let (code, me) = node.get("/users/me", Some(&token));
    assert_eq!(code, 200, "{me}");
    let (code, app) = node.deploy(&token, &package(), &conf("under-limit"));
    assert_eq!(code, 201, "{app}");
    drop(silent);
}

/// Sends `head` then `body`; returns the status and the JSON body.
fn raw_request(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk: "<len>\r\n<data>\r\n0\r\n\r\n".
        body.split_once("\r\n")
            .unwrap()
            .1
            .rsplit_once("\r\n0\r\n")
            .unwrap()
            .0
    } else {
        body
    };
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

/// A `POST /apps` of app `name` with `package`, framed by `framing` (a Content-Length or
/// Transfer-Encoding line): the request head and the multipart body.
fn upload(token: &str, name: &str, package: &[u8], framing: Option<&str>) -> (String, Vec<u8>) {
    let (ct, body) = multipart(&[
        ("code", "app.tar", package),
        ("conf", "", conf(name).to_string().as_bytes()),
    ]);
    let framing = framing.map_or_else(|| format!("Content-Length: {}", body.len()), str::to_owned);
    let head = format!(
        "POST /apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\n{framing}\r\n\r\n"
    );
    (head, body)
}

#[test]
fn client_errors_are_json_4xx() {
    let node = TestNode::start("");
    let token = node.project("alpha");
    // A chunked multipart body whose second chunk has a broken size line: the client's fault,
    // 400 (it was 500).
    let (head, body) = upload(
        &token,
        "cut",
        &package(),
        Some("Transfer-Encoding: chunked"),
    );
    let half = &body[..body.len() / 2];
    let mut chunked = format!("{:x}\r\n", half.len()).into_bytes();
    chunked.extend_from_slice(half);
    chunked.extend_from_slice(b"\r\nZZ\r\n");
    let (code, answer) = raw_request(node.api, &head, &chunked);
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed multipart body: "),
        "{answer}"
    );
    // A path parameter that is not UTF-8: JSON too, as every API error.
    let head = format!(
        "GET /apps/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (code, answer) = raw_request(node.api, &head, b"");
    assert_eq!(code, 400, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    // And nothing of the cut deploy stayed.
    assert_eq!(node.app_dirs(), 0);
}

#[test]
fn silent_api_clients_are_disconnected() {
    use std::io::Read;
    let node = TestNode::start("api_read_timeout_secs = 1");
    let token = node.project("alpha");
    // Half a request header, then silence: a JSON 408 then the end of the connection (the
    // test's own read timeout, 30 s, is not what ends the read).
    let (code, answer) = raw_request(node.api, "GET /users/me HTTP/1.1\r\nHost: x\r\nAuthor", b"");
    assert_eq!(
        (code, answer),
        (
            408,
            json!({"error": "request header stalled: nothing for 1 s (api_read_timeout_secs)"})
        )
    );
    // A connection that sends nothing at all is closed without a word.
    let mut s = std::net::TcpStream::connect(node.api).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(s.read_to_end(&mut buf).unwrap(), 0);
    // A body that stalls halfway falls below the minimum body rate once the grace time is
    // over: a JSON 408, nothing kept.
    let (head, body) = upload(&token, "stall", &package(), None);
    let (code, answer) = raw_request(node.api, &head, &body[..body.len() / 2]);
    assert_eq!(
        (code, answer),
        (
            408,
            json!({"error": "request body arrived slower than 64 KiB/s (api_min_body_rate_kib)"})
        )
    );
    assert_eq!(node.app_dirs(), 0);
    // The API still answers.
    assert_eq!(node.get("/users/me", Some(&token)).0, 200);
}

/// A tar with one member of `size` bytes.
fn package_of(size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![7u8; size];
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "big.bin.enc", &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn per_project_quotas_refuse_with_the_limit_named() {
    let node = TestNode::start(
        "max_apps_per_project = 2\nmax_project_package_mb = 1\nmax_lifetime_hours = 48",
    );
    let alpha = node.project("alpha");
    let beta = node.project("beta");
    for name in ["a1", "a2"] {
        assert_eq!(node.deploy(&alpha, &package(), &conf(name)).0, 201);
    }
    assert_eq!(
        node.deploy(&alpha, &package(), &conf("a3")),
        (
            403,
            json!({"error": "this project already runs 2 apps, the most this node allows per project (max_apps_per_project = 2); stop one first"})
        )
    );
    // Another project is not affected by alpha's apps...
    assert_eq!(
        node.deploy(&beta, &package_of(700 << 10), &conf("b1")).0,
        201
    );
    // ...but by its own package bytes.
    assert_eq!(
        node.deploy(&beta, &package_of(700 << 10), &conf("b2")),
        (
            403,
            json!({"error": "this project's live apps would hold 1 MiB of packages, more than this node allows per project (max_project_package_mb = 1)"})
        )
    );
    // A lifetime beyond the node's maximum.
    let mut c = conf("forever");
    c["expires_at"] = json!("9999-12-31T00:00:00Z");
    assert_eq!(
        node.deploy(&beta, &package(), &c),
        (
            400,
            json!({"error": "conf.expires_at \"9999-12-31T00:00:00Z\" is beyond this node's maximum app lifetime of 48 hours (max_lifetime_hours)"})
        )
    );
    // Refused deploys left nothing on disk: three apps, three directories.
    assert_eq!(node.app_dirs(), 3);
}

#[test]
fn a_failed_app_does_not_keep_its_package() {
    let node = TestNode::start("max_apps_per_project = 1");
    let token = node.project("alpha");
    let mut c = conf("crashy");
    c["python_application"] = json!("crash:app");
    let (code, app) = node.deploy(&token, &package(), &c);
    assert_eq!(code, 201, "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    node.wait_status(&token, &id, "on_error", 30);
    let dir = node.data().join("apps").join(&id);
    assert!(!dir.join("app.tar").exists());
    assert!(dir.join("enclave.log").exists());
    // And it no longer counts toward the project's apps.
    assert_eq!(node.deploy(&token, &package(), &conf("next")).0, 201);
}

#[test]
fn one_client_address_cannot_take_every_router_connection() {
    use std::io::{Read, Write};
    let node = TestNode::start("router_max_connections_per_client = 3");
    let alpha = node.project("alpha");
    let a = deployed(&node, &alpha, "app");
    // 127.0.0.1 holds three connections; its fourth is closed at accept.
    let held: Vec<_> = (0..3).map(|_| idle_tls(node.router, &a).unwrap()).collect();
    assert!(idle_tls(node.router, &a).is_err());
    // Another address is served meanwhile.
    let (mut tcp, mut conn) = tls_over(connect_from("127.0.0.2", node.router), &a).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    drop(held);
}

/// Writes `head` then trickles `slow`, `step` bytes every 100 ms (stopping at the first write
/// error, once the node has hung up) while reading the answer; returns the answer's bytes and
/// how many pieces of `slow` were written.
fn trickle(addr: std::net::SocketAddr, head: &[u8], slow: &[u8], step: usize) -> (Vec<u8>, usize) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(head).unwrap();
    let mut w = s.try_clone().unwrap();
    let slow = slow.to_vec();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        for piece in slow.chunks(step) {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if w.write_all(piece).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    drop(s);
    (resp, writer.join().unwrap())
}

/// [`trickle`]'s answer as `raw_request` returns it.
fn trickled(addr: std::net::SocketAddr, head: &[u8], slow: &[u8], step: usize) -> (u16, Value) {
    let (resp, _) = trickle(addr, head, slow, step);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

#[test]
fn a_trickled_client_hello_is_cut_at_its_deadline() {
    // A TLS record header announcing 16 KiB, then its bytes one every 100 ms: the router
    // closes the connection at client_hello_timeout_ms (1 s here), long before the 600th.
    let node = TestNode::start("");
    let (answer, sent) = trickle(node.router, &[22, 3, 1, 0x3f, 0xff], &[0u8; 600], 1);
    assert_eq!(answer, b"");
    assert!(sent < 600, "the router read all {sent} bytes");
}

#[test]
fn a_trickled_request_header_is_cut_at_its_deadline() {
    // Bytes keep coming (every 100 ms, well within api_read_timeout_secs), but the header is
    // not complete after api_header_timeout_secs: a JSON 408 (it stayed open for as long as
    // the client kept trickling).
    let node = TestNode::start("api_read_timeout_secs = 5\napi_header_timeout_secs = 1");
    let (code, answer) = trickled(
        node.api,
        b"GET /users/me HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        &[b'a'; 300],
        1,
    );
    assert_eq!(
        (code, answer),
        (
            408,
            json!({"error": "request header not complete within 1 s (api_header_timeout_secs)"})
        )
    );
}

#[test]
fn a_trickled_upload_is_cut_below_the_minimum_rate() {
    // 100 bytes every 100 ms is 1 KB/s: below api_min_body_rate_kib once the grace of
    // api_read_timeout_secs is over, although no single read waits long.
    let node = TestNode::start("api_read_timeout_secs = 1\napi_min_body_rate_kib = 16");
    let token = node.project("alpha");
    let (head, body) = upload(&token, "slow", &package_of(40 << 10), None);
    let (code, answer) = trickled(node.api, head.as_bytes(), &body, 100);
    assert_eq!(
        (code, answer),
        (
            408,
            json!({"error": "request body arrived slower than 16 KiB/s (api_min_body_rate_kib)"})
        )
    );
    assert_eq!(node.app_dirs(), 0);
}

#[test]
fn malformed_requests_get_json_errors_from_the_connection_layer() {
    let node = TestNode::start("");
    let big = "a".repeat(80 << 10);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("GET /users/me HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
            431,
            "request header larger than 64 KiB",
        ),
        (
            "GET /users/me HTTP/1.1\r\nHost: x\r\n".to_owned() + &"X-H: 1\r\n".repeat(101) + "\r\n",
            431,
            "request header has more than 100 fields",
        ),
        (
            "GARBAGE\r\n\r\n".to_owned(),
            400,
            "malformed request header: invalid token",
        ),
        (
            "GET /users/me HTTP/9.9\r\nHost: x\r\n\r\n".to_owned(),
            400,
            "malformed request header: invalid HTTP version",
        ),
        (
            "GET /users/me HTTP/1.1\r\nHo st: x\r\n\r\n".to_owned(),
            400,
            "malformed request header: invalid header name",
        ),
        (
            "POST /apps HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(),
            400,
            "invalid Content-Length",
        ),
        (
            "POST /apps HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .to_owned(),
            400,
            "invalid Content-Length",
        ),
        (
            "POST /apps HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_owned(),
            400,
            "Transfer-Encoding must end with chunked",
        ),
        (
            "POST /apps HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(),
            400,
            "Transfer-Encoding is not allowed in HTTP/1.0",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40 << 10)),
            414,
            "request target longer than 32 KiB",
        ),
    ];
    for (head, status, message) in cases {
        let (code, answer) = raw_request(node.api, &head, b"");
        assert_eq!(
            (code, answer),
            (status, json!({ "error": message })),
            "{}",
            &head[..head.len().min(60)]
        );
    }
    // A good request on a fresh connection still works.
    let token = node.project("alpha");
    assert_eq!(node.get("/users/me", Some(&token)).0, 200);
}

#[test]
fn parallel_deploys_across_projects_do_not_exceed_max_apps() {
    let node = TestNode::start("max_apps = 3");
    let deploys: Vec<(String, Value)> = (0..8)
        .map(|i| (node.project(&format!("p{i}")), conf("app")))
        .collect();
    let answers = deploy_together(&node, &deploys);
    let created = answers.iter().filter(|(code, _)| *code == 201).count();
    assert_eq!(created, 3, "{answers:?}");
    for (code, body) in answers.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(
            (*code, body),
            (
                503,
                &json!({"error": "this node runs its maximum of 3 apps; try again later"})
            )
        );
    }
    // Refused deploys kept nothing on disk.
    assert_eq!(node.app_dirs(), 3);
}
