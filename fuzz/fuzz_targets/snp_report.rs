//! SEV-SNP attestation report parser, the VCEK collateral reader, and the SNP verifier
//! against the real sample VCEK.
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

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SnpReport::parse(data) {
        let _ = (r.is_debug(), r.reported_tcb.to_string(), r.signed_bytes().len());
        let report = verify(
            &Evidence::SevSnp(r),
            &VCEK,
            &TrustAnchors::intel(),
            &Policy::default(),
            None,
        );
        let _ = (report.trusted(), report.error());
    }
    let _ = Collateral::from_bytes(data);
});
