//! The node's HTTP API (shape of the original MSE SaaS API; documented in API.md). JSON in and
//! out, a bearer token on every route but the public PCCS, and a project only ever sees its
//! own apps: anything else is answered as if it did not exist (404).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Multipart, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

#[allow(unused_imports)] // some are only named by the `utoipa::path` annotations
use crate::config::{Tier, valid_dns_name};
use crate::logs::read_tail;
use crate::node::{Launch, Node, StopReason};
#[allow(unused_imports)]
use crate::openapi::{
    AppView, CertificateOrigin, DefaultsView, DeployForm, ErrorBody, LogsView, MetricsView,
    ProjectView, UserView,
};
use crate::store::{AppRecord, Project, Status, now_ms};

/// Largest `conf` part (JSON plus an owner certificate chain).
const MAX_CONF_BYTES: usize = 1 << 20;

/// A refused or failed request: its HTTP status and the one-line message of its JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the node's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        if let Some(code) = e.client_status() {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::CONFLICT);
            return ApiError::new(status, e.to_string());
        }
        ApiError::internal(e)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The project a request's bearer token belongs to.
pub struct Auth(pub Project);

impl FromRequestParts<Arc<Node>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> ApiResult<Auth> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m.to_owned());
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing bearer token (Authorization: Bearer <token>)"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized("malformed Authorization header: expected \"Bearer <token>\"")
            })?;
        // The original client's bearer is a short-lived access token from `/oauth/token`.
        let project = if crate::oauth::looks_like_access_token(token) {
            crate::oauth::project_for_access_token(node, token)?
        } else {
            node.store.project_for_token(token)?
        };
        match project {
            Some(p) => Ok(Auth(p)),
            None => Err(unauthorized("invalid bearer token")),
        }
    }
}

/// The API; `sim` holds the mock collateral services of the node's seed (`/pccs` for sim,
/// `/kds` for sim-snp).
pub fn router(node: Arc<Node>, sim: Router) -> Router {
    let upload_limit = node.cfg.max_package_bytes as usize + MAX_CONF_BYTES + (64 << 10);
    // The VM guest image (public, no token): crate::image_api.
    let image = crate::image_api::router(&node.cfg);
    Router::new()
        .route(
            "/apps",
            post(create_app)
                .layer(DefaultBodyLimit::max(upload_limit))
                .get(list_apps),
        )
        .route("/apps/default", get(app_defaults))
        .route("/apps/{id}", get(get_app))
        .route("/apps/{id}/stop", post(stop_app))
        .route("/apps/{id}/logs", get(app_logs))
        .route("/apps/{id}/metrics", get(app_metrics))
        .route("/projects", get(projects))
        .route("/hardwares", get(hardwares))
        .route("/hardwares/{name}", get(hardware))
        .route("/environments", get(environments))
        .route("/users/me", get(me))
        .route("/oauth/token", post(crate::oauth::token))
        .route("/openapi.json", get(crate::openapi::document))
        .layer(DefaultBodyLimit::max(64 << 10))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .with_state(node)
        .layer(axum::middleware::map_response(
            crate::json_errors::json_errors,
        ))
        // Collateral is public, signed data that any verifier of the node's sim evidence
        // needs (end users included): no token.
        .merge(sim)
        .merge(image)
}

fn rfc3339(ms: i64) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    match t.ok().and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }) {
        Some(s) => Value::String(s),
        None => Value::Null,
    }
}

