//! SGX DCAP quote v3 parser, kind detection and hex decoding of `Evidence::parse`, and the
//! whole verifier (dcap-qvl's decoders included) against the real sample collateral.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::{Evidence, SgxQuote};
use mse_attest::{Collateral, Policy, TrustAnchors, verify};

static COLLATERAL: LazyLock<Collateral> = LazyLock::new(|| {
    Collateral::from_bytes(include_bytes!(
        "../../crates/mse-attest/tests/data/dcap/sgx_quote_collateral.json"
    ))
    .expect("sample collateral")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = SgxQuote::parse(data) {
        let _ = q.qe.certification.pem_chain_der();
        assert_eq!(q.signed_bytes().len(), 432);
    }
    if let Ok(e) = Evidence::parse(data) {
        let _ = (e.report_data(), e.measurement(), e.is_debug(), e.kind());
        let policy = Policy {
            now: Some(UNIX_EPOCH + Duration::from_secs(1_751_328_000)),
            ..Policy::default()
        };
        let report = verify(&e, &COLLATERAL, &TrustAnchors::intel(), &policy, None);
        let _ = (report.trusted(), report.error(), report.to_string());
    }
});
