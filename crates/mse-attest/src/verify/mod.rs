//! One verifier for every kind of evidence, real or simulated: only the trust anchor differs.
//!
//! [`verify`] runs every check and records each outcome in the [`Report`]; it never stops at
//! the first failure, so a user sees everything that is wrong at once.

mod amd;
mod dcap;
mod simulated;
mod snp;

pub use amd::{AmdProduct, amd_products, common_name, pem_certificates};
pub use simulated::{
    SIM_AMD_ARK_CN, SIM_SGX_ROOT_CN, sim_ark_from_collateral, sim_root_from_quote,
};

use crate::collateral::Collateral;
use crate::evidence::Evidence;
use crate::policy::Policy;
use crate::report::{Check, Report, VerifyError};

/// Intel SGX Root CA (DER), the anchor of every genuine SGX/TDX quote.
/// SHA-256 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// The roots a verifier trusts. Intel's root and AMD's ARKs (Milan, Genoa, Turin; built in) are
/// always pinned, never taken from evidence or collateral; a simulation root (the mock Intel
/// root for SGX, the mock AMD ARK for SEV-SNP) is used only when the policy allows simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchors {
    intel_root: Vec<u8>,
    simulation_root: Option<Vec<u8>>,
}

impl TrustAnchors {
    /// Intel's real SGX root CA only.
    pub fn intel() -> Self {
        TrustAnchors {
            intel_root: INTEL_SGX_ROOT_CA_DER.to_vec(),
            simulation_root: None,
        }
    }

    /// Also know the mock PKI's root (DER), so that sim evidence can be recognised. It is
    /// accepted only when `Policy::allow_simulation` is set.
    pub fn with_simulation_root(mut self, der: Vec<u8>) -> Self {
        self.simulation_root = Some(der);
        self
    }

    /// The simulation root, if one is configured.
    pub fn simulation_root(&self) -> Option<&[u8]> {
        self.simulation_root.as_deref()
    }

    /// Intel's SGX Root CA (DER).
    pub fn intel_root(&self) -> &[u8] {
        &self.intel_root
    }
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self::intel()
    }
}

/// Names of the checks, in report order.
pub mod checks {
    /// The evidence chains to a simulation root: allowed only by policy.
    pub const SIMULATION: &str = "simulation";
    /// The quote's format and header.
    pub const QUOTE_FORMAT: &str = "quote_format";
    /// The collateral matches the evidence and is valid.
    pub const COLLATERAL: &str = "collateral";
    /// The certificate chain up to a pinned root.
    pub const CERTIFICATE_CHAIN: &str = "certificate_chain";
    /// The PCK's signature over the QE report.
    pub const QE_REPORT_SIGNATURE: &str = "qe_report_signature";
    /// The QE report against Intel's QE identity.
    pub const QE_IDENTITY: &str = "qe_identity";
    /// The attestation key's signature over the quote.
    pub const QUOTE_SIGNATURE: &str = "quote_signature";
    /// The VCEK/VLEK's signature over the SEV-SNP report.
    pub const REPORT_SIGNATURE: &str = "report_signature";
    /// The VCEK/VLEK was issued for the report's TCB (and chip).
    pub const VCEK_TCB: &str = "vcek_tcb";
    /// The SEV-SNP guest policy (no migration agent).
    pub const GUEST_POLICY: &str = "guest_policy";
    /// The SEV-SNP reported TCB against the policy's minimum.
    pub const MINIMUM_TCB: &str = "minimum_tcb";
    /// Intel's TCB status of the platform.
    pub const TCB_STATUS: &str = "tcb_status";
    /// TEE attributes (TDX) other than debug.
    pub const ATTRIBUTES: &str = "attributes";
    /// Debug mode, refused unless the policy allows it.
    pub const DEBUG: &str = "debug";
    /// report_data binds the expected data (RA-TLS key).
    pub const BINDING: &str = "report_data_binding";
    /// The measurement equals the expected one.
    pub const MEASUREMENT: &str = "measurement";
    /// The signer (SGX MRSIGNER) equals the expected one.
    pub const SIGNER: &str = "signer";
}