/// The app as the API shows it.
fn app_json(node: &Node, app: &AppRecord) -> Value {
    let conf: Value = serde_json::from_str(&app.config).unwrap_or(Value::Null);
    let tier = node.cfg.tier(&app.hardware);
    let router = node
        .router_addr
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|a| a.to_string());
    let pccs_url = match *node.api_addr.lock().unwrap_or_else(|p| p.into_inner()) {
        Some(api) if node.cfg.tee == mse_launch::TeeKind::Sim => Some(format!("http://{api}/pccs")),
        _ => None,
    };
    json!(AppView {
        id: app.id.clone(),
        name: app.name.clone(),
        project_id: app.project_id.clone(),
        owner_id: app.project_id.clone(),
        domain_name: app.custom_domain.as_ref().unwrap_or(&app.domain).clone(),
        config_domain_name: app.domain.clone(),
        docker: conf["docker"].clone(),
        environment: app.env.clone(),
        created_at: rfc3339(app.created_at),
        ready_at: app.ready_at.map(rfc3339),
        stopped_at: app.stopped_at.map(rfc3339),
        expires_at: rfc3339(app.expires_at),
        status: app.status,
        exit_reason: app.exit_reason.clone(),
        hardware_name: app.hardware.clone(),
        enclave_size: tier.map(|t| t.enclave_size),
        ssl_certificate_origin: if app.custom_domain.is_some() {
            CertificateOrigin::Owner
        } else {
            CertificateOrigin::SelfSigned
        },
        python_application: conf["python_application"].clone(),
        healthcheck_endpoint: conf["healthcheck_endpoint"].clone(),
        tee: json!(node.cfg.tee),
        // The app's launch spec (null until its venv is built); its hash is the measurement.
        launch_spec: conf["launch_spec"].clone(),
        // Launch inputs of the measurement, exactly as handed to mse-enclave.
        expiration: app.custom_domain.is_none().then_some(app.expires_at / 1000),
        owner_certificate_sha256: conf["owner_certificate_sha256"].clone(),
        runtime_digest: conf["runtime_digest"].clone(),
        environment_digest: conf["environment_digest"].clone(),
        environment_lock: conf["environment_lock"].clone(),
        router_address: router,
        // The node's mock PCCS, for verifying sim evidence (null for real TEEs).
        pccs_url,
    })
}

/// An app of the caller's project, or 404 (also for other projects' apps).
fn owned_app(node: &Node, project: &Project, id: &str) -> ApiResult<AppRecord> {
    match node.store.app(id)? {
        Some(app) if app.project_id == project.id => Ok(app),
        _ => Err(ApiError::not_found("app")),
    }
}

/// The app of an `/apps/{id}` route, found in the caller's project ([`owned_app`]).
pub(crate) struct OwnedApp {
    project: Project,
    app: AppRecord,
}

impl FromRequestParts<Arc<Node>> for OwnedApp {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Response> {
        // The token first: without one, even a malformed path is a 401.
        let Auth(project) = Auth::from_request_parts(parts, node)
            .await
            .map_err(IntoResponse::into_response)?;
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, node)
                .await
                .map_err(IntoResponse::into_response)?;
        let app = owned_app(node, &project, &id).map_err(IntoResponse::into_response)?;
        Ok(OwnedApp { project, app })
    }
}

/// The path parameter of the `/apps/{id}` routes (documentation only: [`OwnedApp`] reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the derive, never built
pub(crate) struct AppId {
    /// App UUID
    id: String,
}

/// The refusals every `/apps/{id}` route may answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // read by the derive, never built
pub(crate) enum AppRefusals {
    /// Missing or invalid bearer token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such app in the caller's project
    #[response(status = 404)]
    NotFound(ErrorBody),
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    name: Option<String>,
    status: Option<String>,
    project: Option<String>,
}

