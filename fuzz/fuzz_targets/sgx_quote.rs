//! SGX DCAP quote v3 parser, plus kind detection and hex decoding of `Evidence::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::{Evidence, SgxQuote};

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = SgxQuote::parse(data) {
        let _ = q.qe.certification.pem_chain_der();
        assert_eq!(q.signed_bytes().len(), 432);
    }
    if let Ok(e) = Evidence::parse(data) {
        let _ = (e.report_data(), e.measurement(), e.is_debug(), e.kind());
    }
});
