//! TDX DCAP quote v4/v5 parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::evidence::TdxQuote;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = TdxQuote::parse(data) {
        let _ = q.qe.certification.pem_chain_der();
        let _ = (q.report.is_debug(), q.signed_bytes().len());
    }
});
