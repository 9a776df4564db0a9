//! `mse_launch::venv::requirements_of` on an uploaded package tar (the node reads the clear
//! requirements.txt out of a tenant's package before any venv is built), then the requirement
//! line checks on what it returns: any bytes give a value or a typed error, never a panic, and
//! a returned requirements text is never larger than the limit.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use mse_launch::venv::{MAX_REQUIREMENTS, requirement_lines, requirements_of};

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("tempfile");
    file.write_all(data).expect("write");
    match requirements_of(file.path()) {
        Ok(Some(text)) => {
            assert!(text.len() as u64 <= MAX_REQUIREMENTS);
            if let Ok(lines) = requirement_lines(&text) {
                for l in lines {
                    assert!(!l.starts_with('-') && !l.contains("://") && !l.contains('/'));
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
