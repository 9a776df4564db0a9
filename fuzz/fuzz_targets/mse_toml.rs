//! mse.toml loader: any text gives a typed result or a ConfError, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_conf::{AppConf, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("/nonexistent-mse-fuzz/mse.toml");
    if let Err(e) = AppConf::parse(path, &text, &LoadOptions::default()) {
        let _ = e.to_string();
    }
});
