//! mse-node's SNI router input: the ClientHello reader and the plaintext requirements.txt of an
//! uploaded package. Any bytes give a value or a typed error, never a panic; a name it returns
//! is always a valid DNS name, and a longer-than-allowed input is never "incomplete".
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_node::sni::{Hello, MAX_HELLO_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Hello::Sni(name)) => assert!(mse_node::config::valid_dns_name(&name)),
        Ok(Hello::Incomplete) => assert!(data.len() < MAX_HELLO_BYTES),
        Ok(Hello::NoSni) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(lines) = mse_launch::venv::requirement_lines(text) {
            for l in lines {
                assert!(!l.starts_with('-') && !l.contains("://"));
            }
        }
    }
});
