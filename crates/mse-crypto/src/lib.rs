//! The encrypted code package, the sealed box and key derivation.
//!
//! Byte formats are those of the original system (PyPI `mse-lib-crypto` 1.4 and PyNaCl), so that
//! packages and sealed secrets interoperate both ways. Every primitive comes from RustCrypto.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod key;
mod package;
mod seal;
mod secretbox;
mod stream;
mod unpack;

pub use key::{CodeKey, KeyError, derive_key};
pub use package::{
    Nonces, PackageError, PackageFile, PackageSummary, build_package, fingerprint,
    nonces_from_json, nonces_to_json,
};
pub use seal::{SealError, X25519KeyPair, open_sealed, seal};
pub use secretbox::{NONCE_LEN, OVERHEAD, SecretboxError, TAG_LEN, decrypt_file, encrypt_file};
pub use unpack::{UnpackError, UnpackLimits, UnpackSummary, unpack_package};

/// Files with this base name stay in clear in a package (pip reads them outside the enclave).
pub const CLEAR_FILE_NAME: &str = "requirements.txt";
/// Suffix of encrypted members.
pub const ENC_SUFFIX: &str = ".enc";

/// Whether a package-relative path names a file that is kept in clear.
pub fn is_clear_file(rel: &str) -> bool {
    rel.rsplit('/').next() == Some(CLEAR_FILE_NAME)
}
