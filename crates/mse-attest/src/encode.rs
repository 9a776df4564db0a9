//! Text encodings shared by the certificate, report and collateral code: PEM and RFC 3339.

use time::OffsetDateTime;

/// A Unix time outside the range that RFC 3339 can write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad time {unix}: {reason}")]
pub struct TimeError {
    /// The seconds since the Unix epoch that were given.
    pub unix: i64,
    /// Why they cannot be written.
    pub reason: String,
}

/// RFC 3339 UTC with a `Z` (as Intel writes its dates), whole seconds.
pub fn rfc3339(unix: i64) -> Result<String, TimeError> {
    let t = OffsetDateTime::from_unix_timestamp(unix).map_err(|e| TimeError {
        unix,
        reason: e.to_string(),
    })?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// PEM-encode one certificate (64-column base64, LF line ends, trailing LF).
pub fn to_pem(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der)
}

/// PEM-encode `der` under `label` (64-column base64, LF line ends, trailing LF).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}
