//! A fake `mse-node` (the API shape of crates/mse-node, plus its mock PCCS) and a fake enclave
//! configuration server (sim RA-TLS on loopback), for the `mse` cloud commands' tests.
//!
//! The fake node assigns one fixed app id; on upload it starts the "enclave": a TLS server
//! presenting a sim RA-TLS certificate whose MRENCLAVE is the measurement of the manifest built
//! from the uploaded package (or a tampered variant, per [`Tamper`]), answering `GET` with
//! `Mse-Status: Waiting` and recording every `POST`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mse_attest::attester::{Attester, HostProbe};
use mse_attest::ratls::{RaTlsParams, generate, report_data_for_key};
use mse_attest_sim::SimAttester;
use mse_attest_sim::{CollateralOptions, MockServer, SimEnclave, SimPki, pccs_router};
use mse_launch::{Digest32, LaunchSpec, PackageRef, Runtime, TeeKind, TlsSpec};
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SEED: [u8; 32] = [0x42; 32];
pub const TOKEN: &str = "test-token-123";
pub const APP_ID: &str = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";
pub const OTHER_ID: &str = "0a0a0a0a-0000-4000-8000-000000000001";
pub const RUNTIME_DIGEST: [u8; 32] = [0x11; 32];
pub const ENV_DIGEST: [u8; 32] = [0x22; 32];
pub const ENCLAVE_SIZE: u64 = 4096;
pub const X25519_SK: [u8; 32] = [0x33; 32];

/// How the fake node's enclave misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// The enclave runs other code: its measurement is over another package digest.
    OtherCode,
    /// The certificate's quote binds another key than the certificate's.
    ForgedCertificate,
    /// The certificate names another domain.
    WrongSan,
    /// The node declares a hardware TEE while the enclave's evidence is simulated.
    NodeClaimsHardware,
}

#[derive(Default)]
pub struct Recorded {
    /// The `conf` JSON of each upload, and the package bytes.
    pub uploads: Vec<(Value, Vec<u8>)>,
    /// Bodies POSTed to the configuration server.
    pub config_posts: Vec<Vec<u8>>,
    /// SNI of each connection to the enclave.
    pub snis: Vec<String>,
    pub stops: Vec<String>,
    /// Authorization headers seen.
    pub auth: Vec<String>,
}

struct AppState {
    json: Value,
    /// The launch spec the node shows once the environment is built (spawning → initializing).
    spec: Value,
    /// Polls left before "spawning" turns to "initializing".
    spawn_polls: u32,
}

pub struct NodeState {
    pub tamper: Tamper,
    pub recorded: Mutex<Recorded>,
    apps: Mutex<Vec<AppState>>,
    enclave_addr: Mutex<Option<SocketAddr>>,
    pki: SimPki,
    pub logs: Mutex<String>,
}

impl NodeState {
    fn app_mut<R>(&self, id: &str, f: impl FnOnce(&mut AppState) -> R) -> Option<R> {
        let mut apps = self.apps.lock().unwrap();
        apps.iter_mut().find(|a| a.json["id"] == id).map(f)
    }

    /// Adds an app as if deployed earlier.
    pub fn add_app(&self, id: &str, name: &str, status: &str) {
        self.apps.lock().unwrap().push(AppState {
            json: app_json(id, name, status, "127.0.0.1:1", "2030-01-01T00:00:00Z"),
            spec: Value::Null,
            spawn_polls: 0,
        });
    }

    pub fn status_of(&self, id: &str) -> Option<String> {
        self.app_mut(id, |a| a.json["status"].as_str().unwrap().to_owned())
    }
}

