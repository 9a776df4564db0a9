//! mse-enclave's configuration payload parser (the body of the POST to the configuration
//! server, sent by anyone who can reach the port): arbitrary bytes never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mse_enclave::fuzzing::conf_payload(data);
});
