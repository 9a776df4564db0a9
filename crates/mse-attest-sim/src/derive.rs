//! Everything the sims derive from the node's 32-byte seed goes through HKDF-SHA256 here: byte
//! strings (chip ids, sealing keys) and the mock PKIs' ECDSA keys.

use hkdf::Hkdf;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, SerialNumber,
};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::SimError;
use crate::sgx::{SIM_NOT_AFTER, SIM_NOT_BEFORE};

/// HKDF-SHA256 of `seed` under `salt`, expanded with `info` to `N` bytes.
pub(crate) fn hkdf<const N: usize>(salt: &[u8], seed: &[u8; 32], info: &[u8]) -> [u8; N] {
    let hk = Hkdf::<Sha256>::new(Some(salt), seed);
    let mut out = [0u8; N];
    // N is at most 48 here, far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    if hk.expand(info, &mut out).is_err() {
        out = [0u8; N];
    }
    out
}

/// The signing key named `label`: the first `N`-byte HKDF output under `label/0`, `label/1`, ...
/// that `parse` accepts as a scalar (a retry is astronomically unlikely).
pub(crate) fn signing_key<const N: usize, K>(
    salt: &[u8],
    seed: &[u8; 32],
    label: &str,
    parse: impl Fn(&[u8]) -> Option<K>,
) -> K {
    let mut counter = 0u32;
    loop {
        let okm = hkdf::<N>(salt, seed, format!("{label}/{counter}").as_bytes());
        if let Some(key) = parse(&okm) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// A deterministic key type over the `SigningKey` in scope (its module's `Signature` in scope
/// too): `derive` from the seed with `$salt` and `$len`-byte scalars, `Debug` (the public point
/// only, never the scalar) and rcgen's key traits.
macro_rules! det_key {
    ($(#[$doc:meta])* $name:ident, $alg:path, $salt:expr, $len:literal) => {
        $(#[$doc])*
        pub struct $name {
            key: SigningKey,
            /// SEC1 uncompressed point 0x04 ‖ X ‖ Y (what X.509 carries in the SPKI bit string).
            point: Vec<u8>,
        }

        impl $name {
            /// Derive the key named `label` from `seed`.
            pub fn derive(seed: &[u8; 32], label: &str) -> $name {
                let key = $crate::derive::signing_key::<$len, _>($salt, seed, label, |okm| {
                    SigningKey::from_slice(okm).ok()
                });
                let point = key
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                $name { key, point }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("public", &hex::encode(&self.point))
                    .finish()
            }
        }

        impl rcgen::PublicKeyData for $name {
            fn der_bytes(&self) -> &[u8] {
                &self.point
            }

            fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
                &$alg
            }
        }

        impl rcgen::SigningKey for $name {
            fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
                let sig: Signature = self.key.sign(msg);
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    };
}
pub(crate) use det_key;

/// The `SimError` of a failed certificate or CRL step.
pub(crate) fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> SimError + '_ {
    move |e| SimError::Pki(format!("{what}: {e}"))
}

/// A CA certificate of `key` from `params` (certificate and CRL signing, path length
/// `constraint`): self-signed without `issuer`, else signed by it (with an authority key
/// identifier). Also returns the issuer it becomes.
fn ca_cert<'k, K: rcgen::SigningKey>(
    mut params: CertificateParams,
    constraint: BasicConstraints,
    key: &'k K,
    issuer: Option<&Issuer<'_, &K>>,
    what: &str,
) -> Result<(Certificate, Issuer<'static, &'k K>), SimError> {
    params.is_ca = IsCa::Ca(constraint);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = match issuer {
        None => params.self_signed(key),
        Some(issuer) => {
            params.use_authority_key_identifier_extension = true;
            params.signed_by(key, issuer)
        }
    }
    .map_err(pki_err(what))?;
    Ok((cert, Issuer::new(params, key)))
}

/// A sim PKI's timestamp (Unix seconds).
pub(crate) fn ts(secs: i64) -> Result<OffsetDateTime, SimError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| SimError::Pki(format!("bad time {secs}: {e}")))
}

/// Certificate parameters every sim certificate starts from: the sims' validity window,
/// `serial`, subject `dn`, SHA-256 key identifiers.
pub(crate) fn cert_params(
    dn: DistinguishedName,
    serial: [u8; 3],
) -> Result<CertificateParams, SimError> {
    let mut params = CertificateParams::default();
    params.not_before = ts(SIM_NOT_BEFORE)?;
    params.not_after = ts(SIM_NOT_AFTER)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = dn;
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// A root CA (path length `root_constraint`) and the CA it signs (path length 0), each
/// `(params, key, what)`: their certificates and the issuers they become.
pub(crate) fn ca_chain<'k, K: rcgen::SigningKey>(
    root: (CertificateParams, &'k K, &str),
    root_constraint: BasicConstraints,
    ca: (CertificateParams, &'k K, &str),
) -> Result<[(Certificate, Issuer<'static, &'k K>); 2], SimError> {
    let (root_cert, root_issuer) = ca_cert(root.0, root_constraint, root.1, None, root.2)?;
    let constraint = BasicConstraints::Constrained(0);
    let (ca_cert, ca_issuer) = ca_cert(ca.0, constraint, ca.1, Some(&root_issuer), ca.2)?;
    Ok([(root_cert, root_issuer), (ca_cert, ca_issuer)])
}
