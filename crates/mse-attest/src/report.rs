//! The verification report: every check's outcome, then the verdict.

use serde::{Serialize, Serializer};

use crate::evidence::EvidenceKind;

/// Why evidence is not trusted. Each variant names what failed and with which values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "evidence chains to the simulation root, which this policy refuses (use --allow-simulation for a local sim node)"
    )]
    /// The evidence chains to the simulation root and the policy refuses simulation.
    SimulationRefused,
    /// The collateral is for another kind of TEE.
    #[error("collateral given is for {got}, evidence is {expected}")]
    CollateralKind {
        /// The evidence's kind.
        expected: EvidenceKind,
        /// What the collateral is for.
        got: &'static str,
    },
    /// The collateral is invalid.
    #[error("collateral invalid: {0}")]
    Collateral(String),
    /// The certificate chain does not reach a pinned root.
    #[error("certificate chain invalid: {0}")]
    CertificateChain(String),
    /// A signature is invalid.
    #[error("signature invalid: {0}")]
    Signature(String),
    /// The QE does not match Intel's QE identity.
    #[error("QE identity mismatch: {0}")]
    QeIdentity(String),
    /// The quote's format is refused.
    #[error("quote format refused: {0}")]
    QuoteFormat(String),
    /// TEE attributes are refused.
    #[error("TEE attributes refused: {0}")]
    Attributes(String),
    /// The VCEK/VLEK was not issued for this report's TCB or chip.
    #[error("{key} does not match the report: {detail}")]
    VekMismatch {
        /// VCEK or VLEK.
        key: crate::evidence::SnpSigningKey,
        /// What differs.
        detail: String,
    },
    /// The SEV-SNP guest policy is refused.
    #[error("SEV-SNP guest policy refused: {0}")]
    GuestPolicy(String),
    /// A reported TCB component is below the policy's minimum.
    #[error("SEV-SNP reported TCB {component} is {reported}, below the policy's minimum {minimum}")]
    TcbBelowMinimum {
        /// Which component.
        component: &'static str,
        /// Its reported SPL.
        reported: u8,
        /// The minimum.
        minimum: u8,
    },
    /// The TCB could not be evaluated.
    #[error("TCB evaluation failed: {0}")]
    Tcb(String),
    /// Intel's TCB status of the platform is not accepted.
    #[error("TCB status {status} is not accepted (accepted: {accepted})", accepted = .accepted.join(", "))]
    TcbStatus {
        /// The status.
        status: String,
        /// The accepted ones.
        accepted: Vec<String>,
    },
    /// Debug-mode TEE and the policy refuses debug.
    #[error("{kind} evidence is from a debug-mode TEE (use --allow-debug to accept it)")]
    Debug {
        /// The kind of TEE.
        kind: EvidenceKind,
    },
    #[error(
        "report_data does not bind the expected data: expected {expected}, evidence has {actual}"
    )]
    /// report_data does not bind the expected data.
    Binding {
        /// What was expected (hex).
        expected: String,
        /// What the evidence has.
        actual: String,
    },
    /// The measurement differs from the expected one.
    #[error("measurement mismatch: expected {expected}, evidence has {actual}")]
    Measurement {
        /// What was expected (hex).
        expected: String,
        /// What the evidence has.
        actual: String,
    },
    /// The signer differs from the expected one.
    #[error("signer mismatch: expected {expected}, evidence has {actual}")]
    Signer {
        /// What was expected (hex).
        expected: String,
        /// What the evidence has.
        actual: String,
    },
    /// A check could not run because an earlier one failed.
    #[error("not evaluated: {0}")]
    NotEvaluated(String),
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// The check failed (why).
    Fail(String),
    /// The check does not apply to this evidence or policy.
    NotApplicable,
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name (see `verify::checks`).
    pub name: &'static str,
    /// Its outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip)]
    error: Option<VerifyError>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str) -> Self {
        Check {
            name,
            outcome: Outcome::Pass,
            error: None,
        }
    }

    /// A check that does not apply.
    pub fn not_applicable(name: &'static str) -> Self {
        Check {
            name,
            outcome: Outcome::NotApplicable,
            error: None,
        }
    }

    /// A failed check with its error.
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
    /// The kind of TEE.
    pub kind: EvidenceKind,
    /// MRENCLAVE, MRTD or MEASUREMENT.
    #[serde(serialize_with = "hex_bytes")]
    pub measurement: Vec<u8>,
    /// MRSIGNER (SGX only).
    #[serde(serialize_with = "hex_opt")]
    pub signer: Option<Vec<u8>>,
    /// The evidence's report data.
    #[serde(serialize_with = "hex_bytes")]
    pub report_data: Vec<u8>,
    /// Whether the TEE is in debug mode.
    pub debug: bool,
    /// Intel TCB status (SGX/TDX), when the TCB could be evaluated.
    pub tcb_status: Option<String>,
    /// Intel security advisories of the platform's TCB level.
    pub advisories: Vec<String>,
    /// SEV-SNP reported TCB, e.g. `bl3/tee0/snp8/ucode115`.
    pub platform_tcb: Option<String>,
    /// SEV-SNP: the key that signed the report (`VCEK` or `VLEK`) and the root its chain
    /// reached (`AMD Milan`, ... or `simulation`), e.g. `VLEK (AMD Milan)`.
    pub signing_key: Option<String>,
    /// The evidence chains to the simulation root, not a hardware vendor's.
    pub simulated: bool,
    /// Every check, in evaluation order.
    pub checks: Vec<Check>,
    /// The verdict: no check failed.
    pub trusted: bool,
}

impl Report {
    /// The verdict: no check failed.
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
        if let Some(key) = &self.signing_key {
            writeln!(f, "Signing key:  {key}")?;
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
