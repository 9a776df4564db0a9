//! SEV-SNP reports. One code path for real and simulated evidence; only the roots differ:
//!
//! - chain: ARK → ASK → VCEK, or ARK → ASVK → VLEK (the report's SIGNING_KEY says which), up to
//!   AMD's ARKs pinned in this crate (Milan, Genoa, Turin) or to the simulation ARK of
//!   [`TrustAnchors`]; intermediates come from the pinned set or from the collateral, and every
//!   link is an X.509 signature (RSASSA-PSS/SHA-384 as AMD signs, or ECDSA P-384/SHA-384)
//!   checked by ring through x509-parser;
//! - the report's ECDSA P-384/SHA-384 signature over its first 0x2A0 bytes, exactly as
//!   received, with the VCEK/VLEK's key;
//! - the VCEK/VLEK's TCB (and hwID) extensions against the report;
//! - the guest policy (no migration agent) and the policy's minimum TCB per component.

use ring::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_HASH_SHA384, OID_PKCS1_RSASSAPSS,
    OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::signature_algorithm::SignatureAlgorithm;

use super::TrustAnchors;
use super::amd::amd_products;
use super::checks::*;
use crate::collateral::Collateral;
use crate::evidence::snp::{SNP_SIG_ALGO_ECDSA_P384_SHA384, SNP_SIGNED_LEN};
use crate::evidence::{SnpReport, SnpSigningKey};
use crate::policy::Policy;
use crate::report::{Check, Report, VerifyError};

const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";

/// A root the chain may end at, with the intermediates that may sit under it.
struct Root {
    /// How the report names it: "AMD Milan", ... or "simulation".
    name: String,
    ark: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    simulated: bool,
}

pub(super) fn verify(
    snp: &SnpReport,
    collateral: &Collateral,
    anchors: &TrustAnchors,
    policy: &Policy,
    report: &mut Report,
) {
    let key = snp.signing_key();
    report.platform_tcb = Some(snp.reported_tcb.to_string());
    report.signing_key = Some(key.to_string());
    let Collateral::SevSnp { vek_der, chain_der } = collateral else {
        report.checks.push(Check::not_applicable(SIMULATION));
        report.checks.push(Check::fail(
            COLLATERAL,
            match collateral {
                Collateral::Unavailable(why) => {
                    VerifyError::NotEvaluated(format!("no collateral: {why}"))
                }
                _ => VerifyError::CollateralKind {
                    expected: crate::evidence::EvidenceKind::SevSnp,
                    got: "SGX/TDX (DCAP collateral JSON)",
                },
            },
        ));
        for step in [CERTIFICATE_CHAIN, REPORT_SIGNATURE, VCEK_TCB] {
            report.checks.push(Check::fail(
                step,
                VerifyError::NotEvaluated(format!("no {key} certificate given")),
            ));
        }
        push_policy_checks(snp, policy, report);
        return;
    };

    let chain = check_chain(key, vek_der, chain_der, anchors, policy);
    let simulated = matches!(&chain, Ok(root) if root.simulated);
    report.simulated = simulated;
    report
        .checks
        .push(match (simulated, policy.allow_simulation) {
            (false, _) => Check::not_applicable(SIMULATION),
            (true, true) => Check::pass(SIMULATION),
            (true, false) => Check::fail(SIMULATION, VerifyError::SimulationRefused),
        });
    report.checks.push(Check::pass(COLLATERAL));
    report.checks.push(match chain {
        Ok(root) => {
            report.signing_key = Some(format!("{key} ({})", root.name));
            Check::pass(CERTIFICATE_CHAIN)
        }
        Err(e) => Check::fail(CERTIFICATE_CHAIN, e),
    });
    // The signature is checked with the VCEK/VLEK even when its chain failed, so the report
    // says whether the report itself is intact.
    report
        .checks
        .push(match check_signature(snp, key, vek_der) {
            Ok(()) => Check::pass(REPORT_SIGNATURE),
            Err(e) => Check::fail(REPORT_SIGNATURE, e),
        });
    report.checks.push(match check_vek_tcb(snp, key, vek_der) {
        Ok(()) => Check::pass(VCEK_TCB),
        Err(e) => Check::fail(VCEK_TCB, e),
    });
    push_policy_checks(snp, policy, report);
}

/// The checks that need no certificate: guest policy, minimum TCB (and TCB status, which is
/// Intel's notion only).
fn push_policy_checks(snp: &SnpReport, policy: &Policy, report: &mut Report) {
    report.checks.push(if snp.allows_migration_agent() {
        Check::fail(
            GUEST_POLICY,
            VerifyError::GuestPolicy(format!(
                "policy {:#x} allows a migration agent (MIGRATE_MA, bit 18), which can export the guest's memory",
                snp.policy
            )),
        )
    } else {
        Check::pass(GUEST_POLICY)
    });
    report.checks.push(match check_min_tcb(snp, policy) {
        Ok(()) => Check::pass(MINIMUM_TCB),
        Err(e) => Check::fail(MINIMUM_TCB, e),
    });
    report.checks.push(Check::not_applicable(TCB_STATUS));
}

