//! The node publishes the guest image its VM enclaves boot (issue "Confidential-VM enclaves",
//! point 4), so that a client recomputes the expected measurements from the files themselves
//! instead of trusting the node's word:
//!
//! - `GET /image`: `{"image_sha256", "image": <image.json>, "firmware_sha256", "files"}` —
//!   `image_sha256` is the SHA-256 of the exact `image.json` bytes (the image identity, a
//!   LaunchSpec's `runtime.vm.image_sha256`), `firmware_sha256` that of the configured firmware
//!   file (null without one), `vcpu_type` the vCPU model its VMs get (an SEV-SNP launch digest
//!   depends on it), `tdx` the TDX reference values of the image (`{"mr_td", "rtmrs": [3]}`,
//!   hex; null unless `[vm] tdx_mrtd`/`tdx_rtmr0..2` are configured);
//! - `GET /image/vmlinuz`, `/image/initrd.img`, `/image/image.json`, `/image/firmware`: the bytes.
//!
//! Public data, no token (like `/pccs`): anyone checking an app's evidence needs it. Files are
//! read at each request (a rebuilt image is served at once) and streamed; the node computes no
//! digest of the kernel or initrd for the client: the client does.

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::NodeConfig;
use crate::openapi::{ImageView, TdxView};

/// The image files a client may fetch, by the name in the URL.
pub const FILES: [&str; 3] = ["vmlinuz", "initrd.img", "image.json"];

#[derive(Clone)]
pub(crate) struct Published {
    dir: Option<PathBuf>,
    firmware: Option<PathBuf>,
    vcpu_type: String,
    tdx: Option<crate::config::TdxReference>,
}

/// The `/image` routes for a node configured with `vm_image` / `vm_firmware` (each optional:
/// without `vm_image` they answer 404 "this node has no VM image").
pub fn router(cfg: &NodeConfig) -> Router {
    let state = Published {
        dir: cfg.vm_image.clone(),
        firmware: cfg.vm_firmware.clone(),
        vcpu_type: cfg.vm.vcpu_type.clone(),
        tdx: cfg.vm.tdx.clone(),
    };
    Router::new()
        .route("/image", get(summary))
        .route("/image/{file}", get(file))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Logs why a configured file cannot be served and answers 503 with `message`.
fn unavailable(
    route: &str,
    path: &std::path::Path,
    e: impl std::fmt::Display,
    message: impl Into<String>,
) -> Response {
    tracing::error!("{route}: {}: {e}", path.display());
    error(StatusCode::SERVICE_UNAVAILABLE, message)
}

fn no_image() -> Response {
    error(StatusCode::NOT_FOUND, "this node has no VM image")
}

/// `GET /image`: the published image's digests and settings.
#[utoipa::path(
    get,
    path = "/image",
    tag = "image",
    responses(
        (status = 200, description = "The published VM image", body = crate::openapi::ImageView),
        (status = 404, description = "This node has no VM image", body = crate::openapi::ErrorBody),
        (status = 503, description = "The configured image or firmware is unreadable or invalid", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn summary(State(p): State<Published>) -> Response {
    let Some(dir) = &p.dir else {
        return no_image();
    };
    let path = dir.join("image.json");
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) => {
            return unavailable(
                "GET /image",
                &path,
                e,
                "the node's image.json is unreadable",
            );
        }
    };
    let image = match mse_launch::image::ImageManifest::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => return unavailable("GET /image", &path, e, "the node's image.json is invalid"),
    };
    let firmware_sha256 = match &p.firmware {
        None => None,
        Some(f) => match sha256_file(f.clone()).await {
            Ok(h) => Some(h),
            Err(e) => {
                return unavailable("GET /image", f, e, "the node's firmware is unreadable");
            }
        },
    };
    let mut files: Vec<&str> = FILES.to_vec();
    if p.firmware.is_some() {
        files.push("firmware");
    }
    axum::Json(ImageView {
        image_sha256: hex::encode(Sha256::digest(&bytes)),
        image: serde_json::to_value(&image).unwrap_or_default(),
        firmware_sha256,
        files: files.into_iter().map(str::to_owned).collect(),
        vcpu_type: p.vcpu_type,
        tdx: p.tdx.as_ref().map(|t| TdxView {
            mr_td: hex::encode(t.mr_td),
            rtmrs: t.rtmrs.iter().map(hex::encode).collect(),
        }),
    })
    .into_response()
}

async fn sha256_file(path: PathBuf) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || mse_launch::process::file_sha256(&path).map(|d| d.to_hex()))
        .await
        .map_err(std::io::Error::other)?
}

/// `GET /image/{file}`: one published file, streamed.
#[utoipa::path(
    get,
    path = "/image/{file}",
    tag = "image",
    params(("file" = String, Path, description = "vmlinuz, initrd.img, image.json or firmware")),
    responses(
        (status = 200, description = "The file's bytes (image.json as JSON)", content(
            (Vec<u8> = "application/octet-stream"),
            (Object = "application/json"),
        )),
        (status = 404, description = "No such file, or no VM image or firmware on this node", body = crate::openapi::ErrorBody),
        (status = 503, description = "The configured file is unreadable", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn file(State(p): State<Published>, Path(name): Path<String>) -> Response {
    let path = match name.as_str() {
        "firmware" => match &p.firmware {
            Some(f) => f.clone(),
            None => return error(StatusCode::NOT_FOUND, "this node has no VM firmware"),
        },
        n if FILES.contains(&n) => match &p.dir {
            Some(d) => d.join(n),
            None => return no_image(),
        },
        _ => return error(StatusCode::NOT_FOUND, "image file not found"),
    };
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return unavailable(
                &format!("GET /image/{name}"),
                &path,
                e,
                format!("the node's {name} is unreadable"),
            );
        }
    };
    let len = f.metadata().await.map(|m| m.len()).ok();
    let kind = if name == "image.json" {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut resp = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
}
