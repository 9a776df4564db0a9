//! The token endpoint the original client (PyPI `mse-cli` 1.3) asks before every session.
//!
//! That client never sends its long-lived credential to the API: it keeps a refresh token in
//! `login.toml` and trades it at `POST {MSE_AUTH0_DOMAIN_NAME}/oauth/token`
//! (`grant_type=refresh_token`, form-encoded) for a short-lived JWT bearer, which it decodes
//! (without checking the signature) only to read `exp`. Pointing `MSE_AUTH0_DOMAIN_NAME` at the
//! node lets that client work without a stand-in: the refresh token is a project token of this
//! node, the answer an HS256 JWT signed with a key that only this node process holds (random at
//! start, so a restart revokes every access token; the client simply asks again next run).
//! The API accepts such a bearer as it accepts the project token itself (`verify_access_token`).

use std::sync::OnceLock;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::node::Node;
use crate::store::Project;

/// Lifetime of an access token. The original client refreshes once fewer than 1000 s remain,
/// so this must stay well above that.
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;

/// Issuer written into (and required in) every access token.
const ISSUER: &str = "mse-node";

type HmacSha256 = Hmac<Sha256>;

/// The signing key: 32 random bytes drawn once per node process, never written anywhere.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
        k
    })
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    /// The project id.
    sub: String,
    iat: i64,
    exp: i64,
}

fn now_s() -> i64 {
    crate::store::now_ms() / 1000
}

fn sign(input: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key()).expect("HMAC takes any key length");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A signed access token for `project`, valid `ACCESS_TOKEN_SECONDS` from `now` (Unix seconds).
fn issue(project: &Project, now: i64) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: project.id.clone(),
        iat: now,
        exp: now + ACCESS_TOKEN_SECONDS,
    };
    let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialise"));
    let input = format!("{header}.{payload}");
    let sig = B64.encode(sign(&input));
    format!("{input}.{sig}")
}

/// Why an access token was refused (never echoes the token).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or a header or claims that are not ours (HS256 JSON).
    #[error("malformed access token")]
    Malformed,
    /// Not signed by this node process (another node, or before a restart).
    #[error("access token signature does not verify")]
    BadSignature,
    /// Its `exp` has passed.
    #[error("access token expired")]
    Expired,
}

/// Whether `token` has the shape of an access token (three base64url parts), as opposed to a
/// project token (`mse_<hex>`).
pub fn looks_like_access_token(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The project id an access token was issued for, if its signature verifies under this
/// process's key and it has not expired at `now` (Unix seconds).
pub fn verify_access_token_at(token: &str, now: i64) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(key()).expect("HMAC takes any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let header: serde_json::Value = B64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(TokenError::Malformed);
    }
    let claims: Claims = B64
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(TokenError::Malformed);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims.sub)
}

/// `verify_access_token_at` now.
pub fn verify_access_token(token: &str) -> Result<String, TokenError> {
    verify_access_token_at(token, now_s())
}

/// The project an access token stands for: `None` when the token is forged, expired or its
/// project is gone (the caller answers all of these with the same 401).
pub fn project_for_access_token(
    node: &Node,
    token: &str,
) -> Result<Option<Project>, crate::store::StoreError> {
    let Ok(id) = verify_access_token(token) else {
        return Ok(None);
    };
    node.store.project(&id)
}

/// The form of a token request (RFC 6749 §6). `client_id` is accepted and ignored: the node
/// has one kind of client.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// Only `refresh_token` is supported.
    #[schema(pattern = "^refresh_token$")]
    grant_type: String,
    /// A project token of this node (`mse-node project create` / `mse-node project token`).
    #[schema(required = true, min_length = 1)]
    refresh_token: Option<String>,
    /// Any value (the original client sends its Auth0 client id).
    #[allow(dead_code)]
    client_id: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// HS256 JWT bearer for the API.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until `access_token` expires.
    expires_in: i64,
}

/// An error response (RFC 6749 §5.2); the original client prints `error_description`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenErrorResponse {
    /// `invalid_request`, `unsupported_grant_type` or `invalid_grant`.
    error: &'static str,
    /// One line for a human.
    error_description: String,
}

fn refuse(status: StatusCode, error: &'static str, description: impl Into<String>) -> Response {
    (
        status,
        Json(TokenErrorResponse {
            error,
            error_description: description.into(),
        }),
    )
        .into_response()
}

/// `POST /oauth/token`: trades a project token (as an OAuth refresh token) for a short-lived
/// signed access token.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A short-lived bearer for the API", body = TokenResponse),
        (status = 400, description = "Malformed request or unsupported grant", body = TokenErrorResponse),
        (status = 401, description = "Unknown refresh token", body = TokenErrorResponse),
        (status = 415, description = "Not a form", body = TokenErrorResponse),
    )
)]
pub async fn token(
    State(node): State<std::sync::Arc<Node>>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(FormRejection::InvalidFormContentType(_)) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "expected an application/x-www-form-urlencoded body",
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "malformed token request: expected grant_type and refresh_token",
            );
        }
    };
    if form.grant_type != "refresh_token" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=refresh_token is supported (the refresh token is a project token of this node)",
        );
    }
    let Some(refresh) = form.refresh_token.as_deref().filter(|t| !t.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing refresh_token",
        );
    };
    let project = match node.store.project_for_token(refresh) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "unknown refresh token: use a project token of this node",
            );
        }
        Err(e) => {
            tracing::error!("token request: {e}");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error; see the node's log",
            );
        }
    };
    tracing::info!(project = %project.name, "access token issued");
    Json(TokenResponse {
        access_token: issue(&project, now_s()),
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project {
            id: "0b7c3f4e-1111-4222-8333-944445555666".into(),
            name: "p".into(),
            created_at: 0,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = issue(&project(), 1000);
        assert!(looks_like_access_token(&t));
        assert_eq!(
            verify_access_token_at(&t, 1000).as_deref(),
            Ok("0b7c3f4e-1111-4222-8333-944445555666")
        );
        assert_eq!(
            verify_access_token_at(&t, 1000 + ACCESS_TOKEN_SECONDS - 1).as_deref(),
            Ok("0b7c3f4e-1111-4222-8333-944445555666")
        );
        assert_eq!(
            verify_access_token_at(&t, 1000 + ACCESS_TOKEN_SECONDS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = issue(&project(), 1000);
        let (head, sig) = t.rsplit_once('.').unwrap();
        let (h, payload) = head.split_once('.').unwrap();
        // Another subject with the old signature.
        let other =
            B64.encode(br#"{"iss":"mse-node","sub":"someone-else","iat":1000,"exp":99999999999}"#);
        assert_eq!(
            verify_access_token_at(&format!("{h}.{other}.{sig}"), 1000),
            Err(TokenError::BadSignature)
        );
        // A signature by another key.
        let mut mac = HmacSha256::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(head.as_bytes());
        let forged = B64.encode(mac.finalize().into_bytes());
        assert_eq!(
            verify_access_token_at(&format!("{head}.{forged}"), 1000),
            Err(TokenError::BadSignature)
        );
        // "alg": "none" and friends.
        assert_eq!(
            verify_access_token_at(&format!("{h}.{payload}."), 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_access_token_at("a.b", 1000),
            Err(TokenError::Malformed)
        );
    }
}
