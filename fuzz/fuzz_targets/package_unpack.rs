//! Package unpacker: hostile tar bytes are refused or unpacked inside the target only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_crypto::{CodeKey, UnpackLimits, unpack_package};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("out");
    let limits = UnpackLimits { max_member_bytes: 1 << 20, max_total_bytes: 4 << 20, max_entries: 1000 };
    let _ = unpack_package(data, &CodeKey::from_bytes([1; 32]), &target, &limits);
    // Whatever happened, nothing may exist beside the target.
    for entry in std::fs::read_dir(dir.path()).expect("read_dir") {
        assert_eq!(entry.expect("entry").file_name(), "out");
    }
});