#[utoipa::path(
    get,
    path = "/apps",
    security(("bearer" = [])),
    params(
        ("name" = Option<String>, Query, description = "Only apps of this name"),
        ("status" = Option<String>, Query, description = "Comma-separated statuses (spawning, initializing, running, stopped, on_error); empty means any", pattern = "^((spawning|initializing|running|stopped|on_error)(,(spawning|initializing|running|stopped|on_error))*)?$"),
        ("project" = Option<String>, Query, description = "Project id or name (other projects give an empty list)"),
    ),
    responses(
        (status = 200, description = "The caller's apps", body = Vec<AppView>),
        (status = 400, description = "Bad query string or unknown status", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn list_apps(
    State(node): State<Arc<Node>>,
    Auth(project): Auth,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Value>>> {
    let Query(q) = q.map_err(query_error)?;
    if let Some(p) = &q.project
        && p != &project.id
        && p != &project.name
    {
        return Ok(Json(Vec::new()));
    }
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.split(',')
                .map(|x| {
                    Status::parse(x.trim()).ok_or_else(|| {
                        ApiError::bad(format!(
                            "unknown status {x:?}: expected spawning, initializing, running, stopped or on_error"
                        ))
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        None => None,
    };
    let apps = node
        .store
        .list_apps(&project.id, q.name.as_deref(), statuses.as_deref())?;
    Ok(Json(apps.iter().map(|a| app_json(&node, a)).collect()))
}

#[utoipa::path(
    get,
    path = "/apps/{id}",
    security(("bearer" = [])),
    params(AppId),
    responses(
        (status = 200, description = "The app", body = AppView),
        AppRefusals,
    ),
)]
pub(crate) async fn get_app(
    State(node): State<Arc<Node>>,
    OwnedApp { app, .. }: OwnedApp,
) -> ApiResult<Json<Value>> {
    Ok(Json(app_json(&node, &app)))
}

#[utoipa::path(
    post,
    path = "/apps/{id}/stop",
    security(("bearer" = [])),
    params(AppId),
    responses(
        (status = 200, description = "The app, stopping or stopped", body = AppView),
        AppRefusals,
    ),
)]
pub(crate) async fn stop_app(
    State(node): State<Arc<Node>>,
    OwnedApp { project, app }: OwnedApp,
) -> ApiResult<Json<Value>> {
    if !node.request_stop(&app.id, StopReason::User) {
        // Not alive here (already ended, or the node restarted): just erase its storage.
        node.wipe(&app.id);
    }
    let app = owned_app(&node, &project, &app.id)?;
    Ok(Json(app_json(&node, &app)))
}

#[utoipa::path(
    get,
    path = "/apps/{id}/logs",
    security(("bearer" = [])),
    params(AppId),
    responses(
        (status = 200, description = "The last 64 kB of the app's output", body = LogsView),
        AppRefusals,
    ),
)]
pub(crate) async fn app_logs(
    State(node): State<Arc<Node>>,
    OwnedApp { app, .. }: OwnedApp,
) -> ApiResult<Json<Value>> {
    let bytes = match node.live(&app.id) {
        Some(live) => live.log.tail(),
        None => {
            read_tail(&node.app_dir(&app.id).join("enclave.log")).map_err(ApiError::internal)?
        }
    };
    Ok(Json(json!({ "stdout": String::from_utf8_lossy(&bytes) })))
}

#[utoipa::path(
    get,
    path = "/apps/{id}/metrics",
    security(("bearer" = [])),
    params(AppId),
    responses(
        (status = 200, description = "Live metrics", body = MetricsView),
        AppRefusals,
    ),
)]
pub(crate) async fn app_metrics(
    State(node): State<Arc<Node>>,
    OwnedApp { app, .. }: OwnedApp,
) -> ApiResult<Json<Value>> {
    Ok(Json(node.metrics(&app)))
}

#[derive(Deserialize)]
pub(crate) struct NameQuery {
    name: Option<String>,
}

fn project_json(p: &Project) -> Value {
    json!(crate::openapi::ProjectView::new(p, rfc3339(p.created_at)))
}

#[utoipa::path(
    get,
    path = "/projects",
    security(("bearer" = [])),
    params(("name" = Option<String>, Query, description = "Only the project of this name")),
    responses(
        (status = 200, description = "The caller's project (a token sees one)", body = Vec<ProjectView>),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn projects(
    Auth(project): Auth,
    q: Result<Query<NameQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Value>>> {
    let Query(q) = q.map_err(query_error)?;
    let visible = q.name.as_deref().is_none_or(|n| n == project.name);
    Ok(Json(if visible {
        vec![project_json(&project)]
    } else {
        Vec::new()
    }))
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad(format!("bad query string: {}", e.body_text()))
}

#[utoipa::path(
    get,
    path = "/users/me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn me(Auth(project): Auth) -> Json<Value> {
    json!(crate::openapi::UserView::new(
        &project,
        rfc3339(project.created_at)
    ))
    .into()
}

#[utoipa::path(
    get,
    path = "/hardwares",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The hardware tiers of this node", body = Vec<Tier>),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn hardwares(State(node): State<Arc<Node>>, _auth: Auth) -> Json<Value> {
    Json(json!(node.cfg.hardware))
}

