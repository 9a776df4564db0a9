//! The sandbox's /proc/self/mountinfo and /proc/self/cgroup parsers: any text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mse_sandbox::fuzzing::procfs(&String::from_utf8_lossy(data));
});
