//! Linux configfs-tsm (`/sys/kernel/config/tsm/report`): TDX and SEV-SNP guests.
//!
//! Protocol (Documentation/ABI/testing/configfs-tsm): mkdir a report entry, write `inblob`,
//! read `outblob`, and compare `generation` before and after to detect a concurrent writer;
//! rmdir the entry when done.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AttestError, Attester, io_err};
use crate::TeeKind;
use crate::evidence::EvidenceKind;

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The few filesystem operations configfs-tsm needs; the kernel answers them on a real guest,
/// tests answer them in memory.
pub trait ConfigFs: Send + Sync + std::fmt::Debug {
    /// Create the directory `path` (a new configfs-tsm report entry).
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Remove the directory `path`.
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Read the whole file `path`.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Write `data` to the file `path`.
    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default)]
pub struct StdFs;

impl ConfigFs for StdFs {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        std::fs::write(path, data)
    }
}

/// Requests reports through configfs-tsm.
#[derive(Debug, Clone)]
pub struct TsmAttester {
    dir: PathBuf,
    tee: EvidenceKind,
    fs: Arc<dyn ConfigFs>,
}

impl TsmAttester {
    /// `dir` is `/sys/kernel/config/tsm/report`; `tee` the guest kind found next to it.
    pub fn new(dir: impl Into<PathBuf>, tee: EvidenceKind) -> TsmAttester {
        TsmAttester::with_fs(dir, tee, Arc::new(StdFs))
    }

    /// Same, through another [`ConfigFs`] (tests).
    pub fn with_fs(
        dir: impl Into<PathBuf>,
        tee: EvidenceKind,
        fs: Arc<dyn ConfigFs>,
    ) -> TsmAttester {
        TsmAttester {
            dir: dir.into(),
            tee,
            fs,
        }
    }

    fn read_generation(&self, entry: &Path) -> Result<u64, AttestError> {
        let path = entry.join("generation");
        let text = self.fs.read(&path).map_err(io_err(&path))?;
        String::from_utf8_lossy(&text)
            .trim()
            .parse::<u64>()
            .map_err(|e| AttestError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
    }
}

/// Removes the report entry however the request ends.
struct Entry<'a> {
    path: PathBuf,
    fs: &'a dyn ConfigFs,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let _ = self.fs.remove_dir(&self.path);
    }
}

impl Attester for TsmAttester {
    fn kind(&self) -> TeeKind {
        // configfs-tsm serves the TDX and SEV-SNP guests only (see the provider check).
        match self.tee {
            EvidenceKind::SevSnp => TeeKind::SevSnp,
            _ => TeeKind::Tdx,
        }
    }

    fn tee_kind(&self) -> EvidenceKind {
        self.tee
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let n = ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("mse-{}-{n}", std::process::id()));
        self.fs.create_dir(&path).map_err(io_err(&path))?;
        let entry = Entry {
            path,
            fs: self.fs.as_ref(),
        };

        let provider_path = entry.path.join("provider");
        let provider = self
            .fs
            .read(&provider_path)
            .map_err(io_err(&provider_path))?;
        match String::from_utf8_lossy(&provider).trim() {
            "tdx_guest" | "sev_guest" => {}
            other => {
                return Err(AttestError::UnknownTsmProvider {
                    provider: other.to_owned(),
                });
            }
        }
        let inblob = entry.path.join("inblob");
        self.fs
            .write(&inblob, report_data)
            .map_err(io_err(&inblob))?;
        let before = self.read_generation(&entry.path)?;
        let outblob = entry.path.join("outblob");
        let report = self.fs.read(&outblob).map_err(io_err(&outblob))?;
        let after = self.read_generation(&entry.path)?;
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

    fn sealing_key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, AttestError> {
        Err(AttestError::SealingUnsupported {
            attester: self.kind(),
            why: match self.tee {
                EvidenceKind::SevSnp => {
                    "SEV-SNP derives it with the SNP_GET_DERIVED_KEY ioctl, not configfs-tsm"
                }
                _ => "TDX has no sealing key; it must come from a key broker",
            },
        })
    }
}