#[utoipa::path(
    get,
    path = "/hardwares/{name}",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Tier name")),
    responses(
        (status = 200, description = "The tier", body = Tier),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "No such tier", body = ErrorBody),
    ),
)]
pub(crate) async fn hardware(
    State(node): State<Arc<Node>>,
    _auth: Auth,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    node.cfg
        .tier(&name)
        .map(|t| Json(json!(t)))
        .ok_or_else(|| ApiError::not_found("hardware"))
}

#[utoipa::path(
    get,
    path = "/environments",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Names of the environments (the deploy's `docker` value)", body = Vec<String>),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn environments(State(node): State<Arc<Node>>, _auth: Auth) -> Json<Value> {
    let names: Vec<&str> = node
        .cfg
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    Json(json!(names))
}

#[utoipa::path(
    get,
    path = "/apps/default",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Defaults for a new app", body = DefaultsView),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
    ),
)]
pub(crate) async fn app_defaults(
    State(node): State<Arc<Node>>,
    Auth(project): Auth,
) -> Json<Value> {
    Json(json!(DefaultsView {
        project: project.name,
        docker: node.cfg.environments.first().map(|e| e.name.clone()),
        hardware: node.cfg.hardware.first().map(|t| t.name.clone()),
    }))
}

/// The `conf` part of `POST /apps` (the original client's payload; unknown fields ignored).
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct DeployConf {
    name: String,
    project: Option<String>,
    #[serde(default)]
    dev_mode: bool,
    healthcheck_endpoint: String,
    python_application: String,
    expires_at: Option<String>,
    ssl_certificate: Option<String>,
    domain_name: Option<String>,
    hardware: String,
    docker: String,
}

/// For fuzz/ (fuzz_targets/node_deploy_conf.rs): the `conf` part's JSON shape and its
/// `python_application` check, as `create_app` applies them.
#[doc(hidden)]
pub fn fuzz_deploy_conf(bytes: &[u8]) -> Result<(), FuzzConfError> {
    let conf: DeployConf = serde_json::from_slice(bytes)?;
    if valid_python_application(&conf.python_application) {
        Ok(())
    } else {
        Err(FuzzConfError::PythonApplication(conf.python_application))
    }
}

/// Why [`fuzz_deploy_conf`] refused a conf.
#[doc(hidden)]
#[derive(Debug, thiserror::Error)]
pub enum FuzzConfError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("conf.python_application {0:?} must be \"module:variable\"")]
    PythonApplication(String),
}

fn valid_python_application(s: &str) -> bool {
    let ident = |p: &str| {
        !p.is_empty()
            && !p.as_bytes()[0].is_ascii_digit()
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    match s.split_once(':') {
        Some((module, var)) => module.split('.').all(ident) && ident(var),
        None => false,
    }
}

/// Removes a half-made app dir unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn write_package(
    field: &mut axum::extract::multipart::Field<'_>,
    path: &Path,
    limit: u64,
) -> ApiResult<u64> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut written = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "code package exceeds this node's limit of {} MiB",
                    limit >> 20
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok(written)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if let Some(slow) = crate::api_conn::slow_body(&e) {
        return ApiError::new(StatusCode::REQUEST_TIMEOUT, slow.to_string());
    }
    // A body that ends early or breaks its framing is the client's fault (axum says 500).
    let status = match e.status() {
        s if s.is_server_error() => StatusCode::BAD_REQUEST,
        s => s,
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body exceeds this node's upload limit".to_owned()
    } else {
        format!("malformed multipart body: {}", e.body_text())
    };
    ApiError::new(status, message)
}

