//! Package-encryption throughput versus the raw cipher, measured in the same run.
//!
//! `cargo run --release -p mse-crypto --example package_bench -- [WORKDIR]`
//! Writes ~100 MB of mixed files (one large, medium, many small) under WORKDIR, then times
//! (1) XSalsa20-Poly1305 sealing of a 64 MiB buffer on one core and (2) `build_package` of the
//! directory into a tar file, and prints MB/s and their ratio.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use mse_crypto::{CodeKey, PackageFile, build_package};

const MB: f64 = 1_000_000.0;

fn main() {
    let work = std::env::args()
        .nth(1)
        .filter(|a| !a.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join("mse-package-bench");
    let _ = std::fs::remove_dir_all(&work);
    let code = work.join("code");
    let files = make_tree(&code);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.abs).unwrap().len())
        .sum();
    println!(
        "data: {} files, {:.1} MB in {}",
        files.len(),
        total as f64 / MB,
        code.display()
    );

    let raw = best_of(5, || raw_cipher_seconds(64 << 20));
    let raw_mbs = (64 << 20) as f64 / MB / raw;
    println!("raw XSalsa20-Poly1305, one core: {raw_mbs:.0} MB/s");

    let key = CodeKey::generate();
    let out = work.join("package.tar");
    let pkg = best_of(5, || {
        let _ = std::fs::remove_file(&out);
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out).unwrap());
        let start = Instant::now();
        build_package(&files, &key, None, file, &|_| {}).unwrap();
        start.elapsed().as_secs_f64()
    });
    let pkg_mbs = total as f64 / MB / pkg;
    println!(
        "package build ({} rayon threads): {pkg_mbs:.0} MB/s",
        rayon::current_num_threads()
    );
    println!("package/raw-cipher ratio: {:.2}", pkg_mbs / raw_mbs);
    let _ = std::fs::remove_dir_all(&work);
}

/// Best (lowest) time of `n` runs: the figure least disturbed by the rest of the machine.
fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn raw_cipher_seconds(len: usize) -> f64 {
    let cipher = XSalsa20Poly1305::new(&[3u8; 32].into());
    let mut buf = vec![0x5au8; len];
    let start = Instant::now();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&[1u8; 24]), b"", &mut buf)
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box((tag, &buf));
    secs
}

/// ~100 MB: 1 × 40 MB, 100 × 500 kB, 2 000 × 5 kB, plus a requirements.txt.
fn make_tree(root: &Path) -> Vec<PackageFile> {
    let mut files = Vec::new();
    let mut add = |rel: String, len: usize, seed: u8| {
        let abs = root.join(&rel);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        std::fs::write(&abs, data).unwrap();
        files.push(PackageFile { rel, abs });
    };
    add("model/weights.bin".into(), 40_000_000, 1);
    for i in 0..100 {
        add(format!("data/part-{i:03}.bin"), 500_000, i as u8);
    }
    for i in 0..2000 {
        add(format!("src/mod{}/file{i:04}.py", i % 20), 5_000, i as u8);
    }
    add("requirements.txt".into(), 100, 0);
    files
}
