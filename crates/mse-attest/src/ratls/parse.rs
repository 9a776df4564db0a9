//! Reading RA-TLS certificates of every form we meet: ours and the original MSE's (raw quote in
//! 1.2.840.113741.1337.6, report_data[0..32] = SHA-256 of the uncompressed P-256 point),
//! Gramine's legacy form (same quote under the quirky 0.6.9.42.840.113741.1337.6, bound to
//! SHA-256 of the SubjectPublicKeyInfo DER) and the TCG DICE tagged-evidence form (quote bound
//! to SHA-256 of the claims, which carry SHA-256 of the SubjectPublicKeyInfo).

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::tcg::{decode_tagged_evidence, is_sha256};
use super::{GRAMINE_LEGACY_OID_DER, RaTlsError, SGX_QUOTE_OID_DER, TCG_TAGGED_EVIDENCE_OID_DER};

/// id-ecPublicKey and prime256v1.
const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";
const ECDSA_SHA256_OID: &str = "1.2.840.10045.4.3.2";
/// Certificates larger than this are not RA-TLS certificates we accept.
const MAX_CERT: usize = 64 * 1024;

/// Where the evidence of a certificate came from, and so how the key is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceForm {
    /// 1.2.840.113741.1337.6 (MSE, this project): SHA-256(0x04 ‖ X ‖ Y) ‖ X25519 key.
    Mse,
    /// Gramine's legacy OID quirk: SHA-256(SubjectPublicKeyInfo DER).
    GramineLegacy,
    /// 2.23.133.5.4.9 alone: SHA-256(claims), claims carrying SHA-256(SubjectPublicKeyInfo).
    TcgDice,
}

impl std::fmt::Display for EvidenceForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceForm::Mse => "MSE (1.2.840.113741.1337.6)",
            EvidenceForm::GramineLegacy => "Gramine legacy (0.6.9.42.840.113741.1337.6)",
            EvidenceForm::TcgDice => "TCG DICE tagged evidence (2.23.133.5.4.9)",
        })
    }
}

/// A parsed RA-TLS certificate.
#[derive(Debug, Clone)]
pub struct RaTlsCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The form whose evidence is verified (the first present of Mse, GramineLegacy, TcgDice).
    pub form: EvidenceForm,
    /// Every form present in the certificate.
    pub forms_present: Vec<EvidenceForm>,
    /// The quote (or report) to verify.
    pub quote: Vec<u8>,
    /// What the evidence's report_data must start with for the key to be bound.
    pub expected_report_data: Vec<u8>,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// Subject, RFC 4514.
    pub subject: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub san: Vec<String>,
}

fn not_cert(e: impl std::fmt::Display) -> RaTlsError {
    RaTlsError::NotCertificate(e.to_string())
}

/// DER from PEM (first CERTIFICATE block) or DER input.
fn to_der(input: &[u8]) -> Result<Vec<u8>, RaTlsError> {
    if input.len() > MAX_CERT {
        return Err(not_cert(format!("{} bytes is too large", input.len())));
    }
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        for pem in x509_parser::pem::Pem::iter_from_buffer(trimmed) {
            let pem = pem.map_err(not_cert)?;
            if pem.label == "CERTIFICATE" {
                return Ok(pem.contents);
            }
        }
        return Err(not_cert("no CERTIFICATE block in PEM"));
    }
    Ok(input.to_vec())
}