#[utoipa::path(
    post,
    path = "/apps",
    security(("bearer" = [])),
    request_body(content = DeployForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The new app, spawning", body = AppView),
        (status = 400, description = "Bad package or conf", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A per-project quota (the message names it)", body = ErrorBody),
        (status = 404, description = "conf.project is not the caller's project", body = ErrorBody),
        (status = 408, description = "Upload slower than api_min_body_rate_kib", body = ErrorBody),
        (status = 409, description = "Name or domain already in use", body = ErrorBody),
        (status = 413, description = "Package or conf too large", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = ErrorBody),
        (status = 503, description = "The node runs its maximum of apps", body = ErrorBody),
    ),
)]
pub(crate) async fn create_app(
    State(node): State<Arc<Node>>,
    Auth(project): Auth,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("POST /apps takes multipart/form-data: {}", e.body_text()),
        )
    })?;
    // Early, to spare a full node the upload; the store decides when it inserts.
    if node.live_count() >= node.cfg.max_apps {
        return Err(crate::store::StoreError::NodeFull(node.cfg.max_apps).into());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let dir = node.app_dir(&id);
    tokio::fs::create_dir(&dir)
        .await
        .map_err(ApiError::internal)?;
    let mut cleanup = Cleanup(Some(dir.clone()));
    let package = dir.join("app.tar");
    let mut conf_bytes: Option<Vec<u8>> = None;
    let mut code_size: Option<u64> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("code") if code_size.is_none() => {
                code_size =
                    Some(write_package(&mut field, &package, node.cfg.max_package_bytes).await?);
            }
            Some("conf") if conf_bytes.is_none() => {
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if buf.len() + chunk.len() > MAX_CONF_BYTES {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("conf part exceeds {} KiB", MAX_CONF_BYTES >> 10),
                        ));
                    }
                    buf.extend_from_slice(&chunk);
                }
                conf_bytes = Some(buf);
            }
            Some(name @ ("code" | "conf")) => {
                return Err(ApiError::bad(format!("part {name:?} given twice")));
            }
            other => {
                return Err(ApiError::bad(format!(
                    "unexpected multipart part {:?}: expected \"code\" and \"conf\"",
                    other.unwrap_or("")
                )));
            }
        }
    }
    let conf_bytes = conf_bytes.ok_or_else(|| ApiError::bad("missing multipart part \"conf\""))?;
    match code_size {
        None => return Err(ApiError::bad("missing multipart part \"code\"")),
        Some(0) => return Err(ApiError::bad("part \"code\" is empty")),
        Some(_) => {}
    }
    let conf: DeployConf =
        serde_json::from_slice(&conf_bytes).map_err(|e| ApiError::bad(format!("conf: {e}")))?;
    let name = conf.name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::bad("conf.name must be 1..255 characters"));
    }
    if let Some(p) = &conf.project
        && p != &project.name
        && p != &project.id
    {
        return Err(ApiError::not_found("project"));
    }
    if conf.dev_mode {
        return Err(ApiError::bad(
            "conf.dev_mode (TLS ended by the operator) is not offered: TLS always ends inside the enclave",
        ));
    }
    if !valid_python_application(&conf.python_application) {
        return Err(ApiError::bad(format!(
            "conf.python_application {:?} must be \"module:variable\"",
            conf.python_application
        )));
    }
    let hc = &conf.healthcheck_endpoint;
    if !hc.starts_with('/') || hc.len() > 255 || hc.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(ApiError::bad(format!(
            "conf.healthcheck_endpoint {hc:?} must be a path starting with '/'"
        )));
    }
    let tier = node.cfg.tier(&conf.hardware).cloned().ok_or_else(|| {
        let names: Vec<&str> = node.cfg.hardware.iter().map(|t| t.name.as_str()).collect();
        ApiError::bad(format!(
            "unknown hardware {:?}: this node offers {}",
            conf.hardware,
            names.join(", ")
        ))
    })?;
    let env = node
        .cfg
        .environment(&conf.docker)
        .cloned()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    // A live app of the same name in this project, or another live app with the same custom
    // domain, is refused by the store's unique indexes when the app is inserted (409): a check
    // here would race with concurrent deploys.
    let now = now_ms();
    let mut expires_at = match &conf.expires_at {
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::bad(format!("conf.expires_at {s:?} is not an RFC 3339 date"))
                })?;
            let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms <= now {
                return Err(ApiError::bad(format!(
                    "conf.expires_at {s:?} is in the past"
                )));
            }
            Some(ms)
        }
        None => None,
    };
    let (custom_domain, certificate) = match (&conf.domain_name, &conf.ssl_certificate) {
        (None, None) => (None, None),
        (Some(domain), Some(pem)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if !valid_dns_name(&domain) {
                return Err(ApiError::bad(format!(
                    "conf.domain_name {domain:?} is not a DNS name"
                )));
            }
            if domain == node.cfg.base_domain
                || domain.ends_with(&format!(".{}", node.cfg.base_domain))
            {
                return Err(ApiError::bad(format!(
                    "conf.domain_name {domain:?} is inside this node's own domain {}",
                    node.cfg.base_domain
                )));
            }
            let path = dir.join("fullchain.pem");
            std::fs::write(&path, pem.as_bytes()).map_err(ApiError::internal)?;
            let cert = mse_conf::read_certificate(&path)
                .map_err(|e| ApiError::bad(format!("conf.ssl_certificate: {e}")))?;
            if !cert.covers(&domain) {
                return Err(ApiError::bad(format!(
                    "conf.ssl_certificate does not cover {domain} (nor its wildcard)"
                )));
            }
            let not_after = cert.not_after.timestamp_millis();
            if not_after <= now {
                return Err(ApiError::bad("conf.ssl_certificate has expired"));
            }
            match expires_at {
                Some(e) if e > not_after => {
                    return Err(ApiError::bad(
                        "conf.expires_at is after the certificate's notAfter",
                    ));
                }
                None => expires_at = Some(not_after),
                _ => {}
            }
            (Some(domain), Some(path))
        }
        _ => {
            return Err(ApiError::bad(
                "conf.domain_name and conf.ssl_certificate go together",
            ));
        }
    };
    let expires_at = expires_at.unwrap_or(now + node.cfg.default_lifetime_hours as i64 * 3_600_000);
    let expires_at =
        crate::limits::lifetime(&node.cfg, now, expires_at, conf.expires_at.as_deref())
            .map_err(|e| ApiError::bad(e.to_string()))?;
    let owner_cert_sha256 = match &certificate {
        Some(path) => Some(
            mse_launch::process::file_sha256(path)
                .map_err(ApiError::internal)?
                .to_hex(),
        ),
        None => None,
    };
    // Hashing the runtime (cached after the first deploy) must not stall the executor.
    let runtime_digest = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || node.runtime_digest())
            .await
            .map_err(ApiError::internal)?
    }
    .map_err(ApiError::internal)?
    .to_hex();
    let stored_conf = json!({
        "name": name,
        "python_application": conf.python_application,
        "healthcheck_endpoint": conf.healthcheck_endpoint,
        "docker": conf.docker,
        "hardware": conf.hardware,
        "domain_name": custom_domain,
        "runtime_digest": runtime_digest,
        "environment_digest": Value::Null,
        "owner_certificate_sha256": owner_cert_sha256,
        // Counted against the project's max_project_package_mb.
        "package_bytes": code_size,
    });
    let app = AppRecord {
        id: id.clone(),
        name: name.to_owned(),
        project_id: project.id.clone(),
        status: Status::Spawning,
        domain: node.cfg.app_domain(&id),
        custom_domain,
        port: None,
        pid: None,
        hardware: tier.name.clone(),
        env: env.name.clone(),
        created_at: now,
        ready_at: None,
        stopped_at: None,
        exit_reason: None,
        expires_at,
        config: stored_conf.to_string(),
    };
    node.store.insert_app(&app)?;
    cleanup.0 = None;
    let body = app_json(&node, &app);
    node.start(Launch {
        app,
        env,
        tier,
        python_application: conf.python_application,
        healthcheck: conf.healthcheck_endpoint,
        certificate,
    })
    .map_err(|e| {
        // Recorded, so the app does not sit in `spawning` with nothing behind it.
        let _ = node.store.set_status(
            &id,
            Status::OnError,
            Some("cannot start the app's supervisor"),
        );
        ApiError::internal(e)
    })?;
    tracing::info!(app = %id, project = %project.name, "deployed");
    Ok((StatusCode::CREATED, Json(body)))
}
