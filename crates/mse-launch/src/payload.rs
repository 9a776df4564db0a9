//! The configuration payload: what `mse` (deploy, localtest) POSTs to an attested enclave's
//! configuration server, and what `mse-enclave` parses. One type for both ends.
//!
//! JSON object, the original's `ConfigurationPayload`: `uuid` (required, the app id),
//! `code_secret_key` (hex, 32 bytes), `app_secrets` (any JSON), `app_sealed_secrets` (base64url
//! sealed box to the enclave's X25519 key), `ssl_private_key` (PEM, owner mode). Absent
//! optional fields are not written; unknown fields are refused.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The configuration payload. Its secrets are zeroed on drop and never printed by `Debug`.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfPayload {
    /// The app id; the enclave refuses any other.
    pub uuid: String,
    /// The code package's key, 64 hex characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_secret_key: Option<Zeroizing<String>>,
    /// `secrets.json`, as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secrets: Option<serde_json::Value>,
    /// The sealed secrets: a libsodium sealed box to the enclave's X25519 key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_sealed_secrets: Option<String>,
    /// Owner mode: the private key of the owner's certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_private_key: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for ConfPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfPayload")
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl ConfPayload {
    /// The JSON body (compact), zeroed on drop.
    pub fn to_body(&self) -> Zeroizing<Vec<u8>> {
        // Strings and JSON values only: serialisation cannot fail.
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_not_written_and_debug_hides_secrets() {
        let p = ConfPayload {
            uuid: "u".into(),
            code_secret_key: Some(Zeroizing::new("ab".repeat(32))),
            ..ConfPayload::default()
        };
        assert_eq!(
            String::from_utf8(p.to_body().to_vec()).unwrap(),
            format!(r#"{{"uuid":"u","code_secret_key":"{}"}}"#, "ab".repeat(32))
        );
        assert_eq!(format!("{p:?}"), r#"ConfPayload { uuid: "u", .. }"#);
        let back: ConfPayload = serde_json::from_slice(&p.to_body()).unwrap();
        assert_eq!(
            back.code_secret_key.as_deref().map(String::as_str),
            Some(&*"ab".repeat(32))
        );
        assert!(serde_json::from_str::<ConfPayload>(r#"{"uuid":"u","x":1}"#).is_err());
    }
}
