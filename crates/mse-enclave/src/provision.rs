//! Provisioning: the owner's configuration payload, checked completely before anything is
//! written (unlike the original, which wrote secrets before checking the uuid).
//!
//! Payload (JSON object, the original's `ConfigurationPayload`): `uuid` (required, must equal
//! `--id`), `code_secret_key` (hex, 32 bytes), `app_secrets` (any JSON), `app_sealed_secrets`
//! (base64url, padding optional: a sealed box to the enclave's X25519 key whose plaintext is a
//! JSON object, possibly holding `code_secret_key`), `ssl_private_key` (PEM; required in owner
//! mode, refused in self mode). Unknown fields are refused.
//!
//! Stored: `app_secrets` as JSON in $SECRETS_PATH, the opened sealed object in
//! $SEALED_SECRETS_PATH without its `code_secret_key` (the app never needs its own code key), the
//! decrypted code in $MODULE_PATH. The owner's TLS key stays in memory only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use mse_crypto::{CodeKey, UnpackLimits, X25519KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Largest configuration payload accepted.
pub const MAX_PAYLOAD_BYTES: usize = 8 << 20;

/// Name of the staging directory inside $MODULE_PATH while the code is decrypted.
const STAGING: &str = ".mse-staging";

/// Why a payload was refused: one line, never a secret, sent back with the 401.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Not the payload's JSON shape (never quoting a value).
    #[error("payload is not valid JSON: {0}")]
    Json(String),
    /// Another app's id.
    #[error("uuid {0:?} does not match this enclave's id")]
    WrongUuid(String),
    /// A key that is not 32 bytes of hex.
    #[error("{0}: expected 64 hex characters (a 32-byte key)")]
    BadKey(&'static str),
    /// Sealed secrets not in base64url.
    #[error("app_sealed_secrets is not base64url")]
    SealedNotBase64,
    /// Sealed to another key.
    #[error("app_sealed_secrets cannot be opened with this enclave's key")]
    SealedNotOpened,
    /// Sealed secrets that are not an object.
    #[error("app_sealed_secrets does not hold a JSON object")]
    SealedNotObject,
    /// Sealed secrets that are not JSON (where).
    #[error("app_sealed_secrets is not valid JSON at line {line} column {column}")]
    SealedNotJson {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// No code key anywhere.
    #[error("no code_secret_key (neither in the payload nor in app_sealed_secrets)")]
    NoCodeKey,
    /// Owner mode without the owner's key.
    #[error("ssl_private_key is required: this enclave serves the owner's certificate")]
    MissingSslKey,
    /// A key in self mode.
    #[error("ssl_private_key is not accepted: this enclave serves its RA-TLS certificate")]
    UnexpectedSslKey,
    /// A key that is not PEM.
    #[error("ssl_private_key is not a PEM private key")]
    BadSslKey,
    /// A key of another certificate.
    #[error("ssl_private_key does not match the certificate given with --certificate")]
    SslKeyMismatch,
    /// The code key does not open the package.
    #[error("the code key does not decrypt the package: {0}")]
    Package(#[source] mse_crypto::UnpackError),
    /// The package changed under the enclave.
    #[error("the package file changed after it was measured")]
    PackageChanged,
    /// A second configuration.
    #[error("this enclave is already configured")]
    AlreadyConfigured,
    /// Writing the secrets or the code failed.
    #[error("cannot store the configuration: {0}")]
    Store(String),
}

/// The payload as sent, before any check beyond JSON shape (the type `mse` sends).
pub use mse_launch::ConfPayload as Payload;

/// Parse an untrusted payload (no size check here: the server limits the body).
pub fn parse_payload(body: &[u8]) -> Result<Payload, ProvisionError> {
    serde_json::from_slice(body).map_err(json_error)
}

/// serde quotes the offending value in type and value errors ("invalid type: integer `1…`"):
/// a mistyped secret must not reach the log (which the node's operator reads), so only where.
fn json_error(e: serde_json::Error) -> ProvisionError {
    let msg = e.to_string();
    if e.classify() == serde_json::error::Category::Data
        && (msg.starts_with("invalid type") || msg.starts_with("invalid value"))
    {
        return ProvisionError::Json(format!(
            "a field has the wrong type or value at line {} column {}",
            e.line(),
            e.column()
        ));
    }
    ProvisionError::Json(msg)
}

fn parse_key(field: &'static str, text: &str) -> Result<CodeKey, ProvisionError> {
    CodeKey::from_hex(text.trim()).map_err(|_| ProvisionError::BadKey(field))
}

/// The TLS mode of the app, as far as provisioning is concerned.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The app serves the RA-TLS certificate.
    SelfSigned,
    /// The app serves this owner's chain; the payload must bring the matching key.
    Owner(Vec<CertificateDer<'static>>),
}

/// What a successful provisioning leaves for the run: the owner's key in owner mode.
pub struct Provisioned {
    /// Owner mode: the owner's certificate key.
    pub ssl_key: Option<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioned")
            .field("ssl_key", &self.ssl_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Checks and applies payloads for one enclave.
pub struct Provisioner {
    /// The app id the payload must name.
    pub id: String,
    /// The encrypted package.
    pub package: PathBuf,
    /// SHA-256 of the package as measured at start: the bytes decrypted must be those.
    pub package_digest: [u8; 32],
    /// The enclave's key pair sealed secrets are sealed to.
    pub x25519: Arc<X25519KeyPair>,
    /// Self or owner TLS mode.
    pub mode: Mode,
    /// Where `app_secrets` go ($SECRETS_PATH).
    pub secrets_path: PathBuf,
    /// Where the opened sealed secrets go ($SEALED_SECRETS_PATH).
    pub sealed_secrets_path: PathBuf,
    /// Where the code is decrypted ($MODULE_PATH).
    pub module_path: PathBuf,
    /// Bounds of the package unpacking.
    pub limits: UnpackLimits,
}

/// Everything checked, ready to be written.
struct Checked {
    code_key: CodeKey,
    app_secrets: Option<Vec<u8>>,
    sealed_secrets: Option<Zeroizing<Vec<u8>>>,
    ssl_key: Option<PrivateKeyDer<'static>>,
}

impl Provisioner {
    /// Check `body` completely, decrypt the code, then write the secrets and move the code into
    /// $MODULE_PATH. On any error nothing is left behind.
    pub fn provision(&self, body: &[u8]) -> Result<Provisioned, ProvisionError> {
        let payload = parse_payload(body)?;
        let checked = self.check(payload)?;
        if dir_has_entries(&self.module_path) {
            return Err(ProvisionError::AlreadyConfigured);
        }
        let staging = self.module_path.join(STAGING);
        let result = self.apply(&checked, &staging);
        let _ = fs::remove_dir_all(&staging);
        if result.is_err() {
            self.rollback();
        }
        result?;
        Ok(Provisioned {
            ssl_key: checked.ssl_key,
        })
    }

    fn check(&self, payload: Payload) -> Result<Checked, ProvisionError> {
        if payload.uuid != self.id {
            return Err(ProvisionError::WrongUuid(payload.uuid));
        }
        let mut code_key = payload
            .code_secret_key
            .as_deref()
            .map(|k| parse_key("code_secret_key", k))
            .transpose()?;
        let sealed_secrets = match payload.app_sealed_secrets.as_deref() {
            None => None,
            Some(text) => {
                let engine = GeneralPurpose::new(
                    &base64::alphabet::URL_SAFE,
                    GeneralPurposeConfig::new()
                        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
                );
                let sealed = engine
                    .decode(text.trim())
                    .map_err(|_| ProvisionError::SealedNotBase64)?;
                let plain = Zeroizing::new(
                    self.x25519
                        .open(&sealed)
                        .map_err(|_| ProvisionError::SealedNotOpened)?,
                );
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&plain).map_err(|e| {
                        // serde's message may quote the plaintext: keep only its position.
                        if e.is_data() {
                            ProvisionError::SealedNotObject
                        } else {
                            ProvisionError::SealedNotJson {
                                line: e.line(),
                                column: e.column(),
                            }
                        }
                    })?;
                // The code key is for this runtime, not for the app: it is not written out.
                if let Some(value) = object.remove("code_secret_key") {
                    let text = value
                        .as_str()
                        .ok_or(ProvisionError::BadKey("app_sealed_secrets.code_secret_key"))?;
                    let sealed_key = parse_key("app_sealed_secrets.code_secret_key", text)?;
                    // A key in the payload itself takes precedence, as in the original.
                    code_key.get_or_insert(sealed_key);
                }
                Some(Zeroizing::new(
                    serde_json::to_vec(&object)
                        .map_err(|e| ProvisionError::Store(e.to_string()))?,
                ))
            }
        };
        let code_key = code_key.ok_or(ProvisionError::NoCodeKey)?;
        let ssl_key = match (&self.mode, payload.ssl_private_key.as_deref()) {
            (Mode::SelfSigned, None) => None,
            (Mode::SelfSigned, Some(_)) => return Err(ProvisionError::UnexpectedSslKey),
            (Mode::Owner(_), None) => return Err(ProvisionError::MissingSslKey),
            (Mode::Owner(chain), Some(pem)) => Some(check_owner_key(chain, pem)?),
        };
        let app_secrets = payload
            .app_secrets
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ProvisionError::Store(e.to_string()))?;
        Ok(Checked {
            code_key,
            app_secrets,
            sealed_secrets,
            ssl_key,
        })
    }

    fn apply(&self, checked: &Checked, staging: &Path) -> Result<(), ProvisionError> {
        let store =
            |what: &str, e: &dyn std::fmt::Display| ProvisionError::Store(format!("{what}: {e}"));
        let _ = fs::remove_dir_all(staging);
        fs::create_dir_all(staging).map_err(|e| store(&staging.display().to_string(), &e))?;
        let code = staging.join("code");
        let file = File::open(&self.package)
            .map_err(|e| store(&self.package.display().to_string(), &e))?;
        let mut reader = HashingReader {
            inner: BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        let unpacked =
            mse_crypto::unpack_package(&mut reader, &checked.code_key, &code, &self.limits);
        // The host could swap the package between measurement and now: hash what was read
        // (and the tar's trailer) and compare with the measured digest before using any of it.
        let _ = io::copy(&mut reader, &mut io::sink());
        if <[u8; 32]>::from(reader.hasher.finalize()) != self.package_digest {
            return Err(ProvisionError::PackageChanged);
        }
        unpacked.map_err(ProvisionError::Package)?;
        if let Some(bytes) = &checked.app_secrets {
            write_private(&self.secrets_path, bytes)
                .map_err(|e| store(&self.secrets_path.display().to_string(), &e))?;
        }
        if let Some(bytes) = &checked.sealed_secrets {
            write_private(&self.sealed_secrets_path, bytes)
                .map_err(|e| store(&self.sealed_secrets_path.display().to_string(), &e))?;
        }
        // Same filesystem: each rename is atomic, and the code was fully verified above.
        for entry in fs::read_dir(&code).map_err(|e| store(&code.display().to_string(), &e))? {
            let entry = entry.map_err(|e| store(&code.display().to_string(), &e))?;
            let to = self.module_path.join(entry.file_name());
            fs::rename(entry.path(), &to).map_err(|e| store(&to.display().to_string(), &e))?;
        }
        Ok(())
    }

    /// Undo a partial apply: the secrets files and whatever reached $MODULE_PATH.
    fn rollback(&self) {
        let _ = fs::remove_file(&self.secrets_path);
        let _ = fs::remove_file(&self.sealed_secrets_path);
        if let Ok(entries) = fs::read_dir(&self.module_path) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: io::Read> io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn dir_has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut it| it.next().is_some())
}

/// The owner's key must be a PEM private key whose public half is the leaf certificate's.
fn check_owner_key(
    chain: &[CertificateDer<'static>],
    pem: &str,
) -> Result<PrivateKeyDer<'static>, ProvisionError> {
    let key =
        PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| ProvisionError::BadSslKey)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| ProvisionError::BadSslKey)?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    certified
        .keys_match()
        .map_err(|_| ProvisionError::SslKeyMismatch)?;
    Ok(key)
}

/// Read the owner's certificate chain (PEM) given with `--certificate`.
pub fn read_owner_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use anyhow::Context;
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate chain: {e}", path.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: holds no CERTIFICATE", path.display());
    }
    Ok(chain)
}

/// Write `bytes` to `path` (mode 0600) through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_shapes() {
        assert!(parse_payload(br#"{"uuid":"x"}"#).is_ok());
        assert!(
            parse_payload(br#"{"uuid":"x","app_secrets":null,"code_secret_key":null}"#).is_ok()
        );
        assert_eq!(
            parse_payload(b"{").unwrap_err().to_string(),
            "payload is not valid JSON: EOF while parsing an object at line 1 column 1"
        );
        assert!(
            parse_payload(br#"{"uuid":"x","colour":1}"#)
                .unwrap_err()
                .to_string()
                .starts_with("payload is not valid JSON: unknown field `colour`")
        );
        assert!(
            parse_payload(br#"{"code_secret_key":"00"}"#)
                .unwrap_err()
                .to_string()
                .starts_with("payload is not valid JSON: missing field `uuid`")
        );
        // A secret sent with the wrong JSON type is not echoed.
        let err = parse_payload(br#"{"uuid":"x","code_secret_key":424242424242}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "payload is not valid JSON: a field has the wrong type or value at line 1 column 42"
        );
    }
}
