//! SGX under Gramine: write `/dev/attestation/user_report_data`, read `/dev/attestation/quote`.

use std::path::PathBuf;

use super::{AttestError, Attester, io_err};
use crate::TeeKind;
use crate::evidence::EvidenceKind;

/// Gramine's quotes are at most this large (SGX_QUOTE_MAX_SIZE).
const MAX_QUOTE: u64 = 8192;

/// Reads DCAP quotes from Gramine's attestation pseudo-filesystem.
#[derive(Debug, Clone)]
pub struct GramineAttester {
    dir: PathBuf,
}

impl GramineAttester {
    /// `dir` is `/dev/attestation` inside a Gramine enclave.
    pub fn new(dir: impl Into<PathBuf>) -> GramineAttester {
        GramineAttester { dir: dir.into() }
    }
}

impl Attester for GramineAttester {
    fn kind(&self) -> TeeKind {
        TeeKind::GramineSgx
    }

    fn tee_kind(&self) -> EvidenceKind {
        EvidenceKind::Sgx
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let type_path = self.dir.join("attestation_type");
        let found = std::fs::read_to_string(&type_path).map_err(io_err(&type_path))?;
        if found.trim() != "dcap" {
            return Err(AttestError::GramineNotDcap {
                found: found.trim().to_owned(),
            });
        }
        let urd = self.dir.join("user_report_data");
        std::fs::write(&urd, report_data).map_err(io_err(&urd))?;
        let quote_path = self.dir.join("quote");
        let file = std::fs::File::open(&quote_path).map_err(io_err(&quote_path))?;
        let mut quote = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_QUOTE), &mut quote)
            .map_err(io_err(&quote_path))?;
        if quote.is_empty() {
            return Err(AttestError::EmptyEvidence {
                what: quote_path.display().to_string(),
            });
        }
        Ok(quote)
    }

    /// Gramine's MRENCLAVE-bound SGX sealing key (`/dev/attestation/keys/_sgx_mrenclave`).
    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError> {
        let path = self.dir.join("keys").join("_sgx_mrenclave");
        let key = zeroize::Zeroizing::new(std::fs::read(&path).map_err(io_err(&path))?);
        if key.len() != 16 {
            return Err(AttestError::BadSealingKey {
                path: path.display().to_string(),
                len: key.len(),
            });
        }
        Ok(key)
    }
}
