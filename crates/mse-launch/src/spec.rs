//! [`LaunchSpec`]: what an app is launched as, serialised canonically; its SHA-256 is the app's
//! launch identity (the simulated TEE reports it as MRENCLAVE; a confidential VM binds it in
//! HOST_DATA / MRCONFIGID).
//!
//! # Canonical bytes (version 1)
//!
//! `serde_json`'s compact output of the struct, fields in declaration order, no whitespace,
//! digests as 64 lowercase hex characters, integers in decimal, no floats and no maps:
//!
//! ```text
//! {"version":1,"app_id":S,"san":S,"application":S,"memory_mb":N,"vcpus":N,"tee":K,"tls":T,
//!  "package":{"sha256":H,"size":N},"environment_sha256":H,"runtime":R}
//! ```
//! (on one line) where `K` is a [`TeeKind`] spelling, `T` is `{"expiration":UNIX}` or
//! `{"owner_certificate_sha256":H}`, `R` is `{"process":{"enclave_sha256":H}}` (SHA-256 of the
//! `mse-enclave` executable) or `{"vm":{"image_sha256":H}}` (SHA-256 of the guest image's
//! `image.json`). `environment_sha256` is the "environment digest v1" of the app's virtualenv
//! (`mse_attest::measurement::environment_digest`). spec hash = SHA-256(canonical bytes).
//!
//! Parsing ([`LaunchSpec::from_json`]) is strict: unknown fields, other versions, non-canonical
//! digests, a bad UUID, application or SAN, and zero sizes are refused with one line.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::TeeKind;

/// The spec version this code writes and accepts.
pub const SPEC_VERSION: u32 = 1;

/// Largest spec accepted by [`LaunchSpec::from_json`] (a real one is about 600 bytes).
pub const MAX_SPEC_BYTES: usize = 16 * 1024;

/// Longest SAN accepted (a DNS name is at most 253 characters).
const MAX_SAN: usize = 253;
/// Longest `module:variable` accepted.
const MAX_APPLICATION: usize = 256;

/// A SHA-256 digest, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest32 {
        Digest32(Sha256::digest(bytes).into())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Option<Digest32> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Digest32(out))
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; 32]> for Digest32 {
    fn from(b: [u8; 32]) -> Digest32 {
        Digest32(b)
    }
}

impl Serialize for Digest32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest32, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest32::from_hex(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{:?} is not a SHA-256 digest (64 lowercase hex characters)",
                text.chars().take(80).collect::<String>()
            ))
        })
    }
}

/// How the app's TLS certificate is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TlsSpec {
    /// Self mode: the enclave's RA-TLS certificate is valid until this Unix time (seconds).
    Expiration(i64),
    /// Owner mode: the app serves the owner's certificate chain, whose PEM file has this SHA-256.
    OwnerCertificateSha256(Digest32),
}

/// The encrypted code package (the tar `mse package` writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRef {
    /// SHA-256 of the tar file.
    pub sha256: Digest32,
    /// Its size in bytes (> 0).
    pub size: u64,
}

/// What runs the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Runtime {
    /// A host process: the `mse-enclave` executable.
    Process {
        /// SHA-256 of the `mse-enclave` executable.
        enclave_sha256: Digest32,
    },
    /// A confidential VM booted from the guest image.
    Vm {
        /// SHA-256 of the guest image's `image.json` bytes.
        image_sha256: Digest32,
    },
}

/// The launch identity of an app: everything that decides what runs and how it presents itself.
///
/// Fields are serialised in declaration order; do not reorder them (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchSpec {
    /// Always [`SPEC_VERSION`].
    pub version: u32,
    /// The app's UUID (lowercase, 8-4-4-4-12); the configuration payload must carry the same.
    pub app_id: String,
    /// The domain name (or IP address) in the enclave certificate's SAN, and the router's SNI.
    pub san: String,
    /// The app object, `module:variable`.
    pub application: String,
    /// Memory of the enclave (process: sandbox limit; VM: guest RAM), MB, > 0.
    pub memory_mb: u64,
    /// CPUs of the enclave (process: pinned CPUs; VM: vCPUs), > 0.
    pub vcpus: u32,
    /// The TEE.
    pub tee: TeeKind,
    /// The TLS mode.
    pub tls: TlsSpec,
    /// The encrypted code package.
    pub package: PackageRef,
    /// "environment digest v1" of the app's virtualenv.
    pub environment_sha256: Digest32,
    /// What executes the app.
    pub runtime: Runtime,
}

/// Why bytes are not a valid [`LaunchSpec`]. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// More than [`MAX_SPEC_BYTES`].
    #[error("launch spec: {0} bytes is more than the {MAX_SPEC_BYTES} allowed")]
    TooLarge(usize),
    /// Not the JSON shape (serde's message, with line and column).
    #[error("launch spec: {0}")]
    Json(String),
    /// A field has a value the contract refuses.
    #[error("launch spec: {field}: {why}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// A short, quoted prefix of `text` for an error message.
