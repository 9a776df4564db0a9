//! Every API answer with an error status carries a JSON body `{"error": "<one line>"}`, also the
//! rejections that axum and its extractors produce themselves as plain text or empty bodies
//! (a path parameter that is not UTF-8, a wrong content type, an oversized body…), so that a
//! client only ever has one error shape to read.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Longest error text kept from a rejection's body.
const MAX_MESSAGE: usize = 300;

/// A `map_response` middleware: error answers that are not JSON become JSON.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        match text.char_indices().nth(MAX_MESSAGE) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text,
        }
    };
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
