//! SEV-SNP attestation report parser and the SNP verifier, against the real sample VCEK (a
//! VCEK-signed Milan report) and the real sample VLEK with AMD's Milan chain in one PEM (the
//! VLEK path), so mutated reports reach the chain, signature, TCB and policy checks.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::{Evidence, SnpReport};
use mse_attest::{Collateral, Policy, TrustAnchors, verify};

static VCEK: LazyLock<Collateral> = LazyLock::new(|| {
    Collateral::from_bytes(include_bytes!(
        "../../crates/mse-attest/tests/data/sev-snp/vcek_milan.der"
    ))
    .expect("sample VCEK")
});

static VLEK_CHAIN: LazyLock<Collateral> = LazyLock::new(|| {
    let mut pem = mse_attest::to_pem(include_bytes!(
        "../../crates/mse-attest/tests/data/sev-snp/trustee-test-vlek.der"
    ));
    pem.push_str(include_str!(
        "../../crates/mse-attest/tests/data/sev-snp/milan_ask_ark_asvk.pem"
    ));
    Collateral::from_bytes(pem.as_bytes()).expect("sample VLEK chain")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SnpReport::parse(data) {
        let _ = (
            r.is_debug(),
            r.allows_migration_agent(),
            r.signing_key().to_string(),
            r.reported_tcb.to_string(),
            r.signed_bytes().len(),
            mse_attest::collateral::snp_product(&r),
            mse_attest::collateral::kds_vcek_path("Milan", &r),
        );
        let evidence = Evidence::SevSnp(r);
        for collateral in [&*VCEK, &*VLEK_CHAIN] {
            let report = verify(
                &evidence,
                collateral,
                &TrustAnchors::intel(),
                &Policy::default(),
                None,
            );
            let _ = (report.trusted(), report.error(), report.to_string());
        }
    }
    let _ = Collateral::from_bytes(data);
});
