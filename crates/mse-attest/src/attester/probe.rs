//! What TEE interfaces this host exposes. The filesystem root is injectable so tests can fake
//! a host with `/dev/sgx_enclave`, Gramine's `/dev/attestation` or configfs-tsm.

use std::path::{Path, PathBuf};

use crate::evidence::EvidenceKind;

/// A real TEE device found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealTee {
    /// The path that revealed it.
    pub path: PathBuf,
}

/// Looks for TEE devices under a root directory (`/` on a real host).
#[derive(Debug, Clone)]
pub struct HostProbe {
    root: PathBuf,
}

/// Device nodes and directories whose presence means real TEE hardware.
const REAL_TEE_PATHS: &[&str] = &[
    "dev/sgx_enclave",
    "dev/sgx/enclave",
    "dev/tdx_guest",
    "dev/sev-guest",
    "sys/kernel/config/tsm/report",
    "dev/attestation/quote",
];

impl HostProbe {
    /// Probe the real host.
    pub fn system() -> HostProbe {
        HostProbe {
            root: PathBuf::from("/"),
        }
    }

    /// Probe a fake host rooted at `root` (tests).
    pub fn with_root(root: impl Into<PathBuf>) -> HostProbe {
        HostProbe { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The first real TEE device present, if any: the sim attester refuses to run then.
    pub fn real_tee(&self) -> Option<RealTee> {
        REAL_TEE_PATHS
            .iter()
            .map(|rel| self.path(rel))
            .find(|p| p.exists())
            .map(|path| RealTee { path })
    }

    /// Gramine's pseudo-filesystem directory (`/dev/attestation`).
    pub fn gramine_dir(&self) -> PathBuf {
        self.path("dev/attestation")
    }

    /// Whether Gramine's attestation interface is present.
    pub fn has_gramine(&self) -> bool {
        self.gramine_dir().join("quote").exists()
    }

    /// configfs-tsm report directory.
    pub fn tsm_dir(&self) -> PathBuf {
        self.path("sys/kernel/config/tsm/report")
    }

    /// The TEE behind configfs-tsm, told by the guest device next to it.
    pub fn tsm_tee(&self) -> Option<EvidenceKind> {
        if !self.tsm_dir().is_dir() {
            return None;
        }
        if self.path("dev/tdx_guest").exists() {
            Some(EvidenceKind::Tdx)
        } else if self.path("dev/sev-guest").exists() {
            Some(EvidenceKind::SevSnp)
        } else {
            None
        }
    }

    /// The root this probe looks under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
