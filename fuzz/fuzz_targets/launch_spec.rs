//! mse-launch's LaunchSpec parser (the enclave reads a spec handed over by the host, the CLI one
//! from the node's API): arbitrary bytes never panic, and whatever parses re-serialises to
//! canonical bytes that parse back to the same spec with the same hash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = mse_launch::LaunchSpec::from_json(data) {
        let canonical = spec.canonical_bytes();
        let again = mse_launch::LaunchSpec::from_json(&canonical).expect("canonical bytes parse");
        assert_eq!(again, spec);
        assert_eq!(again.hash(), spec.hash());
    }
});
