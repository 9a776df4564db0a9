//! RA-TLS certificates: build ours (DESIGN.md "RA-TLS certificate"), parse ours, the original
//! MSE's, Gramine's (legacy OID quirk) and the TCG DICE tagged-evidence form, verify one against
//! a [`Policy`], and pin a TLS server by its attested key (rustls verifiers).

mod build;
mod parse;
mod tcg;
mod tls;

pub use build::{RaTlsIdentity, RaTlsParams, generate, generate_with_key, report_data_for_key};
pub use parse::{EvidenceForm, RaTlsCert};
pub use tcg::{
    TCG_QUOTE_CBOR_TAG, TaggedEvidence, decode_tagged_evidence, encode_claims,
    encode_tagged_evidence,
};
pub use tls::{
    CaptureVerifier, PinnedCertVerifier, RaTlsVerifier, VerifiedServer, fetch_server_certificate,
};

use crate::{Collateral, Evidence, Policy, Report, TrustAnchors};

/// OID 1.2.840.113741.1337.6: the raw quote, as MSE (and Gramine's old `ra_tls_attest`) writes it.
pub const SGX_QUOTE_OID: &str = "1.2.840.113741.1337.6";
/// DER content bytes of [`SGX_QUOTE_OID`].
pub const SGX_QUOTE_OID_DER: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06];
/// Gramine's legacy quirk: the OID's own DER tag and length ended up inside its content, which
/// parsers read as 0.6.9.42.840.113741.1337.6.
pub const GRAMINE_LEGACY_OID_DER: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF8, 0x4D, 0x8A, 0x39, 0x06,
];
/// OID 2.23.133.5.4.9: TCG DICE tagged evidence (interoperable RA-TLS).
pub const TCG_TAGGED_EVIDENCE_OID: &str = "2.23.133.5.4.9";
/// DER content bytes of [`TCG_TAGGED_EVIDENCE_OID`].
pub const TCG_TAGGED_EVIDENCE_OID_DER: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09];

/// What is wrong with an RA-TLS certificate or its use.
#[derive(Debug, thiserror::Error)]
pub enum RaTlsError {
    /// The input is neither a DER nor a PEM certificate.
    #[error("not an X.509 certificate: {0}")]
    NotCertificate(String),
    #[error(
        "the certificate carries no attestation evidence (no extension {SGX_QUOTE_OID}, Gramine's legacy OID, or {TCG_TAGGED_EVIDENCE_OID})"
    )]
    /// The certificate carries no attestation evidence extension.
    NoEvidence,
    /// The TCG tagged-evidence extension is malformed.
    #[error("malformed TCG tagged evidence: {0}")]
    BadTaggedEvidence(String),
    /// The certificate key is not ECDSA P-256.
    #[error("the certificate key is {0}, but MSE RA-TLS binds an ECDSA P-256 key")]
    UnsupportedKey(String),
    /// The TCG claims name another key than the certificate's.
    #[error("TCG claims bind key hash {claimed}, but the certificate's key hashes to {actual}")]
    ClaimsKeyMismatch {
        /// The key the claims name (hex).
        claimed: String,
        /// What the evidence has.
        actual: String,
    },
    /// The certificate's self-signature is invalid.
    #[error("the certificate is not self-signed by its key: {0}")]
    SelfSignature(String),
    /// The embedded evidence does not parse.
    #[error("evidence in the certificate: {0}")]
    Evidence(#[from] crate::EvidenceError),
    /// Getting evidence from the attester failed.
    #[error("attestation: {0}")]
    Attest(#[from] crate::attester::AttestError),
    /// The certificate is not valid at the verification time.
    #[error("the certificate is valid from {not_before} to {not_after}, not at {now}")]
    Validity {
        /// The verification time (RFC 3339).
        now: String,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
    /// Building the certificate failed.
    #[error("building the certificate: {0}")]
    Build(String),
    /// Connecting to the server failed.
    #[error("TLS connection to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// Getting collateral failed.
    #[error("collateral: {0}")]
    Collateral(#[from] crate::CollateralError),
}

/// The trust anchors for `evidence`: Intel's root, plus the mock root its chain ends in when it
/// is simulated evidence. The verifier still accepts that root only under `allow_simulation`,
/// and otherwise says that simulation was refused rather than reporting a broken chain.
pub fn anchors_for(evidence: &Evidence) -> TrustAnchors {
    let anchors = TrustAnchors::intel();
    match crate::verify::sim_root_from_quote(evidence.raw()) {
        Some(root) => anchors.with_simulation_root(root),
        None => anchors,
    }
}

/// [`anchors_for`], plus for SEV-SNP evidence the mock ARK its collateral's chain ends in when
/// that is a simulation chain (a report carries no certificates; the mock KDS serves the chain).
/// Again only `allow_simulation` makes the verifier accept it.
pub fn anchors_for_collateral(evidence: &Evidence, collateral: &Collateral) -> TrustAnchors {
    let anchors = anchors_for(evidence);
    match (evidence, crate::verify::sim_ark_from_collateral(collateral)) {
        (Evidence::SevSnp(_), Some(ark)) => anchors.with_simulation_root(ark),
        _ => anchors,
    }
}

/// Verify an RA-TLS certificate (DER or PEM): parse its evidence, then run the shared verifier
/// with the certificate-key binding as expected report data. The report lists every check.
pub fn verify_certificate(
    cert: &[u8],
    collateral: &Collateral,
    anchors: &TrustAnchors,
    policy: &Policy,
) -> Result<(RaTlsCert, Report), RaTlsError> {
    let parsed = RaTlsCert::parse(cert)?;
    let evidence = Evidence::parse(&parsed.quote)?;
    let report = crate::verify(
        &evidence,
        collateral,
        anchors,
        policy,
        Some(&parsed.expected_report_data),
    );
    Ok((parsed, report))
}
