//! SEV-SNP attestation report parser, and the VCEK collateral reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::Collateral;
use mse_attest::evidence::SnpReport;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SnpReport::parse(data) {
        let _ = (r.is_debug(), r.reported_tcb.to_string(), r.signed_bytes().len());
    }
    let _ = Collateral::from_bytes(data);
});
