//! SEV-SNP reports through the `sev` crate (pure-Rust crypto), anchored at AMD's ARKs built
//! into that crate (Milan, Genoa, Turin); the VCEK is the collateral.

use sev::certs::snp::{Certificate, Chain, Verifiable, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::checks::*;
use crate::collateral::Collateral;
use crate::evidence::SnpReport;
use crate::evidence::snp::{SNP_REPORT_LEN, SNP_SIGNED_LEN};
use crate::policy::Policy;
use crate::report::{Check, Report, VerifyError};

/// A constructor of one of the `sev` crate's built-in AMD certificates.
type CertFn = fn() -> std::io::Result<Certificate>;

const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";

pub(super) fn verify(
    snp: &SnpReport,
    collateral: &Collateral,
    policy: &Policy,
    report: &mut Report,
) {
    report.platform_tcb = Some(snp.reported_tcb.to_string());
    report.checks.push(Check::not_applicable(SIMULATION));
    let Collateral::SevSnp { vcek_der } = collateral else {
        report.checks.push(Check::fail(
            COLLATERAL,
            match collateral {
                Collateral::Unavailable(why) => {
                    VerifyError::NotEvaluated(format!("no collateral: {why}"))
                }
                _ => VerifyError::CollateralKind {
                    expected: crate::evidence::TeeKind::SevSnp,
                    got: "SGX/TDX (DCAP collateral JSON)",
                },
            },
        ));
        for step in [CERTIFICATE_CHAIN, REPORT_SIGNATURE, VCEK_TCB] {
            report.checks.push(Check::fail(
                step,
                VerifyError::NotEvaluated("no VCEK certificate given".into()),
            ));
        }
        report.checks.push(Check::not_applicable(TCB_STATUS));
        return;
    };
    report.checks.push(Check::pass(COLLATERAL));

    let chain = check_chain(vcek_der, policy);
    report.checks.push(match chain {
        Ok(()) => Check::pass(CERTIFICATE_CHAIN),
        Err(e) => Check::fail(CERTIFICATE_CHAIN, e),
    });
    // The signature is checked with the VCEK even when its chain failed, so the report says
    // whether the report itself is intact.
    report.checks.push(match check_signature(snp, vcek_der) {
        Ok(()) => Check::pass(REPORT_SIGNATURE),
        Err(e) => Check::fail(REPORT_SIGNATURE, e),
    });
    report.checks.push(match check_vcek_tcb(snp, vcek_der) {
        Ok(()) => Check::pass(VCEK_TCB),
        Err(e) => Check::fail(VCEK_TCB, e),
    });
    report.checks.push(Check::not_applicable(TCB_STATUS));
}

/// ARK → ASK → VCEK for one of AMD's product lines, and the VCEK valid at "now".
fn check_chain(vcek_der: &[u8], policy: &Policy) -> Result<(), VerifyError> {
    let chain_err = |msg: String| VerifyError::CertificateChain(msg);
    let vcek = Certificate::from_der(vcek_der).map_err(|e| chain_err(format!("VCEK: {e}")))?;
    let products: [(&str, CertFn, CertFn); 3] = [
        ("Milan", builtin::milan::ark, builtin::milan::ask),
        ("Genoa", builtin::genoa::ark, builtin::genoa::ask),
        ("Turin", builtin::turin::ark, builtin::turin::ask),
    ];
    let anchored = products.iter().any(|(_, ark, ask)| {
        let (Ok(ark), Ok(ask)) = (ark(), ask()) else {
            return false;
        };
        let chain = Chain {
            ca: ca::Chain { ark, ask },
            vek: vcek.clone(),
        };
        (&chain).verify().is_ok()
    });
    if !anchored {
        return Err(chain_err(
            "VCEK is not signed by AMD's Milan, Genoa or Turin ASK/ARK".into(),
        ));
    }
    let (_, cert) =
        X509Certificate::from_der(vcek_der).map_err(|e| chain_err(format!("VCEK: {e}")))?;
    let now = i64::try_from(policy.now_unix()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err(chain_err(format!(
            "VCEK is valid from {} to {}, not at the verification time",
            validity.not_before, validity.not_after
        )));
    }
    Ok(())
}

/// The VCEK's ECDSA P-384 signature over bytes 0..0x2A0. The `sev` crate verifies its own
/// re-encoding of the parsed report, so we also require that re-encoding to equal the bytes
/// received: otherwise a changed reserved byte would go unnoticed.
fn check_signature(snp: &SnpReport, vcek_der: &[u8]) -> Result<(), VerifyError> {
    let sig_err = |msg: String| VerifyError::Signature(msg);
    let raw = snp
        .raw
        .get(..SNP_REPORT_LEN)
        .ok_or_else(|| sig_err(format!("report is shorter than {SNP_REPORT_LEN} bytes")))?;
    let parsed = AttestationReport::from_bytes(raw).map_err(|e| sig_err(format!("report: {e}")))?;
    let encoded = parsed
        .to_bytes()
        .map_err(|e| sig_err(format!("report: {e}")))?;
    if encoded.as_ref()[..SNP_SIGNED_LEN] != raw[..SNP_SIGNED_LEN] {
        return Err(sig_err(
            "report has non-zero reserved bytes in its signed part".into(),
        ));
    }
    let vcek = Certificate::from_der(vcek_der).map_err(|e| sig_err(format!("VCEK: {e}")))?;
    (&vcek, &parsed)
        .verify()
        .map_err(|_| sig_err("VCEK signature over the SEV-SNP report is invalid".into()))
}

/// The VCEK is issued for one chip at one TCB: its hwID and SPL extensions must equal the
/// report's CHIP_ID and REPORTED_TCB.
fn check_vcek_tcb(snp: &SnpReport, vcek_der: &[u8]) -> Result<(), VerifyError> {
    let err = |msg: String| VerifyError::VcekMismatch(msg);
    let (_, cert) = X509Certificate::from_der(vcek_der).map_err(|e| err(format!("VCEK: {e}")))?;
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
        let value = ext(oid).ok_or_else(|| err(format!("VCEK lacks the {name} extension")))?;
        let spl = der_small_uint(value)
            .ok_or_else(|| err(format!("VCEK {name} is not a small INTEGER")))?;
        if spl != u64::from(reported) {
            return Err(err(format!(
                "VCEK {name} is {spl}, report's REPORTED_TCB has {reported}"
            )));
        }
    }
    // A report with MASK_CHIP_ID set carries zeros; then only the signature binds the chip.
    if snp.chip_id.iter().any(|&b| b != 0) {
        let hwid = ext(OID_HWID).ok_or_else(|| err("VCEK lacks the hwID extension".into()))?;
        let hwid = match hwid {
            [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
            raw => raw,
        };
        if snp.chip_id[..hwid.len().min(64)] != *hwid {
            return Err(err(format!(
                "VCEK hwID {} differs from the report's CHIP_ID {}",
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
