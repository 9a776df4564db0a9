//! mse-enclave's provisioning past the JSON shape: the whole `Provisioner::provision` (uuid,
//! hex code keys, the sealed box to the enclave's X25519 key and the JSON inside it, the owner's
//! PEM key and its match with the certificate, decryption of a real package) on payloads built
//! from fuzzed fields, in self and owner mode. Raw bytes are tried too.
//!
//! Invariant: a refused payload leaves nothing behind (no secrets file, empty module dir).
#![no_main]

#[path = "../common/pack.rs"]
mod pack;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mse_crypto::{UnpackLimits, X25519KeyPair};
use mse_enclave::provision::{Mode, Provisioner};
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const ID: &str = "6f1c1e3a-5f0e-4b3e-9f59-3a2b1c0d9e8f";
const CODE_KEY: [u8; 32] = [0x11; 32];

struct Fixture {
    _dir: tempfile::TempDir,
    self_mode: Provisioner,
    owner_mode: Provisioner,
    enclave_public: [u8; 32],
    owner_key_pem: String,
    other_key_pem: String,
}

fn provisioner(
    root: &Path,
    name: &str,
    package: &Path,
    digest: [u8; 32],
    mode: Mode,
) -> Provisioner {
    let base = root.join(name);
    std::fs::create_dir_all(base.join("module")).expect("module dir");
    Provisioner {
        id: ID.to_owned(),
        package: package.to_owned(),
        package_digest: digest,
        x25519: Arc::new(X25519KeyPair::from_secret([0x77; 32])),
        mode,
        secrets_path: base.join("secrets.json"),
        sealed_secrets_path: base.join("sealed_secrets.json"),
        module_path: base.join("module"),
        limits: UnpackLimits {
            max_member_bytes: 1 << 20,
            max_total_bytes: 4 << 20,
            max_entries: 100,
        },
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let package: PathBuf = dir.path().join("package.tar");
    let tar = pack::package(CODE_KEY, &[("app.py", b"app = None\n")]);
    std::fs::write(&package, &tar).expect("package file");
    let digest: [u8; 32] = Sha256::digest(&tar).into();

    let owner_key = rcgen::KeyPair::generate().expect("key");
    let other_key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["app.example.com".to_owned()])
        .expect("params")
        .self_signed(&owner_key)
        .expect("cert");
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let self_mode = provisioner(dir.path(), "self", &package, digest, Mode::SelfSigned);
    let owner_mode = provisioner(dir.path(), "owner", &package, digest, Mode::Owner(chain));
    let enclave_public = self_mode.x25519.public();
    Fixture {
        _dir: dir,
        self_mode,
        owner_mode,
        enclave_public,
        owner_key_pem: owner_key.serialize_pem(),
        other_key_pem: other_key.serialize_pem(),
    }
});

#[derive(Arbitrary, Debug)]
enum Key {
    Right,
    Wrong([u8; 32]),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Sealed {
    /// Any text where base64url is expected.
    Text(String),
    /// A real sealed box (to this enclave or to another key) of a JSON object.
    Object {
        code_key: Option<Key>,
        fields: Vec<(String, String)>,
        to_enclave: bool,
    },
    /// A real sealed box of any bytes.
    Bytes { plain: Vec<u8>, to_enclave: bool },
}

#[derive(Arbitrary, Debug)]
enum Ssl {
    Right,
    Other,
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct Fields {
    owner_mode: bool,
    uuid: Option<String>,
    code_key: Option<Key>,
    app_secrets: Option<String>,
    sealed: Option<Sealed>,
    ssl: Option<Ssl>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Fields(Fields),
}

fn key_text(k: &Key) -> String {
    match k {
        Key::Right => hex::encode(CODE_KEY),
        Key::Wrong(b) => hex::encode(b),
        Key::Text(t) => t.clone(),
    }
}

fn seal_to(f: &Fixture, to_enclave: bool, plain: &[u8]) -> String {
    let recipient = if to_enclave {
        f.enclave_public
    } else {
        [9; 32]
    };
    URL_SAFE_NO_PAD.encode(mse_crypto::seal(&recipient, plain).expect("seal"))
}

fn body(f: &Fixture, x: &Fields) -> Vec<u8> {
    let mut m = Map::new();
    m.insert(
        "uuid".into(),
        json!(x.uuid.clone().unwrap_or_else(|| ID.into())),
    );
    if let Some(k) = &x.code_key {
        m.insert("code_secret_key".into(), json!(key_text(k)));
    }
    if let Some(s) = &x.app_secrets {
        let v = serde_json::from_str(s).unwrap_or_else(|_| json!(s));
        m.insert("app_secrets".into(), v);
    }
    if let Some(s) = &x.sealed {
        let text = match s {
            Sealed::Text(t) => t.clone(),
            Sealed::Object {
                code_key,
                fields,
                to_enclave,
            } => {
                let mut o: Map<String, Value> =
                    fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                if let Some(k) = code_key {
                    o.insert("code_secret_key".into(), json!(key_text(k)));
                }
                seal_to(f, *to_enclave, &serde_json::to_vec(&o).expect("json"))
            }
            Sealed::Bytes { plain, to_enclave } => seal_to(f, *to_enclave, plain),
        };
        m.insert("app_sealed_secrets".into(), json!(text));
    }
    if let Some(s) = &x.ssl {
        let pem = match s {
            Ssl::Right => f.owner_key_pem.clone(),
            Ssl::Other => f.other_key_pem.clone(),
            Ssl::Text(t) => t.clone(),
        };
        m.insert("ssl_private_key".into(), json!(pem));
    }
    serde_json::to_vec(&m).expect("json")
}

fn clear(p: &Provisioner) {
    let _ = std::fs::remove_file(&p.secrets_path);
    let _ = std::fs::remove_file(&p.sealed_secrets_path);
    let _ = std::fs::remove_dir_all(&p.module_path);
    std::fs::create_dir_all(&p.module_path).expect("module dir");
}

fuzz_target!(|input: Input| {
    let f = &*FIXTURE;
    let (p, body) = match &input {
        Input::Raw(bytes) => (&f.self_mode, bytes.clone()),
        Input::Fields(x) => (
            if x.owner_mode {
                &f.owner_mode
            } else {
                &f.self_mode
            },
            body(f, x),
        ),
    };
    match p.provision(&body) {
        Ok(_) => {
            assert!(p.module_path.join("app.py").is_file());
            clear(p);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(!p.secrets_path.exists() && !p.sealed_secrets_path.exists());
            let left = std::fs::read_dir(&p.module_path)
                .expect("module dir")
                .count();
            assert_eq!(left, 0, "{e}");
        }
    }
});