fn check_min_tcb(snp: &SnpReport, policy: &Policy) -> Result<(), VerifyError> {
    let tcb = snp.reported_tcb;
    let min = policy.snp_min_tcb;
    let mut components = vec![
        ("bootloader", tcb.bootloader, min.bootloader),
        ("tee", tcb.tee, min.tee),
        ("snp", tcb.snp, min.snp),
        ("microcode", tcb.microcode, min.microcode),
    ];
    if let Some(fmc) = tcb.fmc {
        components.insert(0, ("fmc", fmc, min.fmc));
    }
    match components
        .into_iter()
        .find(|(_, reported, min)| reported < min)
    {
        Some((component, reported, minimum)) => Err(VerifyError::TcbBelowMinimum {
            component,
            reported,
            minimum,
        }),
        None => Ok(()),
    }
}

/// The roots to try: AMD's pinned product lines, then the simulation ARK if the anchors have
/// one. Intermediates given in the collateral are tried under every root (a root never comes
/// from the collateral).
fn roots(key: SnpSigningKey, chain_der: &[Vec<u8>], anchors: &TrustAnchors) -> Vec<Root> {
    let given: Vec<Vec<u8>> = chain_der
        .iter()
        .filter(|der| !is_self_issued(der))
        .cloned()
        .collect();
    let mut roots: Vec<Root> = amd_products()
        .into_iter()
        .map(|p| Root {
            name: format!("AMD {}", p.name),
            ark: p.ark,
            // A VCEK must hang under the ASK, a VLEK under the ASVK.
            intermediates: [
                vec![if key == SnpSigningKey::Vlek {
                    p.asvk
                } else {
                    p.ask
                }],
                given.clone(),
            ]
            .concat(),
            simulated: false,
        })
        .collect();
    if let Some(sim) = anchors.simulation_root() {
        roots.push(Root {
            name: "simulation".into(),
            ark: sim.to_vec(),
            intermediates: given,
            simulated: true,
        });
    }
    roots
}

fn is_self_issued(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.subject() == c.issuer())
}

/// ARK → ASK/ASVK → VCEK/VLEK up to one of the roots, every certificate valid at "now".
fn check_chain(
    key: SnpSigningKey,
    vek_der: &[u8],
    chain_der: &[Vec<u8>],
    anchors: &TrustAnchors,
    policy: &Policy,
) -> Result<Root, VerifyError> {
    let chain_err = |msg: String| VerifyError::CertificateChain(msg);
    let issuer_name = match key {
        SnpSigningKey::Vcek => "ASK",
        SnpSigningKey::Vlek => "ASVK",
        other => {
            return Err(chain_err(format!(
                "the report's SIGNING_KEY is {other}: only VCEK- and VLEK-signed reports can be verified"
            )));
        }
    };
    let (_, vek) =
        X509Certificate::from_der(vek_der).map_err(|e| chain_err(format!("{key}: {e}")))?;
    let now = i64::try_from(policy.now_unix()).unwrap_or(i64::MAX);
    let roots = roots(key, chain_der, anchors);
    let with_sim = roots.iter().any(|r| r.simulated);
    for root in roots {
        let Ok((_, ark)) = X509Certificate::from_der(&root.ark) else {
            continue;
        };
        if ark.subject() != ark.issuer() || signed_by(&ark, &ark).is_err() {
            continue;
        }
        let issuer = root.intermediates.iter().find_map(|der| {
            let (_, mid) = X509Certificate::from_der(der).ok()?;
            let linked = mid.issuer() == ark.subject()
                && signed_by(&mid, &ark).is_ok()
                && vek.issuer() == mid.subject()
                && signed_by(&vek, &mid).is_ok();
            linked.then_some(mid)
        });
        let Some(mid) = issuer else {
            continue;
        };
        for (what, cert) in [
            (key.to_string(), &vek),
            (issuer_name.to_string(), &mid),
            ("ARK".to_string(), &ark),
        ] {
            let validity = cert.validity();
            if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
                return Err(chain_err(format!(
                    "{what} is valid from {} to {}, not at the verification time",
                    validity.not_before, validity.not_after
                )));
            }
        }
        return Ok(root);
    }
    Err(chain_err(format!(
        "{key} is not signed by AMD's Milan, Genoa or Turin {issuer_name}/ARK{}",
        if with_sim {
            " nor by the simulation ARK"
        } else {
            ""
        }
    )))
}

/// `cert`'s signature checked with `issuer`'s key, accepting only the algorithms of AMD's PKI:
/// RSASSA-PSS with SHA-384, or ECDSA with SHA-384 on P-384.
fn signed_by(cert: &X509Certificate, issuer: &X509Certificate) -> Result<(), SignatureError> {
    let alg = &cert.signature_algorithm;
    let allowed = if alg.algorithm == OID_PKCS1_RSASSAPSS {
        matches!(SignatureAlgorithm::try_from(alg), Ok(SignatureAlgorithm::RSASSA_PSS(p)) if *p.hash_algorithm_oid() == OID_NIST_HASH_SHA384)
    } else {
        alg.algorithm == OID_SIG_ECDSA_WITH_SHA384 && is_p384(issuer)
    };
    if !allowed {
        return Err(SignatureError::Algorithm(alg.algorithm.to_string()));
    }
    Ok(cert.verify_signature(Some(issuer.public_key()))?)
}