/// Verify `evidence` with `collateral` against `anchors` and `policy`. If
/// `expected_report_data` is given, the evidence's report_data must start with it (RA-TLS
/// binds the certificate key this way).
pub fn verify(
    evidence: &Evidence,
    collateral: &Collateral,
    anchors: &TrustAnchors,
    policy: &Policy,
    expected_report_data: Option<&[u8]>,
) -> Report {
    // The checks below read parsed fields while the signatures cover `raw`: re-parse so that
    // fields edited after parsing (they are public) can never pass for signed ones.
    let reparsed = Evidence::parse(evidence.raw());
    let evidence = match &reparsed {
        Ok(e) => e,
        Err(e) => {
            let mut report = empty_report(evidence);
            report.checks.push(Check::fail(
                checks::QUOTE_FORMAT,
                VerifyError::QuoteFormat(e.to_string()),
            ));
            return report.finish();
        }
    };
    let mut report = empty_report(evidence);

    match evidence {
        Evidence::Sgx(_) | Evidence::Tdx(_) => {
            dcap::verify(evidence, collateral, anchors, policy, &mut report)
        }
        Evidence::SevSnp(r) => snp::verify(r, collateral, anchors, policy, &mut report),
    }

    report
        .checks
        .push(if !evidence.is_debug() || policy.allow_debug {
            Check::pass(checks::DEBUG)
        } else {
            Check::fail(
                checks::DEBUG,
                VerifyError::Debug {
                    kind: evidence.kind(),
                },
            )
        });
    report
        .checks
        .push(check_binding(evidence.report_data(), expected_report_data));
    report.checks.push(match &policy.expected_measurement {
        None => Check::not_applicable(checks::MEASUREMENT),
        Some(expected) if expected[..] == *evidence.measurement() => {
            Check::pass(checks::MEASUREMENT)
        }
        Some(expected) => Check::fail(
            checks::MEASUREMENT,
            VerifyError::Measurement {
                expected: hex::encode(expected),
                actual: hex::encode(evidence.measurement()),
            },
        ),
    });
    report
        .checks
        .push(match (&policy.expected_signer, evidence.signer()) {
            (None, _) => Check::not_applicable(checks::SIGNER),
            (Some(expected), Some(actual)) if expected[..] == *actual => {
                Check::pass(checks::SIGNER)
            }
            (Some(expected), actual) => Check::fail(
                checks::SIGNER,
                VerifyError::Signer {
                    expected: hex::encode(expected),
                    actual: actual.map_or_else(
                        || format!("no signer identity ({} evidence)", evidence.kind()),
                        hex::encode,
                    ),
                },
            ),
        });
    report.finish()
}

fn check_binding(actual: &[u8; 64], expected: Option<&[u8]>) -> Check {
    match expected {
        None => Check::not_applicable(checks::BINDING),
        Some(exp) if !exp.is_empty() && exp.len() <= 64 && actual[..exp.len()] == *exp => {
            Check::pass(checks::BINDING)
        }
        Some(exp) => Check::fail(
            checks::BINDING,
            VerifyError::Binding {
                expected: hex::encode(exp),
                actual: hex::encode(actual),
            },
        ),
    }
}

fn empty_report(evidence: &Evidence) -> Report {
    Report {
        kind: evidence.kind(),
        measurement: evidence.measurement().to_vec(),
        signer: evidence.signer().map(<[u8]>::to_vec),
        report_data: evidence.report_data().to_vec(),
        debug: evidence.is_debug(),
        tcb_status: None,
        advisories: Vec::new(),
        platform_tcb: None,
        signing_key: None,
        simulated: false,
        checks: Vec::new(),
        trusted: false,
    }
}
