//! A code package built with the project's own packer (shared by gen_seeds and the targets
//! that need a real package).

use std::path::PathBuf;

use mse_crypto::{CodeKey, PackageFile, build_package};

/// The package tar of `files` (relative path, content), encrypted with `key`.
pub fn package(key: [u8; 32], files: &[(&str, &[u8])]) -> Vec<u8> {
    let src = tempfile::tempdir().expect("tempdir");
    let list: Vec<PackageFile> = files
        .iter()
        .map(|(rel, data)| {
            let abs: PathBuf = src.path().join(rel);
            std::fs::create_dir_all(abs.parent().expect("parent")).expect("mkdir");
            std::fs::write(&abs, data).expect("write");
            PackageFile {
                rel: (*rel).to_owned(),
                abs,
            }
        })
        .collect();
    let mut out = Vec::new();
    build_package(&list, &CodeKey::from_bytes(key), None, &mut out, &|_| {}).expect("package");
    out
}
