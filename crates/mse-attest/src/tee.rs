//! The one TEE kind, spelled the same in node.toml, the node API, the CLI, the enclave and the
//! attesters (re-exported as `mse_launch::TeeKind`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which trusted execution environment runs an app (and produces its evidence).
///
/// Serialised as `"sim"`, `"sim-snp"`, `"sev-snp"`, `"tdx"`, `"gramine-sgx"` (strict: a spec has
/// one spelling). [`FromStr`] (node.toml, command lines) also reads today's `"gramine"` as
/// `"gramine-sgx"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TeeKind {
    /// Simulated SGX: a software quoting enclave signing real DCAP v3 quotes with a mock Intel
    /// PKI. No protection at all; every verifier must opt in to accept it.
    #[serde(rename = "sim")]
    Sim,
    /// Simulated SEV-SNP: real SNP reports signed by a software firmware with a mock AMD chain
    /// (VM launcher only).
    #[serde(rename = "sim-snp")]
    SimSnp,
    /// AMD SEV-SNP confidential VM.
    #[serde(rename = "sev-snp")]
    SevSnp,
    /// Intel TDX confidential VM.
    #[serde(rename = "tdx")]
    Tdx,
    /// Intel SGX enclave under Gramine.
    #[serde(rename = "gramine-sgx")]
    GramineSgx,
}

/// Every kind, in the order the documentation lists them.
const ALL: [TeeKind; 5] = [
    TeeKind::Sim,
    TeeKind::SimSnp,
    TeeKind::SevSnp,
    TeeKind::Tdx,
    TeeKind::GramineSgx,
];

impl TeeKind {
    /// The canonical spelling (what serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            TeeKind::Sim => "sim",
            TeeKind::SimSnp => "sim-snp",
            TeeKind::SevSnp => "sev-snp",
            TeeKind::Tdx => "tdx",
            TeeKind::GramineSgx => "gramine-sgx",
        }
    }

    /// Whether this kind is simulated (no hardware protection; its evidence is refused unless
    /// the verifier allows simulation).
    pub fn is_simulated(self) -> bool {
        matches!(self, TeeKind::Sim | TeeKind::SimSnp)
    }

    /// Every kind.
    pub fn all() -> &'static [TeeKind] {
        &ALL
    }
}

impl fmt::Display for TeeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TEE name that is none of [`TeeKind`]'s spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown TEE {0:?} (expected one of \"sim\", \"sim-snp\", \"sev-snp\", \"tdx\", \"gramine-sgx\")"
)]
pub struct UnknownTee(pub String);

impl FromStr for TeeKind {
    type Err = UnknownTee;

    fn from_str(s: &str) -> Result<TeeKind, UnknownTee> {
        if s == "gramine" {
            return Ok(TeeKind::GramineSgx);
        }
        ALL.iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownTee(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_serde_and_from_str() {
        for &k in TeeKind::all() {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<TeeKind>(&json).unwrap(), k);
            assert_eq!(k.as_str().parse::<TeeKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
        }
        assert!(serde_json::from_str::<TeeKind>("\"gramine\"").is_err());
        assert_eq!("gramine".parse::<TeeKind>().unwrap(), TeeKind::GramineSgx);
        assert_eq!(
            "tsm".parse::<TeeKind>().unwrap_err().to_string(),
            "unknown TEE \"tsm\" (expected one of \"sim\", \"sim-snp\", \"sev-snp\", \"tdx\", \"gramine-sgx\")"
        );
        assert!(TeeKind::Sim.is_simulated() && TeeKind::SimSnp.is_simulated());
        assert!(!TeeKind::SevSnp.is_simulated() && !TeeKind::Tdx.is_simulated());
        assert!(!TeeKind::GramineSgx.is_simulated());
    }
}
