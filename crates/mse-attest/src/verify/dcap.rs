//! SGX and TDX quotes through dcap-qvl, with the trust anchor chosen by us, never by the quote.
//!
//! dcap-qvl stops at its first failure and reports it as text. We map that failure onto our
//! named checks: checks dcap-qvl completed before it are reported as passed, the failing one
//! with its message, and the later ones as "not evaluated".

use dcap_qvl::verify::QuoteVerifier;

use super::TrustAnchors;
use super::checks::*;
use crate::collateral::Collateral;
use crate::evidence::Evidence;
use crate::policy::Policy;
use crate::report::{Check, Report, VerifyError};

/// dcap-qvl's checks, in the order it runs them.
const STEPS: [&str; 8] = [
    QUOTE_FORMAT,
    COLLATERAL,
    CERTIFICATE_CHAIN,
    QE_REPORT_SIGNATURE,
    QE_IDENTITY,
    QUOTE_SIGNATURE,
    TCB_STATUS,
    ATTRIBUTES,
];

pub(super) fn verify(
    evidence: &Evidence,
    collateral: &Collateral,
    anchors: &TrustAnchors,
    policy: &Policy,
    report: &mut Report,
) {
    let certification = match evidence {
        Evidence::Sgx(q) => &q.qe.certification,
        Evidence::Tdx(q) => &q.qe.certification,
        Evidence::SevSnp(_) => return,
    };
    // Sim evidence is recognised by its embedded chain ending at the configured sim root;
    // only then is that root used, and only the policy decides whether it is acceptable.
    let simulated = anchors
        .simulation_root()
        .is_some_and(|root| certification.pem_chain_der().iter().any(|c| c[..] == *root));
    report.simulated = simulated;
    report
        .checks
        .push(if !simulated || policy.allow_simulation {
            Check::pass(SIMULATION)
        } else {
            Check::fail(SIMULATION, VerifyError::SimulationRefused)
        });

    if let Collateral::Unavailable(why) = collateral {
        // The quote parsed (the caller re-parsed it); nothing else can be checked offline.
        report.checks.push(Check::pass(QUOTE_FORMAT));
        for step in &STEPS[1..] {
            report.checks.push(Check::fail(
                step,
                VerifyError::NotEvaluated(format!("no collateral: {why}")),
            ));
        }
        return;
    }
    let Collateral::Dcap(collateral) = collateral else {
        let err = VerifyError::CollateralKind {
            expected: evidence.kind(),
            got: "SEV-SNP (a VCEK certificate)",
        };
        push_steps(report, COLLATERAL, err);
        return;
    };

    let root = match anchors.simulation_root() {
        Some(sim) if simulated => sim.to_vec(),
        _ => anchors.intel_root().to_vec(),
    };
    // Debug is our own check (policy-driven); dcap-qvl still checks the other TD attributes.
    let verifier = QuoteVerifier::new(root).allow_debug(true);
    match verifier.verify(evidence.raw(), collateral, policy.now_unix()) {
        Ok(verified) => {
            for step in &STEPS[..6] {
                report.checks.push(Check::pass(step));
            }
            let status = verified.status;
            report.advisories = verified.advisory_ids;
            let accepted = status != "Revoked" && policy.accepted_tcb.contains(&status);
            report.checks.push(if accepted {
                Check::pass(TCB_STATUS)
            } else {
                Check::fail(
                    TCB_STATUS,
                    VerifyError::TcbStatus {
                        status: status.clone(),
                        accepted: policy.accepted_tcb.clone(),
                    },
                )
            });
            report.tcb_status = Some(status);
            report.checks.push(Check::pass(ATTRIBUTES));
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let (step, err) = classify(msg);
            push_steps(report, step, err);
        }
    }
}

/// Record `failed` as failing with `err`, the steps before it as passed and those after as
/// not evaluated. A chain failure may come from the TCB-info / QE-identity signer chain,
/// which dcap-qvl does not tell apart, so collateral is then "not evaluated" too.
fn push_steps(report: &mut Report, failed: &'static str, err: VerifyError) {
    let idx = STEPS.iter().position(|s| *s == failed).unwrap_or(0);
    let stopped = format!("verification stopped at {failed}");
    for (i, step) in STEPS.iter().enumerate() {
        let check = if i == idx {
            Check::fail(step, err.clone())
        } else if i < idx && !(failed == CERTIFICATE_CHAIN && *step == COLLATERAL) {
            Check::pass(step)
        } else {
            Check::fail(step, VerifyError::NotEvaluated(stopped.clone()))
        };
        report.checks.push(check);
    }
}

/// Map a dcap-qvl error message onto the check that produced it.
fn classify(msg: String) -> (&'static str, VerifyError) {
    let has = |needles: &[&str]| needles.iter().any(|n| msg.contains(n));
    if has(&["Unrecognized TCB status"]) {
        (TCB_STATUS, VerifyError::Tcb(msg))
    } else if has(&[
        "quote_collateral",
        "TCBInfo",
        "TCB Info",
        "QE Identity",
        "TcbInfo",
        "QeIdentity",
        "CRL",
        "Crl",
    ]) {
        (COLLATERAL, VerifyError::Collateral(msg))
    } else if has(&["qe_report in quote", "QE report hash"]) {
        (QE_REPORT_SIGNATURE, VerifyError::Signature(msg))
    } else if has(&[
        "QE MRSIGNER",
        "QE ISVPRODID",
        "QE MISCSELECT",
        "QE ATTRIBUTES",
        "QE report validation",
        "QE ISVSVN",
        "No TCB levels found in QE",
    ]) {
        (QE_IDENTITY, VerifyError::QeIdentity(msg))
    } else if has(&["ISV enclave report signature"]) {
        (QUOTE_SIGNATURE, VerifyError::Signature(msg))
    } else if has(&[
        "TCB level",
        "Fmspc",
        "TCB status",
        "TDX module",
        "TCB info in the collateral",
        "TCB Info",
    ]) {
        (TCB_STATUS, VerifyError::Tcb(msg))
    } else if has(&[
        "Debug mode",
        "profiling",
        "Reserved bits",
        "migration",
        "SERVTD",
        "SEPT_VE",
        "service TD",
    ]) {
        (ATTRIBUTES, VerifyError::Attributes(msg))
    } else if has(&[
        "decode quote",
        "quote version",
        "QE vendor",
        "TEE type",
        "attestation key type",
        "TEE quote must",
    ]) {
        (QUOTE_FORMAT, VerifyError::QuoteFormat(msg))
    } else {
        (CERTIFICATE_CHAIN, VerifyError::CertificateChain(msg))
    }
}