fn app_json(id: &str, name: &str, status: &str, router: &str, expires: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "project_id": "p1",
        "owner_id": "p1",
        "domain_name": format!("{id}.localhost"),
        "config_domain_name": format!("{id}.localhost"),
        "docker": "mse-flask",
        "created_at": "2026-11-30T10:00:00Z",
        "ready_at": null,
        "stopped_at": null,
        "expires_at": expires,
        "status": status,
        "exit_reason": null,
        "hardware_name": "4g-eu-001",
        "enclave_size": ENCLAVE_SIZE,
        "ssl_certificate_origin": "self",
        "python_application": "app:app",
        "healthcheck_endpoint": "/health",
        "tee": "sim",
        "runtime_digest": hex::encode(RUNTIME_DIGEST),
        "environment_digest": null,
        "router_address": router,
    })
}

pub struct FakeNode {
    pub url: String,
    pub state: Arc<NodeState>,
    _server: MockServer,
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, json!({ "error": msg }))
}

fn authorized(state: &NodeState, headers: &HeaderMap) -> bool {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.recorded.lock().unwrap().auth.push(value.clone());
    value == format!("Bearer {TOKEN}")
}

macro_rules! auth {
    ($state:expr, $headers:expr) => {
        if !authorized(&$state, &$headers) {
            return error(StatusCode::UNAUTHORIZED, "invalid bearer token");
        }
    };
}

async fn me(State(s): State<Arc<NodeState>>, h: HeaderMap) -> Response {
    auth!(s, h);
    json_response(
        StatusCode::OK,
        json!({"id": "p1", "email": "default@mse-node", "project": {"id": "p1", "name": "default"}}),
    )
}

async fn projects(
    State(s): State<Arc<NodeState>>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    auth!(s, h);
    let list = if q.get("name").is_none_or(|n| n == "default") {
        json!([{"id": "p1", "name": "default"}])
    } else {
        json!([])
    };
    json_response(StatusCode::OK, list)
}

async fn hardware(
    State(s): State<Arc<NodeState>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    auth!(s, h);
    if name != "4g-eu-001" {
        return error(StatusCode::NOT_FOUND, "hardware not found");
    }
    json_response(
        StatusCode::OK,
        json!({"name": name, "memory": 4096, "cores": 1, "enclave_size": ENCLAVE_SIZE}),
    )
}

async fn list_apps(
    State(s): State<Arc<NodeState>>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    auth!(s, h);
    let statuses: Option<Vec<String>> = q
        .get("status")
        .map(|v| v.split(',').map(str::to_owned).collect());
    let apps = s.apps.lock().unwrap();
    let out: Vec<Value> = apps
        .iter()
        .map(|a| a.json.clone())
        .filter(|a| q.get("name").is_none_or(|n| a["name"] == n.as_str()))
        .filter(|a| {
            statuses
                .as_ref()
                .is_none_or(|st| st.iter().any(|x| a["status"] == x.as_str()))
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(out))
}

async fn get_app(
    State(s): State<Arc<NodeState>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(s, h);
    let found = s.app_mut(&id, |a| {
        if a.json["status"] == "spawning" {
            if a.spawn_polls == 0 {
                a.json["status"] = "initializing".into();
                a.json["environment_digest"] = hex::encode(ENV_DIGEST).into();
                a.json["launch_spec"] = a.spec.clone();
            } else {
                a.spawn_polls -= 1;
            }
        }
        if a.json["status"] == "initializing" && !s.recorded.lock().unwrap().config_posts.is_empty()
        {
            a.json["status"] = "running".into();
        }
        a.json.clone()
    });
    match found {
        Some(v) => json_response(StatusCode::OK, v),
        None => error(StatusCode::NOT_FOUND, "app not found"),
    }
}

async fn stop_app(
    State(s): State<Arc<NodeState>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(s, h);
    s.recorded.lock().unwrap().stops.push(id.clone());
    match s.app_mut(&id, |a| {
        a.json["status"] = "stopped".into();
        a.json.clone()
    }) {
        Some(v) => json_response(StatusCode::OK, v),
        None => error(StatusCode::NOT_FOUND, "app not found"),
    }
}

async fn logs(State(s): State<Arc<NodeState>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    auth!(s, h);
    if s.status_of(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "app not found");
    }
    json_response(StatusCode::OK, json!({"stdout": *s.logs.lock().unwrap()}))
}