fn quoted(text: &str) -> String {
    let prefix: String = text.chars().take(64).collect();
    if prefix.len() < text.len() {
        format!("{prefix:?}…")
    } else {
        format!("{prefix:?}")
    }
}

/// Whether `text` is a canonical lowercase UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether `text` is `module:variable` with Python identifiers (dotted module).
pub fn is_application(text: &str) -> bool {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    text.len() <= MAX_APPLICATION
        && text
            .split_once(':')
            .is_some_and(|(m, v)| m.split('.').all(ident) && ident(v))
}

/// Whether `text` can be a certificate SAN (a DNS name or an IP address).
fn is_san(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_SAN
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '\\'))
}

impl LaunchSpec {
    /// A valid self-mode sim spec with fixed placeholder digests (`0x11…` package, `0x22…`
    /// environment, `0x33…` runtime), for tests and examples.
    pub fn example() -> LaunchSpec {
        LaunchSpec {
            version: SPEC_VERSION,
            app_id: "123e4567-e89b-12d3-a456-426614174000".into(),
            san: "app.example.com".into(),
            application: "app:app".into(),
            memory_mb: 1024,
            vcpus: 1,
            tee: TeeKind::Sim,
            tls: TlsSpec::Expiration(1_900_000_000),
            package: PackageRef {
                sha256: Digest32([0x11; 32]),
                size: 4096,
            },
            environment_sha256: Digest32([0x22; 32]),
            runtime: Runtime::Process {
                enclave_sha256: Digest32([0x33; 32]),
            },
        }
    }

