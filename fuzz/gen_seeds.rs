//! Writes the generated part of the committed seed corpora (fuzz/seeds/<target>/) with the
//! project's own packer, sim attester and sealfs ciphers, so the seeds are valid inputs that get
//! past every checksum, signature and header. Not a fuzz target: `cargo fuzz build -O`, then
//! `target/x86_64-unknown-linux-gnu/release/gen_seeds fuzz/seeds` (see fuzz/README.md).
//! Output is not byte-for-byte reproducible (fresh nonces and keys), only its validity is.

use std::fs;
use std::path::{Path, PathBuf};

use mse_attest::ratls::{RaTlsParams, generate};
use mse_sealfs::{Ciphers, SealKey, SealedFile};

#[path = "common/pack.rs"]
mod pack;
#[path = "common/sim.rs"]
mod sim;

/// The code key the package_unpack and venv targets decrypt with.
const PACKAGE_KEY: [u8; 32] = [1; 32];
/// The key and binding of the sealfs_format target.
const SEALFS_KEY: [u8; 32] = [0x5a; 32];
const SEALFS_BINDING: &[u8] = b"binding: dir id and name";

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("seed dir");
    fs::write(d.join(name), bytes).expect("seed file");
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));

    let app = pack::package(
        PACKAGE_KEY,
        &[
            (
                "app.py",
                b"from flask import Flask\napp = Flask(__name__)\n",
            ),
            ("requirements.txt", b"flask==3.0.0\nrequests>=2.31\n"),
            ("pkg/__init__.py", b""),
            ("pkg/static/index.html", b"<html></html>"),
        ],
    );
    let bare = pack::package(PACKAGE_KEY, &[("app.py", b"app = None\n")]);
    for target in ["package_unpack", "venv_requirements"] {
        write(&dir, target, "flask-app.tar", &app);
        write(&dir, target, "no-requirements.tar", &bare);
    }

    // A sim SGX quote and the RA-TLS certificate holding one (MSE and TCG DICE forms).
    let quote = &sim::SIM.quote;
    write(&dir, "sgx_quote", "sim-quote.bin", quote);
    write(&dir, "ratls_cert", "sim-quote.bin", quote);
    let params = RaTlsParams {
        san: "app.example.com".into(),
        not_before: time::OffsetDateTime::from_unix_timestamp(1_704_067_200).expect("time"),
        not_after: time::OffsetDateTime::from_unix_timestamp(2_524_607_999).expect("time"),
        x25519_public: [0x25; 32],
    };
    let id = generate(&sim::SIM.attester, &params).expect("RA-TLS certificate");
    write(&dir, "ratls_cert", "sim-ratls.der", &id.cert_der);
    write(
        &dir,
        "ratls_cert",
        "sim-ratls.pem",
        id.cert_pem().as_bytes(),
    );

    // sealfs: each on-disk structure, sealed with the target's key.
    let c = Ciphers::new(&SealKey::from_bytes(SEALFS_KEY));
    let (_, header) = c.new_header(SEALFS_BINDING).expect("header");
    write(&dir, "sealfs_format", "header", &header);
    let (dir_id, dir_id_file) = c.new_dir_id().expect("dir id");
    write(&dir, "sealfs_format", "dir-id", &dir_id_file);
    let link = c.seal_link(b"../target/file.txt").expect("link");
    write(&dir, "sealfs_format", "link", link.as_bytes());
    let name = c.encrypt_name(&[7; 16], b"notes.txt").expect("name");
    write(&dir, "sealfs_format", "name", name.as_bytes());
    let _ = dir_id;
    // A whole backing file (header + two blocks) as the host stores it.
    let backing = tempfile::NamedTempFile::new().expect("tempfile");
    let file = backing.reopen().expect("reopen");
    let mut sealed = SealedFile::create(&c, file, SEALFS_BINDING).expect("create");
    sealed.write(&c, 0, &vec![b'x'; 5000]).expect("write");
    drop(sealed);
    write(
        &dir,
        "sealfs_format",
        "backing-file",
        &fs::read(backing.path()).expect("read"),
    );
}
