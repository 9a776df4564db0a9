//! Reads of files a user names (configuration, certificates, quotes, secrets) with a size limit
//! checked BEFORE reading: a regular file's size from its metadata, and anything else (a pipe,
//! `/dev/zero`) through `take(limit + 1)`, so an endless input fails after `limit` bytes instead
//! of filling memory. And [`quote`], which cuts a bad value to a short prefix for an error line.

use std::io::Read;
use std::path::Path;

/// Largest `mse.toml` (and other small configuration files).
pub const MAX_CONF_FILE: u64 = 1 << 20;
/// Largest certificate (or certificate chain) file.
pub const MAX_CERT_FILE: u64 = 1 << 20;
/// Largest secrets file (and sealed secrets file). The enclave's configuration server takes at
/// most 8 MiB in one payload, which may carry both: the secrets as JSON (at most their file's
/// size once re-serialized) and the sealed box in base64 (4/3 of its size), so 3 + 4 MiB fit.
pub const MAX_SECRETS_FILE: u64 = 3 << 20;

/// A file larger than its limit, or a read error.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    /// A regular file whose metadata size is over the limit (nothing was read).
    #[error("{size} bytes is over the {} limit for this file", human(*limit))]
    TooLarge {
        /// The file's size from its metadata, in bytes.
        size: u64,
        /// The limit that applied, in bytes.
        limit: u64,
    },
    /// A non-regular file (pipe, device) that gave more than `limit` bytes.
    #[error("more than the {} limit for this file", human(*limit))]
    Endless {
        /// The limit that applied, in bytes.
        limit: u64,
    },
    /// Opening or reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<BoundedError> for std::io::Error {
    fn from(e: BoundedError) -> std::io::Error {
        match e {
            BoundedError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// `n` bytes as "N MiB" / "N KiB" / "N bytes".
pub fn human(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Reads `path` whole if it holds at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedError> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > limit {
        return Err(BoundedError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut data = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        8192
    });
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(BoundedError::Endless { limit });
    }
    Ok(data)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_string(path: &Path, limit: u64) -> Result<String, BoundedError> {
    let data = read_bounded(path, limit)?;
    String::from_utf8(data).map_err(|_| {
        BoundedError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Most characters of a value an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// `value` in double quotes for an error message: whole when short, else its first
/// [`QUOTE_CHARS`] characters followed by `…` and its length, so that a 10 MB value gives a
/// short line.
pub fn quote(value: &str) -> String {
    let mut chars = value.char_indices();
    match chars.nth(QUOTE_CHARS) {
        None => format!("\"{value}\""),
        Some((at, _)) => format!(
            "\"{}…\" ({} characters)",
            &value[..at],
            value.chars().count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read_bounded(&small, 3).unwrap(), b"abc");
        assert_eq!(
            read_bounded(&small, 2).unwrap_err().to_string(),
            "3 bytes is over the 2 bytes limit for this file"
        );
        assert_eq!(
            read_bounded(Path::new("/dev/zero"), 1 << 20)
                .unwrap_err()
                .to_string(),
            "more than the 1 MiB limit for this file"
        );
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(quote("app"), "\"app\"");
        let long = "x".repeat(10_000_000);
        assert_eq!(
            quote(&long),
            format!("\"{}…\" (10000000 characters)", "x".repeat(64))
        );
    }
}