impl RaTlsCert {
    /// Parse a certificate (DER or PEM) and locate its evidence.
    pub fn parse(input: &[u8]) -> Result<RaTlsCert, RaTlsError> {
        let der = to_der(input)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(not_cert)?;
        let spki = cert.public_key();
        let spki_der = spki.raw.to_vec();
        let spki_hash: [u8; 32] = Sha256::digest(&spki_der).into();

        let mut mse = None;
        let mut gramine = None;
        let mut tcg = None;
        for ext in cert.extensions() {
            let oid = ext.oid.as_bytes();
            if oid == SGX_QUOTE_OID_DER {
                mse.get_or_insert_with(|| ext.value.to_vec());
            } else if oid == GRAMINE_LEGACY_OID_DER {
                gramine.get_or_insert_with(|| ext.value.to_vec());
            } else if oid == TCG_TAGGED_EVIDENCE_OID_DER {
                tcg.get_or_insert_with(|| ext.value.to_vec());
            }
        }
        let mut forms_present = Vec::new();
        mse.is_some().then(|| forms_present.push(EvidenceForm::Mse));
        gramine
            .is_some()
            .then(|| forms_present.push(EvidenceForm::GramineLegacy));
        tcg.is_some()
            .then(|| forms_present.push(EvidenceForm::TcgDice));

        let (form, quote, expected_report_data) = if let Some(quote) = mse {
            let point = ec_p256_point(&cert)?;
            check_self_signature(&cert, point)?;
            (EvidenceForm::Mse, quote, Sha256::digest(point).to_vec())
        } else if let Some(quote) = gramine {
            (EvidenceForm::GramineLegacy, quote, spki_hash.to_vec())
        } else if let Some(value) = tcg {
            let tagged = decode_tagged_evidence(&value)?;
            match &tagged.pubkey_hash {
                Some((alg, hash)) if is_sha256(*alg) && hash[..] == spki_hash => {}
                Some((alg, hash)) => {
                    return Err(RaTlsError::ClaimsKeyMismatch {
                        claimed: format!("alg {alg}: {}", hex::encode(hash)),
                        actual: hex::encode(spki_hash),
                    });
                }
                None => {
                    return Err(RaTlsError::BadTaggedEvidence(
                        "claims lack \"pubkey-hash\"".into(),
                    ));
                }
            }
            (
                EvidenceForm::TcgDice,
                tagged.quote,
                Sha256::digest(&tagged.claims).to_vec(),
            )
        } else {
            return Err(RaTlsError::NoEvidence);
        };

        let validity = cert.validity();
        let san = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => ip_to_string(ip),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(RaTlsCert {
            form,
            forms_present,
            quote,
            expected_report_data,
            spki_der,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            subject: cert.subject().to_string(),
            san,
            der,
        })
    }

    /// The enclave's X25519 public key (report_data[32..64]) of an MSE-form certificate.
    pub fn x25519_public(&self) -> Option<[u8; 32]> {
        if self.form != EvidenceForm::Mse {
            return None;
        }
        let evidence = crate::Evidence::parse(&self.quote).ok()?;
        evidence.report_data()[32..64].try_into().ok()
    }

    /// Whether the certificate is valid at `now` (Unix seconds): the RA-TLS certificate expires
    /// with the app, so an expired one must not be trusted even if its evidence is fine.
    pub fn check_validity(&self, now: i64) -> Result<(), RaTlsError> {
        if now < self.not_before || now > self.not_after {
            return Err(RaTlsError::Validity {
                now: crate::encode::rfc3339(now).unwrap_or_else(|_| now.to_string()),
                not_before: crate::encode::rfc3339(self.not_before).unwrap_or_default(),
                not_after: crate::encode::rfc3339(self.not_after).unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The certificate as PEM (what `curl --cacert` takes).
    pub fn pem(&self) -> String {
        crate::encode::pem_encode("CERTIFICATE", &self.der)
    }
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// The certificate must be signed by its own (attested) key: then its names and validity come
/// from the enclave too, even when the certificate arrives as a file rather than over TLS.
fn check_self_signature(cert: &X509Certificate<'_>, point: &[u8]) -> Result<(), RaTlsError> {
    use p256::ecdsa::signature::Verifier;
    let bad = |why: &str| RaTlsError::SelfSignature(why.to_owned());
    let alg = cert.signature_algorithm.algorithm.to_id_string();
    if alg != ECDSA_SHA256_OID {
        return Err(bad(&format!(
            "signature algorithm {alg}, expected ecdsa-with-SHA256"
        )));
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
        .map_err(|_| bad("invalid P-256 point"))?;
    let sig = p256::ecdsa::Signature::from_der(&cert.signature_value.data)
        .map_err(|_| bad("malformed ECDSA signature"))?;
    key.verify(cert.tbs_certificate.as_ref(), &sig)
        .map_err(|_| bad("signature does not verify with the certificate's own key"))
}

/// The uncompressed point of a P-256 key, or why the key does not fit the MSE binding.
fn ec_p256_point<'a>(cert: &'a X509Certificate<'_>) -> Result<&'a [u8], RaTlsError> {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let point = &spki.subject_public_key.data;
    if alg != EC_PUBLIC_KEY_OID || curve.as_deref() != Some(P256_OID) {
        return Err(RaTlsError::UnsupportedKey(format!(
            "{alg} ({})",
            curve.unwrap_or_default()
        )));
    }
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err(RaTlsError::UnsupportedKey(format!(
            "a {}-byte EC point",
            point.len()
        )));
    }
    Ok(point)
}
