//! The verification report: every check's outcome, then the verdict.

use serde::{Serialize, Serializer};

use crate::evidence::TeeKind;

/// Why evidence is not trusted. Each variant names what failed and with which values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)"
    )]
    SimulationRefused,
    #[error("collateral given is for {got}, evidence is {expected}")]
    CollateralKind {
        expected: TeeKind,
        got: &'static str,
    },
    #[error("collateral invalid: {0}")]
    Collateral(String),
    #[error("certificate chain invalid: {0}")]
    CertificateChain(String),
    #[error("signature invalid: {0}")]
    Signature(String),
    #[error("QE identity mismatch: {0}")]
    QeIdentity(String),
    #[error("quote format refused: {0}")]
    QuoteFormat(String),
    #[error("TEE attributes refused: {0}")]
    Attributes(String),
    #[error("VCEK does not match the report: {0}")]
    VcekMismatch(String),
    #[error("TCB evaluation failed: {0}")]
    Tcb(String),
    #[error("TCB status {status} is not accepted (accepted: {accepted})", accepted = .accepted.join(", "))]
    TcbStatus {
        status: String,
        accepted: Vec<String>,
    },
    #[error("{kind} evidence is from a debug-mode TEE (use --allow-debug to accept it)")]
    Debug { kind: TeeKind },
    #[error(
        "report_data does not bind the expected data: expected {expected}, evidence has {actual}"
    )]
    Binding { expected: String, actual: String },
    #[error("measurement mismatch: expected {expected}, evidence has {actual}")]
    Measurement { expected: String, actual: String },
    #[error("signer mismatch: expected {expected}, evidence has {actual}")]
    Signer { expected: String, actual: String },
    #[error("not evaluated: {0}")]
    NotEvaluated(String),
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail(String),
    NotApplicable,
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip)]
    error: Option<VerifyError>,
}

impl Check {
    pub fn pass(name: &'static str) -> Self {
        Check {
            name,
            outcome: Outcome::Pass,
            error: None,
        }
    }

    pub fn not_applicable(name: &'static str) -> Self {
        Check {
            name,
            outcome: Outcome::NotApplicable,
            error: None,
        }
    }

    pub fn fail(name: &'static str, error: VerifyError) -> Self {
        Check {
            name,
            outcome: Outcome::Fail(error.to_string()),
            error: Some(error),
        }
    }

    /// The typed error of a failed check.
    pub fn error(&self) -> Option<&VerifyError> {
        self.error.as_ref()
    }
}

fn hex_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn hex_opt<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_some(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

/// What verification found. Checks are listed in evaluation order; every check is reported
/// even after an earlier one failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kind: TeeKind,
    #[serde(serialize_with = "hex_bytes")]
    pub measurement: Vec<u8>,
    #[serde(serialize_with = "hex_opt")]
    pub signer: Option<Vec<u8>>,
    #[serde(serialize_with = "hex_bytes")]
    pub report_data: Vec<u8>,
    pub debug: bool,
    /// Intel TCB status (SGX/TDX), when the TCB could be evaluated.
    pub tcb_status: Option<String>,
    pub advisories: Vec<String>,
    /// SEV-SNP reported TCB, e.g. `bl3/tee0/snp8/ucode115`.
    pub platform_tcb: Option<String>,
    /// The evidence chains to the simulation root, not a hardware vendor's.
    pub simulated: bool,
    pub checks: Vec<Check>,
    pub trusted: bool,
}

impl Report {
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The first failed check's error, in evaluation order; a check that was only "not
    /// evaluated" because another failed is reported only if nothing else failed.
    pub fn error(&self) -> Option<VerifyError> {
        let mut errors = self.checks.iter().filter_map(|c| c.error.as_ref());
        let first = errors.clone().next();
        errors
            .find(|e| !matches!(e, VerifyError::NotEvaluated(_)))
            .or(first)
            .cloned()
    }

    /// The outcome of the check named `name`.
    pub fn check(&self, name: &str) -> Option<&Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.outcome)
    }

    pub(crate) fn finish(mut self) -> Self {
        self.trusted = self
            .checks
            .iter()
            .all(|c| !matches!(c.outcome, Outcome::Fail(_)));
        self
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.simulated {
            format!("{} (simulated)", self.kind)
        } else {
            self.kind.to_string()
        };
        writeln!(f, "TEE:          {kind}")?;
        writeln!(f, "Measurement:  {}", hex::encode(&self.measurement))?;
        if let Some(signer) = &self.signer {
            writeln!(f, "Signer:       {}", hex::encode(signer))?;
        }
        writeln!(f, "Report data:  {}", hex::encode(&self.report_data))?;
        writeln!(f, "Debug:        {}", if self.debug { "yes" } else { "no" })?;
        match (
            &self.tcb_status,
            self.check(crate::verify::checks::TCB_STATUS),
        ) {
            (Some(status), _) => writeln!(f, "TCB status:   {status}")?,
            // Not known (no collateral, or an earlier check stopped the evaluation): say so
            // rather than leave the line out.
            (None, Some(Outcome::Fail(why))) => writeln!(f, "TCB status:   unknown ({why})")?,
            _ => {}
        }
        if let Some(tcb) = &self.platform_tcb {
            writeln!(f, "Platform TCB: {tcb}")?;
        }
        if !self.advisories.is_empty() {
            writeln!(f, "Advisories:   {}", self.advisories.join(", "))?;
        }
        writeln!(f, "Checks:")?;
        for check in &self.checks {
            match &check.outcome {
                Outcome::Pass => writeln!(f, "  [ OK ] {}", check.name)?,
                Outcome::NotApplicable => writeln!(f, "  [ -- ] {} (not applicable)", check.name)?,
                Outcome::Fail(why) => writeln!(f, "  [FAIL] {}: {why}", check.name)?,
            }
        }
        write!(
            f,
            "Verdict:      {}",
            if self.trusted {
                "TRUSTED"
            } else {
                "NOT TRUSTED"
            }
        )
    }
}
