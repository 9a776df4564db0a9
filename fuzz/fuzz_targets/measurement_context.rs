//! The measurement context JSON that `mse` reads back: arbitrary text never panics, and what
//! parses re-serialises to the same manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::measurement::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(m) = Manifest::from_context_json(text)
    {
        let again = Manifest::from_context_json(&m.to_context_json()).expect("round trip");
        assert_eq!(again.measurement(), m.measurement());
    }
});