/// Why [`signed_by`] refused a certificate.
#[derive(Debug, thiserror::Error)]
enum SignatureError {
    #[error("signature algorithm {0} is not AMD's")]
    Algorithm(String),
    #[error(transparent)]
    Invalid(#[from] x509_parser::error::X509Error),
}

fn is_p384(cert: &X509Certificate) -> bool {
    let spki = cert.public_key();
    spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|oid| oid == OID_NIST_EC_P384)
}

/// The VCEK/VLEK's ECDSA P-384 signature over the report's first 0x2A0 bytes as received. The
/// report stores r and s as 72-byte little-endian numbers; P-384 uses the low 48 bytes.
fn check_signature(snp: &SnpReport, key: SnpSigningKey, vek_der: &[u8]) -> Result<(), VerifyError> {
    let sig_err = |msg: String| VerifyError::Signature(msg);
    if snp.signature_algo != SNP_SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(sig_err(format!(
            "SIGNATURE_ALGO {} is not ECDSA P-384 with SHA-384",
            snp.signature_algo
        )));
    }
    let (_, vek) =
        X509Certificate::from_der(vek_der).map_err(|e| sig_err(format!("{key}: {e}")))?;
    if !is_p384(&vek) {
        return Err(sig_err(format!("{key} key is not ECDSA P-384")));
    }
    let invalid = || {
        sig_err(format!(
            "{key} signature over the SEV-SNP report is invalid"
        ))
    };
    let mut sig = Vec::with_capacity(96);
    for le in [&snp.signature_r, &snp.signature_s] {
        if le[48..].iter().any(|&b| b != 0) {
            return Err(invalid());
        }
        sig.extend(le[..48].iter().rev());
    }
    let signed = snp.raw.get(..SNP_SIGNED_LEN).ok_or_else(invalid)?;
    UnparsedPublicKey::new(
        &ECDSA_P384_SHA384_FIXED,
        &vek.public_key().subject_public_key.data,
    )
    .verify(signed, &sig)
    .map_err(|_| invalid())
}

/// A VCEK is issued for one chip at one TCB, a VLEK for one cloud provider at one TCB: the SPL
/// extensions must equal the report's REPORTED_TCB, and a VCEK's hwID the report's CHIP_ID.
fn check_vek_tcb(snp: &SnpReport, key: SnpSigningKey, vek_der: &[u8]) -> Result<(), VerifyError> {
    let err = |detail: String| VerifyError::VekMismatch { key, detail };
    let (_, cert) = X509Certificate::from_der(vek_der).map_err(|e| err(format!("{key}: {e}")))?;
    let ext = |oid: &str| {
        cert.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value)
    };
    let tcb = snp.reported_tcb;
    let mut wanted = vec![
        ("blSPL", OID_BL_SPL, tcb.bootloader),
        ("teeSPL", OID_TEE_SPL, tcb.tee),
        ("snpSPL", OID_SNP_SPL, tcb.snp),
        ("ucodeSPL", OID_UCODE_SPL, tcb.microcode),
    ];
    if let Some(fmc) = tcb.fmc {
        wanted.push(("fmcSPL", OID_FMC_SPL, fmc));
    }
    for (name, oid, reported) in wanted {
        let value = ext(oid).ok_or_else(|| err(format!("{key} lacks the {name} extension")))?;
        let spl = der_small_uint(value)
            .ok_or_else(|| err(format!("{key} {name} is not a small INTEGER")))?;
        if spl != u64::from(reported) {
            return Err(err(format!(
                "{key} {name} is {spl}, report's REPORTED_TCB has {reported}"
            )));
        }
    }
    // A report with MASK_CHIP_ID set carries zeros, and VLEK-signed reports have no chip
    // binding: then only the signature binds the platform.
    if key == SnpSigningKey::Vcek && snp.chip_id.iter().any(|&b| b != 0) {
        let hwid = ext(OID_HWID).ok_or_else(|| err(format!("{key} lacks the hwID extension")))?;
        let hwid = match hwid {
            [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
            raw => raw,
        };
        if snp.chip_id[..hwid.len().min(64)] != *hwid {
            return Err(err(format!(
                "{key} hwID {} differs from the report's CHIP_ID {}",
                hex::encode(hwid),
                hex::encode(snp.chip_id)
            )));
        }
    }
    Ok(())
}

/// A DER INTEGER of at most 8 content bytes, non-negative.
fn der_small_uint(value: &[u8]) -> Option<u64> {
    let [0x02, len, rest @ ..] = value else {
        return None;
    };
    let len = usize::from(*len);
    if len == 0 || len > 9 || rest.len() != len || rest[0] & 0x80 != 0 {
        return None;
    }
    let v = rest.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Some(v)
}
