//! `secrets.json`: an arbitrary JSON object sent to the enclave once it is attested.

use std::path::{Path, PathBuf};

/// Why a secrets file was refused. No variant carries any of the file's values.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file could not be read (or is over [`crate::bounded::MAX_SECRETS_FILE`]).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The secrets file.
        path: PathBuf,
        /// The read (or size limit) error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Syntax {
        /// The secrets file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description of the syntax error, without its position.
        message: String,
    },
    /// The file is valid JSON but its top level is not an object.
    #[error("{}: must be a JSON object, got {got}", path.display())]
    NotObject {
        /// The secrets file.
        path: PathBuf,
        /// The kind of value found instead, e.g. "an array".
        got: &'static str,
    },
}

/// Loads a secrets file; it must be one JSON object. Its values never appear in an error.
pub fn load_secrets(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, SecretsError> {
    let text =
        crate::bounded::read_bounded(path, crate::bounded::MAX_SECRETS_FILE).map_err(|e| {
            SecretsError::Read {
                path: path.to_path_buf(),
                source: e.into(),
            }
        })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| SecretsError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: syntax_message(&e),
        })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(SecretsError::NotObject {
            path: path.to_path_buf(),
            got: match other {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            },
        }),
    }
}

/// serde_json's message without its trailing " at line L column C" (we print that as L:C).
/// Its messages describe the syntax only, never the file's values.
fn syntax_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
