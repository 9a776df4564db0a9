//! The node API's own description: the response types the handlers serialise, and the OpenAPI
//! 3.1 document generated from them and from the handlers' annotations (`GET /openapi.json`).

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::Project;

/// A project (the original SaaS's `Project`, whose client requires every field).
#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    /// UUID.
    pub id: String,
    /// Unique on the node.
    pub name: String,
    /// Always empty: projects on a node have no description.
    pub description: String,
    /// The project itself: on a node, a project is its own owner.
    pub owner_id: String,
    /// Always true: a token sees exactly one project, its default.
    pub is_default: bool,
    /// Always null (no billing on a node).
    pub stripe_customer_id: Option<String>,
    /// Always null (no billing on a node).
    pub stripe_payment_method_id: Option<String>,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Value,
    /// Always null (deleted projects are gone).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<String>,
}

impl ProjectView {
    /// The view of `p`, with its creation time already formatted.
    pub fn new(p: &Project, created_at: Value) -> ProjectView {
        ProjectView {
            id: p.id.clone(),
            name: p.name.clone(),
            description: String::new(),
            owner_id: p.id.clone(),
            is_default: true,
            stripe_customer_id: None,
            stripe_payment_method_id: None,
            created_at,
            deleted_at: None,
        }
    }
}

/// The caller (`GET /users/me`): on a node the bearer names a project, so the "user" is that
/// project (the original client requires every field of its `User`).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The project's UUID.
    pub id: String,
    /// The project's name.
    pub given_name: String,
    /// Always empty.
    pub family_name: String,
    /// `<project>@mse-node` (not a mailbox).
    pub email: String,
    /// RFC 3339 creation time of the project.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Value,
    /// Always true: nothing left to configure.
    pub configured: bool,
    /// Always false: the address is synthetic.
    pub email_verified: bool,
    /// The project.
    pub project: ProjectView,
}

impl UserView {
    /// The view of the caller's project `p`, with its creation time already formatted.
    pub fn new(p: &Project, created_at: Value) -> UserView {
        UserView {
            id: p.id.clone(),
            given_name: p.name.clone(),
            family_name: String::new(),
            email: format!("{}@mse-node", p.name),
            created_at: created_at.clone(),
            configured: true,
            email_verified: false,
            project: ProjectView::new(p, created_at),
        }
    }
}

/// Every error of the API: one line for a human.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong; an internal error only points to the node's log.
    pub error: String,
}

/// App status, as in the original API.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AppStatus {
    /// Launched; its configuration server is not up yet.
    Spawning,
    /// Waiting for its code key and secrets.
    Initializing,
    /// Answering its health check.
    Running,
    /// Stopped by its owner, or expired.
    Stopped,
    /// Failed, timed out, or lost to a node restart (see `exit_reason`).
    OnError,
}

/// Who holds the TLS key the app is served with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateOrigin {
    /// The enclave's RA-TLS certificate.
    #[serde(rename = "self")]
    SelfSigned,
    /// The owner's certificate, its key given to the enclave only.
    Owner,
}

/// An app as the API shows it (`GET /apps/{id}` and the lists).
#[derive(Serialize, ToSchema)]
pub struct AppView {
    /// UUID.
    pub id: String,
    /// Unique among the project's live apps.
    pub name: String,
    /// UUID of its project.
    pub project_id: String,
    /// The project again (on a node, a project is its own owner).
    pub owner_id: String,
    /// The name end users reach the app by (the owner's domain in owner mode).
    pub domain_name: String,
    /// The node-given name of the app (its RA-TLS certificate's SAN).
    pub config_domain_name: String,
    /// The `docker` value of the deploy (names the environment).
    #[schema(value_type = String)]
    pub docker: Value,
    /// The environment the app runs in.
    pub environment: String,
    /// RFC 3339 time of the deploy.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Value,
    /// RFC 3339 time it became `running` (null before).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<Value>,
    /// RFC 3339 time it ended (null while alive).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<Value>,
    /// RFC 3339 time the node stops it.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Value,
    /// Where it is in its life.
    #[schema(value_type = AppStatus)]
    pub status: crate::store::Status,
    /// Why the app ended (null while alive).
    pub exit_reason: Option<String>,
    /// Name of its hardware tier.
    pub hardware_name: String,
    /// Enclave size in MB of the app's hardware tier (null if the tier is gone).
    pub enclave_size: Option<u64>,
    /// Whose certificate end users see.
    pub ssl_certificate_origin: CertificateOrigin,
    /// `module:variable` of the app object, from the deploy.
    #[schema(value_type = String)]
    pub python_application: Value,
    /// Path probed to tell it is up, from the deploy.
    #[schema(value_type = String)]
    pub healthcheck_endpoint: Value,
    /// The node's TEE kind (`sim`, ...).
    #[schema(value_type = String)]
    pub tee: Value,
    /// The app's launch spec (`mse_launch::LaunchSpec`, canonical field order; null until its
    /// environment is built): its SHA-256 is the app's launch identity.
    #[schema(value_type = Option<Object>)]
    pub launch_spec: Value,
    /// Launch input of the measurement: expiration (Unix seconds), null in owner mode.
    pub expiration: Option<i64>,
    /// Launch input of the measurement: SHA-256 of the owner's certificate chain.
    #[schema(value_type = Option<String>)]
    pub owner_certificate_sha256: Value,
    /// Launch input of the measurement: SHA-256 of the runtime (the `mse-enclave` executable,
    /// or the guest image's `image.json` on a VM node: the launch spec's `runtime`).
    #[schema(value_type = Option<String>)]
    pub runtime_digest: Value,
    /// Launch input of the measurement: digest of the app's environment (null until built).
    #[schema(value_type = Option<String>)]
    pub environment_digest: Value,
    /// The lock the app's environment was packed from (what `mse deploy --rebuild-env` packs
    /// again); null until it is built, and for a pre-built venv.
    #[schema(value_type = Option<EnvLockView>)]
    pub environment_lock: Value,
    /// Where the node's SNI router listens.
    pub router_address: Option<String>,
    /// The node's mock PCCS, for verifying sim evidence (null for real TEEs).
    pub pccs_url: Option<String>,
}

