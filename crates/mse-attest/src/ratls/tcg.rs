//! TCG DICE tagged evidence (OID 2.23.133.5.4.9), in the CBOR form Gramine and the
//! interoperable RA-TLS proposal use: `#6.60000([ bstr quote, bstr claims ])`, where claims is
//! a serialized map `{ "pubkey-hash": bstr(serialized [ hash-alg-id, bstr hash ]) }`.

use ciborium::value::Value;

use super::RaTlsError;

/// CBOR tag of "TEE quote" evidence.
pub const TCG_QUOTE_CBOR_TAG: u64 = 60000;
/// IANA named-information hash algorithm ID of SHA-256.
const SHA256_ALG_ID: u64 = 1;
/// Upper bound on the extension we are willing to decode (a quote is at most ~8 KiB).
const MAX_EVIDENCE: usize = 64 * 1024;

fn to_cbor(value: &Value) -> Result<Vec<u8>, RaTlsError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out)
        .map_err(|e| RaTlsError::Build(format!("CBOR: {e}")))?;
    Ok(out)
}

fn bad(what: &str) -> RaTlsError {
    RaTlsError::BadTaggedEvidence(what.to_owned())
}

fn from_cbor(bytes: &[u8], what: &str) -> Result<Value, RaTlsError> {
    if bytes.len() > MAX_EVIDENCE {
        return Err(bad(&format!(
            "{what} is {} bytes, more than {MAX_EVIDENCE}",
            bytes.len()
        )));
    }
    ciborium::de::from_reader_with_recursion_limit(bytes, 16)
        .map_err(|e| RaTlsError::BadTaggedEvidence(format!("{what}: {e}")))
}

/// Serialized claims binding a public key by the SHA-256 of its SubjectPublicKeyInfo.
pub fn encode_claims(spki_sha256: &[u8; 32]) -> Result<Vec<u8>, RaTlsError> {
    let entry = to_cbor(&Value::Array(vec![
        Value::Integer(SHA256_ALG_ID.into()),
        Value::Bytes(spki_sha256.to_vec()),
    ]))?;
    to_cbor(&Value::Map(vec![(
        Value::Text("pubkey-hash".to_owned()),
        Value::Bytes(entry),
    )]))
}

/// The extension value for `quote` and `claims`.
pub fn encode_tagged_evidence(quote: &[u8], claims: &[u8]) -> Result<Vec<u8>, RaTlsError> {
    to_cbor(&Value::Tag(
        TCG_QUOTE_CBOR_TAG,
        Box::new(Value::Array(vec![
            Value::Bytes(quote.to_vec()),
            Value::Bytes(claims.to_vec()),
        ])),
    ))
}

/// Decoded tagged evidence: the quote, the raw claims bytes and the key hash they bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedEvidence {
    /// The attestation evidence (raw quote or report).
    pub quote: Vec<u8>,
    /// The CBOR claims bound by the evidence.
    pub claims: Vec<u8>,
    /// `(hash-alg-id, hash)` of "pubkey-hash", when present.
    pub pubkey_hash: Option<(u64, Vec<u8>)>,
}

/// Decode the extension value (strict on shape, bounded in size and depth).
pub fn decode_tagged_evidence(bytes: &[u8]) -> Result<TaggedEvidence, RaTlsError> {
    let Value::Tag(tag, inner) = from_cbor(bytes, "evidence")? else {
        return Err(bad("not a CBOR tag"));
    };
    if tag != TCG_QUOTE_CBOR_TAG {
        return Err(bad(&format!(
            "CBOR tag {tag}, expected {TCG_QUOTE_CBOR_TAG}"
        )));
    }
    let Value::Array(items) = *inner else {
        return Err(bad("tag content is not an array"));
    };
    let [Value::Bytes(quote), Value::Bytes(claims)] = items.as_slice() else {
        return Err(bad("expected [bstr quote, bstr claims]"));
    };
    if quote.is_empty() {
        return Err(bad("empty quote"));
    }
    let Value::Map(entries) = from_cbor(claims, "claims")? else {
        return Err(bad("claims are not a CBOR map"));
    };
    let mut pubkey_hash = None;
    for (k, v) in entries {
        if k.as_text() != Some("pubkey-hash") {
            continue;
        }
        let Value::Bytes(entry) = v else {
            return Err(bad("pubkey-hash is not a bstr"));
        };
        let Value::Array(pair) = from_cbor(&entry, "pubkey-hash")? else {
            return Err(bad("pubkey-hash entry is not an array"));
        };
        let [Value::Integer(alg), Value::Bytes(hash)] = pair.as_slice() else {
            return Err(bad("pubkey-hash entry is not [uint, bstr]"));
        };
        let alg = u64::try_from(*alg).map_err(|_| bad("negative hash-alg-id"))?;
        pubkey_hash = Some((alg, hash.clone()));
    }
    Ok(TaggedEvidence {
        quote: quote.clone(),
        claims: claims.clone(),
        pubkey_hash,
    })
}

/// Whether a claims hash-alg-id names SHA-256 (the only one RA-TLS uses).
pub(crate) fn is_sha256(alg: u64) -> bool {
    alg == SHA256_ALG_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let claims = encode_claims(&[7; 32]).unwrap();
        let ev = encode_tagged_evidence(b"quote", &claims).unwrap();
        let back = decode_tagged_evidence(&ev).unwrap();
        assert_eq!(back.quote, b"quote");
        assert_eq!(back.claims, claims);
        assert_eq!(back.pubkey_hash, Some((1, vec![7; 32])));
    }

    #[test]
    fn rejects_wrong_tag_and_garbage() {
        let ev = to_cbor(&Value::Tag(1, Box::new(Value::Null))).unwrap();
        assert_eq!(
            decode_tagged_evidence(&ev).unwrap_err().to_string(),
            "malformed TCG tagged evidence: CBOR tag 1, expected 60000"
        );
        assert!(decode_tagged_evidence(&[0xff, 0x00]).is_err());
        // A byte string claiming 4 GiB, or deep nesting, is an error, not an allocation or a
        // stack overflow.
        let huge = [0xD9, 0xEA, 0x60, 0x82, 0x5B, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(decode_tagged_evidence(&huge).is_err());
        let deep = [0x81u8; 4096];
        assert!(decode_tagged_evidence(&deep).is_err());
        assert!(decode_tagged_evidence(&[]).is_err());
    }
}
