//! SEV-SNP collateral: the VCEK/VLEK certificate and chain reader (DER, or PEM with ASK/ASVK
//! and ARK), KDS cert_chain parsing, the sim-ARK finder, and the certificate-chain and
//! signature checks of the SNP verifier run on whatever certificates the input holds, with the
//! real Milan and VLEK reports and a simulation root given (so hostile chains reach every
//! step, including the simulation-root path).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::Evidence;
use mse_attest::{Collateral, Policy, TrustAnchors, verify};

static REPORTS: LazyLock<[Evidence; 2]> = LazyLock::new(|| {
    [
        Evidence::parse(include_bytes!(
            "../../crates/mse-attest/tests/data/sev-snp/report_milan.hex"
        ))
        .expect("sample report"),
        Evidence::parse(include_bytes!(
            "../../crates/mse-attest/tests/data/sev-snp/trustee-test-vlek-report.bin"
        ))
        .expect("sample VLEK report"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let _ = mse_attest::verify::pem_certificates(data);
    let _ = mse_attest::verify::common_name(data);
    let Ok(collateral) = Collateral::from_bytes(data) else {
        return;
    };
    let sim = mse_attest::sim_ark_from_collateral(&collateral);
    let mut anchors = TrustAnchors::intel();
    if let Collateral::SevSnp { vek_der, chain_der } = &collateral {
        // Any certificate of the input as the "simulation root", to reach that path too.
        let root = sim.or_else(|| chain_der.last().cloned()).unwrap_or(vek_der.clone());
        anchors = anchors.with_simulation_root(root);
    }
    let policy = Policy {
        allow_simulation: true,
        ..Policy::default()
    };
    for evidence in REPORTS.iter() {
        let report = verify(evidence, &collateral, &anchors, &policy, None);
        let _ = (report.trusted(), report.error(), report.to_string());
    }
});
