//! mse-wsgi's own request → environ conversions (hyper parses HTTP itself): arbitrary Host
//! header, header name and request target never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let host = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    mse_wsgi::fuzzing::request_parts(host, name, target);
});
