//! Typed, bounds-checked parsers for the attestation evidence we accept.
//!
//! Every parser reads only what its length checks allow, so malformed input gives an
//! [`EvidenceError`] rather than a panic. Quotes may carry trailing bytes (TDX quotes read
//! from configfs-tsm often do); hex text with an optional `0x` prefix is accepted too.

mod reader;
pub mod sgx;
pub mod snp;
pub mod tdx;

use serde::Serialize;

pub use sgx::{CertificationData, QuoteHeader, SgxQuote, SgxReportBody};
pub use snp::{SnpReport, SnpSigningKey, SnpTcbVersion};
pub use tdx::{TdReport, TdxQuote};

/// Largest evidence we accept, binary or hex (real quotes are a few KiB).
pub const MAX_EVIDENCE_LEN: usize = 1 << 20;

/// The kind of trusted execution environment that produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EvidenceKind {
    /// Intel SGX enclave (DCAP quote v3).
    Sgx,
    /// Intel TDX trust domain (DCAP quote v4 or v5).
    Tdx,
    /// AMD SEV-SNP guest (attestation report).
    SevSnp,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceKind::Sgx => "SGX",
            EvidenceKind::Tdx => "TDX",
            EvidenceKind::SevSnp => "SEV-SNP",
        })
    }
}

/// Why a piece of evidence could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// No bytes.
    #[error("evidence is empty")]
    Empty,
    /// More than [`MAX_EVIDENCE_LEN`] bytes.
    #[error("evidence is too large: {len} bytes (limit {limit})")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Hex text that does not decode.
    #[error("evidence is not valid hex: {0}")]
    Hex(String),
    /// A structure ends before its fields do.
    #[error("{what} is truncated: need {need} bytes at offset {offset}, have {have}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Where the missing field starts.
        offset: usize,
        /// How many bytes were needed.
        need: usize,
        /// How many there were.
        have: usize,
    },
    /// Neither a DCAP quote nor an SEV-SNP report (`head`: the first bytes, hex).
    #[error("unrecognised evidence: first bytes {head} are not an SGX/TDX quote or SEV-SNP report")]
    UnknownKind {
        /// The first bytes (hex).
        head: String,
    },
    /// A known structure in a version we do not read.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// What it is.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Parsed evidence of any supported kind.
// Parsed once per verification and rarely moved: boxing would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// An SGX DCAP quote (v3).
    Sgx(SgxQuote),
    /// A TDX DCAP quote (v4 or v5).
    Tdx(TdxQuote),
    /// An SEV-SNP attestation report.
    SevSnp(SnpReport),
}

impl Evidence {
    /// Parse binary or hex evidence and detect its kind from the header.
    ///
    /// An SEV-SNP report starts with a small little-endian u32 version (2..=5); a DCAP quote
    /// starts with a u16 version (3 for SGX, 4/5 for TDX) followed by the attestation key type
    /// (2 = ECDSA P-256), so the two never collide.
    pub fn parse(bytes: &[u8]) -> Result<Evidence, EvidenceError> {
        let owned;
        let bytes = match decode_hex_if_text(bytes)? {
            Some(decoded) => {
                owned = decoded;
                &owned[..]
            }
            None => bytes,
        };
        if bytes.is_empty() {
            return Err(EvidenceError::Empty);
        }
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceError::TooLarge {
                len: bytes.len(),
                limit: MAX_EVIDENCE_LEN,
            });
        }
        if bytes.len() >= 4 {
            let v32 = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            if (2..=5).contains(&v32) {
                return SnpReport::parse(bytes).map(Evidence::SevSnp);
            }
        }
        if bytes.len() >= 2 {
            match u16::from_le_bytes([bytes[0], bytes[1]]) {
                3 => return SgxQuote::parse(bytes).map(Evidence::Sgx),
                4 | 5 => return TdxQuote::parse(bytes).map(Evidence::Tdx),
                _ => {}
            }
        }
        Err(EvidenceError::UnknownKind {
            head: hex::encode(&bytes[..bytes.len().min(8)]),
        })
    }

    /// The 64 bytes the TEE bound into the evidence on the attester's request.
    pub fn report_data(&self) -> &[u8; 64] {
        match self {
            Evidence::Sgx(q) => &q.body.report_data,
            Evidence::Tdx(q) => &q.report.report_data,
            Evidence::SevSnp(r) => &r.report_data,
        }
    }

    /// Which TEE produced it.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Evidence::Sgx(_) => EvidenceKind::Sgx,
            Evidence::Tdx(_) => EvidenceKind::Tdx,
            Evidence::SevSnp(_) => EvidenceKind::SevSnp,
        }
    }

    /// The code measurement a Policy pins: MRENCLAVE (SGX), MRTD (TDX), MEASUREMENT (SNP).
    pub fn measurement(&self) -> &[u8] {
        match self {
            Evidence::Sgx(q) => &q.body.mr_enclave,
            Evidence::Tdx(q) => &q.report.mr_td,
            Evidence::SevSnp(r) => &r.measurement,
        }
    }

    /// The enclave signer identity (MRSIGNER), which only SGX has.
    pub fn signer(&self) -> Option<&[u8]> {
        match self {
            Evidence::Sgx(q) => Some(&q.body.mr_signer),
            Evidence::Tdx(_) | Evidence::SevSnp(_) => None,
        }
    }

    /// Whether the TEE runs in a debug mode that lets the host read its memory.
    pub fn is_debug(&self) -> bool {
        match self {
            Evidence::Sgx(q) => q.body.is_debug(),
            Evidence::Tdx(q) => q.report.is_debug(),
            Evidence::SevSnp(r) => r.is_debug(),
        }
    }

    /// The exact bytes the evidence was parsed from (binary, after hex decoding).
    pub fn raw(&self) -> &[u8] {
        match self {
            Evidence::Sgx(q) => &q.raw,
            Evidence::Tdx(q) => &q.raw,
            Evidence::SevSnp(r) => &r.raw,
        }
    }
}

/// If `bytes` is hex text (optional `0x`, surrounding whitespace), decode it; if it is binary,
/// return `None`. Binary evidence never starts with an ASCII hex digit pair that is all hex.
fn decode_hex_if_text(bytes: &[u8]) -> Result<Option<Vec<u8>>, EvidenceError> {
    let text = bytes.trim_ascii();
    let (prefixed, digits) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let looks_hex = !digits.is_empty()
        && digits
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    if !looks_hex {
        return if prefixed {
            Err(EvidenceError::Hex(
                "`0x` prefix not followed by hex digits".into(),
            ))
        } else {
            Ok(None)
        };
    }
    if digits.len() > 2 * MAX_EVIDENCE_LEN + MAX_EVIDENCE_LEN / 8 {
        return Err(EvidenceError::TooLarge {
            len: digits.len() / 2,
            limit: MAX_EVIDENCE_LEN,
        });
    }
    let compact: Vec<u8> = digits
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    hex::decode(&compact)
        .map(Some)
        .map_err(|e| EvidenceError::Hex(e.to_string()))
}