/// `mse_launch::envlock::EnvLock`, the recipe of an app's environment (schema only: the node
/// serves the lock it packed the environment from).
#[derive(Serialize, ToSchema)]
pub struct EnvLockView {
    /// Lock version (1).
    pub version: u32,
    /// Pack rules (`mse-env-pack-v1`).
    pub rules: String,
    /// The Python the environment is for.
    pub python: EnvPythonView,
    /// Every wheel, sorted by file name.
    pub wheels: Vec<EnvWheelView>,
}

/// The Python of an [`EnvLockView`].
#[derive(Serialize, ToSchema)]
pub struct EnvPythonView {
    /// Full version (`3.11.7`).
    pub version: String,
    /// Absolute path of the interpreter (`bin/python` points to it).
    pub executable: String,
    /// `sysconfig` SOABI.
    pub soabi: String,
}

/// A wheel of an [`EnvLockView`].
#[derive(Serialize, ToSchema)]
pub struct EnvWheelView {
    /// Project name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 of the wheel file (hex).
    pub sha256: String,
    /// The wheel's file name.
    pub file: String,
}

/// `GET /apps/{id}/logs`: the last 64 kB of the app's output.
#[derive(Serialize, ToSchema)]
pub struct LogsView {
    /// The app's stdout and stderr interleaved, with the node's status notes (lossy UTF-8).
    pub stdout: String,
}

/// `GET /apps/{id}/metrics`: each metric as `[unix_seconds, value]`.
#[derive(Serialize, ToSchema)]
#[schema(as = Metrics)]
pub struct MetricsView(pub std::collections::BTreeMap<String, [f64; 2]>);

/// `GET /apps/default`: what `mse scaffold` fills in.
#[derive(Serialize, ToSchema)]
pub struct DefaultsView {
    /// The caller's project name.
    pub project: String,
    /// The first environment (null if none).
    pub docker: Option<String>,
    /// The first hardware tier (null if none).
    pub hardware: Option<String>,
}

/// `GET /image`: the VM guest image the node publishes, from which a client recomputes a VM
/// enclave's expected identity.
#[derive(Serialize, ToSchema)]
pub struct ImageView {
    /// SHA-256 of the exact `image.json` bytes (a launch spec's `runtime.vm.image_sha256`).
    pub image_sha256: String,
    /// `image.json` (kernel and initrd digests, command line, package lock).
    #[schema(value_type = Object)]
    pub image: Value,
    /// SHA-256 of the firmware file (null without `vm_firmware`).
    pub firmware_sha256: Option<String>,
    /// What `GET /image/{file}` serves.
    pub files: Vec<String>,
    /// The vCPU model of the node's VMs (part of an SEV-SNP launch digest).
    pub vcpu_type: String,
    /// The image's TDX reference values (null unless `[vm] tdx_mrtd`/`tdx_rtmr0..2` are set).
    pub tdx: Option<TdxView>,
}

/// TDX reference values, hex (48 bytes each).
#[derive(Serialize, ToSchema)]
pub struct TdxView {
    /// MRTD.
    pub mr_td: String,
    /// RTMR0, RTMR1, RTMR2.
    #[schema(min_items = 3, max_items = 3)]
    pub rtmrs: Vec<String>,
}

/// The `code` and `conf` parts of `POST /apps`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeployForm {
    /// The encrypted code package (an uncompressed tar).
    #[schema(value_type = String, format = Binary)]
    code: Vec<u8>,
    /// The deploy configuration (JSON).
    conf: crate::api::DeployConf,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A project token, or an access token from /oauth/token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, generated from the handlers' annotations and the types above.
pub fn spec() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(OpenApi)]
    #[openapi(
        info(title = "mse-node API", description = "The node's API (shape of the original MSE SaaS API)."),
        modifiers(&BearerAuth),
        paths(
            crate::api::create_app,
            crate::api::list_apps,
            crate::api::app_defaults,
            crate::api::get_app,
            crate::api::stop_app,
            crate::api::app_logs,
            crate::api::app_metrics,
            crate::api::projects,
            crate::api::hardwares,
            crate::api::hardware,
            crate::api::environments,
            crate::api::me,
            crate::oauth::token,
            crate::image_api::summary,
            crate::image_api::file,
            document,
        ),
    )]
    struct Doc;
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(spec).clone())
}