/// The parts of a multipart body: (name, bytes).
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .to_owned();
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(i) = find(rest, &delim) {
        rest = &rest[i + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, &delim).expect("closing boundary");
        let part = &rest[2..end - 2];
        let split = find(part, b"\r\n\r\n").expect("part headers");
        let headers = String::from_utf8_lossy(&part[..split]).into_owned();
        let name = headers
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned();
        parts.push((name, part[split + 4..].to_vec()));
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn create_app(State(s): State<Arc<NodeState>>, h: HeaderMap, body: Bytes) -> Response {
    auth!(s, h);
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let parts = multipart_parts(&ct, &body);
    let conf: Value = serde_json::from_slice(
        &parts
            .iter()
            .find(|(n, _)| n == "conf")
            .expect("conf part")
            .1,
    )
    .unwrap();
    let code = parts
        .iter()
        .find(|(n, _)| n == "code")
        .expect("code part")
        .1
        .clone();
    s.recorded
        .lock()
        .unwrap()
        .uploads
        .push((conf.clone(), code.clone()));
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400;
    let expires_text = time::OffsetDateTime::from_unix_timestamp(expires)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let domain = format!("{APP_ID}.localhost");
    let package_digest: [u8; 32] = Sha256::digest(&code).into();
    // What the node declares; the enclave of Tamper::OtherCode runs another package.
    let spec = LaunchSpec {
        version: 1,
        app_id: APP_ID.into(),
        san: domain.clone(),
        application: conf["python_application"].as_str().unwrap().into(),
        memory_mb: ENCLAVE_SIZE,
        vcpus: 1,
        tee: TeeKind::Sim,
        tls: TlsSpec::Expiration(expires),
        package: PackageRef {
            sha256: Digest32(package_digest),
            size: code.len() as u64,
        },
        environment_sha256: Digest32(ENV_DIGEST),
        runtime: Runtime::Process {
            enclave_sha256: Digest32(RUNTIME_DIGEST),
        },
    };
    let mut running = spec.clone();
    if s.tamper == Tamper::OtherCode {
        running.package.sha256.0[0] ^= 1;
    }
    let addr = start_enclave(s.clone(), running.sim_measurement(), &domain, expires);
    *s.enclave_addr.lock().unwrap() = Some(addr);
    let mut json = app_json(
        APP_ID,
        conf["name"].as_str().unwrap(),
        "spawning",
        &addr.to_string(),
        &expires_text,
    );
    let mut spec_json = serde_json::to_value(&spec).unwrap();
    if s.tamper == Tamper::NodeClaimsHardware {
        json["tee"] = "gramine-sgx".into();
        spec_json["tee"] = "gramine-sgx".into();
    }
    s.apps.lock().unwrap().push(AppState {
        json: json.clone(),
        spec: spec_json,
        spawn_polls: 2,
    });
    json_response(StatusCode::CREATED, json)
}

fn sim_attester(mr_enclave: [u8; 32]) -> SimAttester {
    let root = std::env::temp_dir().join("mse-cli-test-empty-host");
    let _ = std::fs::create_dir_all(&root);
    SimAttester::with_probe(
        &HostProbe::with_root(root),
        &SEED,
        SimEnclave {
            mr_enclave,
            mr_signer: [0xBB; 32],
            isv_prod_id: 1,
            isv_svn: 1,
            debug: false,
        },
    )
    .expect("sim attester")
}

pub fn x25519_public() -> [u8; 32] {
    mse_crypto::X25519KeyPair::from_secret(X25519_SK).public()
}

/// The enclave's certificate and key (DER), per the tamper mode.
fn enclave_identity(
    state: &NodeState,
    measurement: [u8; 32],
    domain: &str,
    expires: i64,
) -> (Vec<u8>, Vec<u8>) {
    let attester = sim_attester(measurement);
    match state.tamper {
        Tamper::ForgedCertificate => {
            let served = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let quote = attester
                .evidence(&report_data_for_key(
                    other.public_key_raw(),
                    &x25519_public(),
                ))
                .unwrap();
            let mut params = CertificateParams::new(vec![domain.to_owned()]).unwrap();
            params.custom_extensions = vec![CustomExtension::from_oid_content(
                &[1, 2, 840, 113_741, 1337, 6],
                quote,
            )];
            let cert = params.self_signed(&served).unwrap();
            (cert.der().to_vec(), served.serialize_der())
        }
        _ => {
            let san = if state.tamper == Tamper::WrongSan {
                "evil.localhost".to_owned()
            } else {
                domain.to_owned()
            };
            let id = generate(
                &attester,
                &RaTlsParams {
                    san,
                    not_before: time::OffsetDateTime::now_utc() - time::Duration::minutes(5),
                    not_after: time::OffsetDateTime::from_unix_timestamp(expires).unwrap(),
                    x25519_public: x25519_public(),
                },
            )
            .unwrap();
            (id.cert_der, id.key_pkcs8_der)
        }
    }
}

/// Starts the fake configuration server on the node's runtime; returns its address.
fn start_enclave(
    state: Arc<NodeState>,
    measurement: [u8; 32],
    domain: &str,
    expires: i64,
) -> SocketAddr {
    let (cert, key) = enclave_identity(&state, measurement, domain, expires);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                if let Some(sni) = tls.get_ref().1.server_name() {
                    state.recorded.lock().unwrap().snis.push(sni.to_owned());
                }
                let Some((method, body)) = read_request(&mut tls).await else {
                    return;
                };
                let answer: &[u8] = if method == "POST" {
                    state.recorded.lock().unwrap().config_posts.push(body);
                    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nreceived\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nMse-Status: Waiting\r\nContent-Length: 8\r\nConnection: close\r\n\r\nwaiting\n"
                };
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// Reads one HTTP/1.1 request: (method, body).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let method = head.split(' ').next()?.to_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, body))
}

impl FakeNode {
    pub fn start(tamper: Tamper) -> FakeNode {
        let state = Arc::new(NodeState {
            tamper,
            recorded: Mutex::default(),
            apps: Mutex::default(),
            enclave_addr: Mutex::default(),
            pki: SimPki::from_seed(&SEED).unwrap(),
            logs: Mutex::new(String::new()),
        });
        let pccs = pccs_router(&state.pki, &CollateralOptions::default()).unwrap();
        let app = Router::new()
            .route("/users/me", get(me))
            .route("/projects", get(projects))
            .route("/hardwares/{name}", get(hardware))
            .route("/apps", get(list_apps).post(create_app))
            .route("/apps/{id}", get(get_app))
            .route("/apps/{id}/stop", post(stop_app))
            .route("/apps/{id}/logs", get(logs))
            .with_state(state.clone())
            .nest("/pccs", pccs);
        let server = MockServer::start("fake-node", app).unwrap();
        FakeNode {
            url: server.url(),
            state,
            _server: server,
        }
    }

    pub fn enclave_addr(&self) -> Option<SocketAddr> {
        *self.state.enclave_addr.lock().unwrap()
    }

    /// What the enclave answers a GET now: its `Mse-Status` header.
    pub fn enclave_mse_status(&self) -> Option<String> {
        mse_status(self.enclave_addr()?, &format!("{APP_ID}.localhost"))
    }
}

/// `GET /` over TLS to `addr` with SNI `sni`, judging no certificate: the `Mse-Status` header of
/// the answer (a configuration server says `Waiting`), if any.
pub fn mse_status(addr: SocketAddr, sni: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let verifier = Arc::new(mse_attest::ratls::CaptureVerifier::default());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).ok()?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .ok()?;
        tls.write_all(
            format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("mse-status")
                .then(|| v.trim().to_owned())
        })
    })
}
