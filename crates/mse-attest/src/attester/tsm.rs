//! Linux configfs-tsm (`/sys/kernel/config/tsm/report`): TDX and SEV-SNP guests.
//!
//! Protocol (Documentation/ABI/testing/configfs-tsm): mkdir a report entry, write `inblob`,
//! read `outblob`, and compare `generation` before and after to detect a concurrent writer;
//! rmdir the entry when done.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AttestError, Attester, AttesterKind, io_err};
use crate::evidence::TeeKind;

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Requests reports through configfs-tsm.
#[derive(Debug, Clone)]
pub struct TsmAttester {
    dir: PathBuf,
    tee: TeeKind,
}

impl TsmAttester {
    /// `dir` is `/sys/kernel/config/tsm/report`; `tee` the guest kind found next to it.
    pub fn new(dir: impl Into<PathBuf>, tee: TeeKind) -> TsmAttester {
        TsmAttester {
            dir: dir.into(),
            tee,
        }
    }
}

fn read_generation(entry: &Path) -> Result<u64, AttestError> {
    let path = entry.join("generation");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    text.trim().parse::<u64>().map_err(|e| AttestError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Removes the report entry however the request ends.
struct Entry(PathBuf);

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

impl Attester for TsmAttester {
    fn kind(&self) -> AttesterKind {
        AttesterKind::Tsm
    }

    fn tee_kind(&self) -> TeeKind {
        self.tee
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let n = ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let entry = Entry(self.dir.join(format!("mse-{}-{n}", std::process::id())));
        std::fs::create_dir(&entry.0).map_err(io_err(&entry.0))?;

        let provider_path = entry.0.join("provider");
        let provider = std::fs::read_to_string(&provider_path).map_err(io_err(&provider_path))?;
        match provider.trim() {
            "tdx_guest" | "sev_guest" => {}
            other => {
                return Err(AttestError::UnknownTsmProvider {
                    provider: other.to_owned(),
                });
            }
        }
        let inblob = entry.0.join("inblob");
        std::fs::write(&inblob, report_data).map_err(io_err(&inblob))?;
        let before = read_generation(&entry.0)?;
        let outblob = entry.0.join("outblob");
        let report = std::fs::read(&outblob).map_err(io_err(&outblob))?;
        let after = read_generation(&entry.0)?;
        if before != after {
            return Err(AttestError::TsmRace { before, after });
        }
        if report.is_empty() {
            return Err(AttestError::EmptyEvidence {
                what: outblob.display().to_string(),
            });
        }
        Ok(report)
    }
}