    /// The canonical bytes (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Strings, integers and enums only: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The spec hash: SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Digest32 {
        Digest32::of(&self.canonical_bytes())
    }

    /// The measurement `mse` expects from the simulated TEE and the process launcher
    /// (MRENCLAVE): the spec hash. The one function node, CLI and enclave share.
    pub fn sim_measurement(&self) -> [u8; 32] {
        self.hash().0
    }

    /// Checks what serde cannot express; every error is one line naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |field, why: String| Err(SpecError::Invalid { field, why });
        if self.version != SPEC_VERSION {
            return bad(
                "version",
                format!(
                    "{} is not supported (expected {SPEC_VERSION})",
                    self.version
                ),
            );
        }
        if !is_uuid(&self.app_id) {
            return bad(
                "app_id",
                format!("{} is not a lowercase UUID", quoted(&self.app_id)),
            );
        }
        if !is_san(&self.san) {
            return bad(
                "san",
                format!("{} is not a domain name or IP address", quoted(&self.san)),
            );
        }
        if !is_application(&self.application) {
            return bad(
                "application",
                format!(
                    "{} is not module:variable (e.g. app:app)",
                    quoted(&self.application)
                ),
            );
        }
        if self.memory_mb == 0 {
            return bad("memory_mb", "must be a positive number of MB".into());
        }
        if self.vcpus == 0 {
            return bad("vcpus", "must be a positive number of CPUs".into());
        }
        if self.package.size == 0 {
            return bad("package.size", "must be a positive number of bytes".into());
        }
        if let TlsSpec::Expiration(t) = self.tls
            && t <= 0
        {
            return bad("tls.expiration", format!("{t} is not a Unix time"));
        }
        Ok(())
    }

    /// Parses and validates untrusted bytes (at most [`MAX_SPEC_BYTES`]).
    pub fn from_json(bytes: &[u8]) -> Result<LaunchSpec, SpecError> {
        if bytes.len() > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge(bytes.len()));
        }
        let spec: LaunchSpec =
            serde_json::from_slice(bytes).map_err(|e| SpecError::Json(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LaunchSpec {
        LaunchSpec::example()
    }

    #[test]
    fn canonical_bytes_are_the_documented_ones() {
        let h = |b: u8| hex::encode([b; 32]);
        let want = format!(
            r#"{{"version":1,"app_id":"123e4567-e89b-12d3-a456-426614174000","san":"app.example.com","application":"app:app","memory_mb":1024,"vcpus":1,"tee":"sim","tls":{{"expiration":1900000000}},"package":{{"sha256":"{}","size":4096}},"environment_sha256":"{}","runtime":{{"process":{{"enclave_sha256":"{}"}}}}}}"#,
            h(0x11),
            h(0x22),
            h(0x33)
        );
        let s = spec();
        assert_eq!(String::from_utf8(s.canonical_bytes()).unwrap(), want);
        assert_eq!(s.hash(), Digest32::of(want.as_bytes()));
        assert_eq!(s.sim_measurement(), s.hash().0);
        assert_eq!(LaunchSpec::from_json(want.as_bytes()).unwrap(), s);

        let mut vm = spec();
        vm.tee = TeeKind::SevSnp;
        vm.tls = TlsSpec::OwnerCertificateSha256(Digest32([0x44; 32]));
        vm.runtime = Runtime::Vm {
            image_sha256: Digest32([0x55; 32]),
        };
        let text = String::from_utf8(vm.canonical_bytes()).unwrap();
        assert!(text.contains(&format!(
            r#""tee":"sev-snp","tls":{{"owner_certificate_sha256":"{}"}}"#,
            h(0x44)
        )));
        assert!(text.ends_with(&format!(
            r#""runtime":{{"vm":{{"image_sha256":"{}"}}}}}}"#,
            h(0x55)
        )));
        assert_eq!(LaunchSpec::from_json(text.as_bytes()).unwrap(), vm);
        assert_ne!(vm.hash(), spec().hash());
    }

    /// The fuzz target's seeds are valid specs (so fuzzing starts past the JSON shape).
    #[test]
    fn fuzz_seeds_are_valid_canonical_specs() {
        let seed = include_bytes!("../../../fuzz/seeds/launch_spec/self-sim-process.json");
        assert_eq!(LaunchSpec::from_json(seed).unwrap(), spec());
        assert_eq!(&spec().canonical_bytes()[..], &seed[..]);
        let seed = include_bytes!("../../../fuzz/seeds/launch_spec/owner-snp-vm.json");
        let vm = LaunchSpec::from_json(seed).unwrap();
        assert_eq!(vm.canonical_bytes(), seed.to_vec());
        assert_eq!(vm.tee, TeeKind::SevSnp);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = spec().hash();
        let edits: Vec<fn(&mut LaunchSpec)> = vec![
            |s| s.app_id = "123e4567-e89b-12d3-a456-426614174001".into(),
            |s| s.san = "other.example.com".into(),
            |s| s.application = "app:other".into(),
            |s| s.memory_mb = 2048,
            |s| s.vcpus = 2,
            |s| s.tee = TeeKind::GramineSgx,
            |s| s.tls = TlsSpec::Expiration(1_900_000_001),
            |s| s.package.sha256 = Digest32([0x12; 32]),
            |s| s.package.size = 4097,
            |s| s.environment_sha256 = Digest32([0x23; 32]),
            |s| {
                s.runtime = Runtime::Process {
                    enclave_sha256: Digest32([0x34; 32]),
                }
            },
        ];
        for edit in edits {
            let mut s = spec();
            edit(&mut s);
            assert_ne!(s.hash(), base, "{s:?}");
        }
    }

    #[test]
    fn strict_parsing_messages() {
        let good = String::from_utf8(spec().canonical_bytes()).unwrap();
        let err = |text: &str| {
            LaunchSpec::from_json(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&good.replacen("{", r#"{"extra":1,"#, 1)),
            "launch spec: unknown field `extra`, expected one of `version`, `app_id`, `san`, `application`, `memory_mb`, `vcpus`, `tee`, `tls`, `package`, `environment_sha256`, `runtime` at line 1 column 8"
        );
        // (what to replace in the good spec, with what, the error)
        let cases = [
            (
                r#""version":1"#,
                r#""version":2"#,
                "version: 2 is not supported (expected 1)",
            ),
            (
                "123e4567-e89b-12d3-a456-426614174000",
                "nope",
                "app_id: \"nope\" is not a lowercase UUID",
            ),
            (
                "123e4567-e89b",
                "123E4567-E89B",
                "app_id: \"123E4567-E89B-12d3-a456-426614174000\" is not a lowercase UUID",
            ),
            (
                "app:app",
                "app",
                "application: \"app\" is not module:variable (e.g. app:app)",
            ),
            (
                "app.example.com",
                "a b",
                "san: \"a b\" is not a domain name or IP address",
            ),
            (
                r#""memory_mb":1024"#,
                r#""memory_mb":0"#,
                "memory_mb: must be a positive number of MB",
            ),
            (
                r#""vcpus":1"#,
                r#""vcpus":0"#,
                "vcpus: must be a positive number of CPUs",
            ),
            (
                r#""size":4096"#,
                r#""size":0"#,
                "package.size: must be a positive number of bytes",
            ),
            (
                r#""tee":"sim""#,
                r#""tee":"tsm""#,
                "unknown variant `tsm`, expected one of `sim`, `sim-snp`, `sev-snp`, `tdx`, `gramine-sgx` at line 1 column 147",
            ),
        ];
        for (from, to, want) in cases {
            assert_eq!(err(&good.replace(from, to)), format!("launch spec: {want}"));
        }
        let long = "x".repeat(300);
        assert_eq!(
            err(&good.replace("app.example.com", &long)),
            format!(
                "launch spec: san: \"{}\"… is not a domain name or IP address",
                "x".repeat(64)
            )
        );
        assert_eq!(
            err(&good.replace(&"22".repeat(32), &"AA".repeat(32))),
            format!(
                "launch spec: {:?} is not a SHA-256 digest (64 lowercase hex characters) at line 1 column 367",
                "AA".repeat(32)
            )
        );
        assert_eq!(
            err(&"x".repeat(MAX_SPEC_BYTES + 1)),
            "launch spec: 16385 bytes is more than the 16384 allowed"
        );
        assert_eq!(
            err(""),
            "launch spec: EOF while parsing a value at line 1 column 0"
        );
    }
}
