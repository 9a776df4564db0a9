//! RA-TLS certificate parser (all forms), the TCG tagged-evidence CBOR decoder and the quote
//! certification-chain reader: any bytes give a value or a typed error, never a panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::ratls::{RaTlsCert, decode_tagged_evidence};
use mse_attest::sim_root_from_quote;

fuzz_target!(|data: &[u8]| {
    match RaTlsCert::parse(data) {
        Ok(cert) => {
            let _ = cert.x25519_public();
            let _ = cert.pem();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Err(e) = decode_tagged_evidence(data) {
        let _ = e.to_string();
    }
    let _ = sim_root_from_quote(data);
});
