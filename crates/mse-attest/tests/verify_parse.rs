//! Evidence and collateral parsers: bad input gives a clear error, never a panic.

use mse_attest::evidence::{MAX_EVIDENCE_LEN, SgxQuote, SnpReport, TdxQuote};
use mse_attest::{Collateral, CollateralError, Evidence, EvidenceError};

mod vectors;
use vectors::data;

#[test]
fn every_truncation_of_real_evidence_is_an_error() {
    let snp = Evidence::parse(&data("sev-snp/report_milan.hex"))
        .unwrap()
        .raw()
        .to_vec();
    for (name, raw) in [
        ("sgx", data("dcap/sgx_quote")),
        ("tdx", data("dcap/tdx_quote")),
        ("tdx5", data("dcap/tdx_quote_outdated")),
        ("snp", snp),
    ] {
        // The TDX v4 quote has 70 trailing bytes it does not need.
        let needed = if name == "tdx" {
            raw.len() - 70
        } else {
            raw.len()
        };
        for len in 0..needed {
            assert!(
                Evidence::parse(&raw[..len]).is_err(),
                "{name} truncated to {len} parsed"
            );
        }
        assert!(Evidence::parse(&raw[..needed]).is_ok(), "{name}");
    }
}

#[test]
fn truncation_errors_say_where() {
    let raw = data("dcap/sgx_quote");
    assert_eq!(
        SgxQuote::parse(&raw[..100]).unwrap_err().to_string(),
        "SGX quote is truncated: need 16 bytes at offset 96, have 4"
    );
    assert_eq!(
        SgxQuote::parse(&raw[..4000]).unwrap_err().to_string(),
        "SGX quote auth data is truncated: need 4164 bytes at offset 436, have 3564"
    );
    let snp = Evidence::parse(&data("sev-snp/report_milan.hex"))
        .unwrap()
        .raw()
        .to_vec();
    assert_eq!(
        SnpReport::parse(&snp[..1000]).unwrap_err(),
        EvidenceError::Truncated {
            what: "SEV-SNP report",
            offset: 0,
            need: 1184,
            have: 1000
        }
    );
}

#[test]
fn kind_detection_and_wrong_parsers() {
    assert_eq!(Evidence::parse(b"").unwrap_err(), EvidenceError::Empty);
    assert_eq!(
        Evidence::parse(&[0xAB, 0xCD, 0, 0, 1])
            .unwrap_err()
            .to_string(),
        "unrecognised evidence: first bytes abcd000001 are not an SGX/TDX quote or SEV-SNP report"
    );
    let sgx = data("dcap/sgx_quote");
    assert_eq!(
        TdxQuote::parse(&sgx).unwrap_err().to_string(),
        "invalid TDX quote TEE type: 0x0, expected 0x81"
    );
    let tdx = data("dcap/tdx_quote");
    assert_eq!(
        SgxQuote::parse(&tdx).unwrap_err().to_string(),
        "unsupported SGX quote version 4"
    );
    let mut bad_key = sgx.clone();
    bad_key[2] = 3;
    assert_eq!(
        Evidence::parse(&bad_key).unwrap_err().to_string(),
        "invalid quote attestation key type: 3 (only 2 = ECDSA P-256 exists)"
    );
    let mut v5 = data("dcap/tdx_quote_outdated");
    v5[48] = 9;
    assert_eq!(
        Evidence::parse(&v5).unwrap_err().to_string(),
        "invalid TDX quote v5 body type: 9 (expected 2 = TD 1.0 or 3 = TD 1.5)"
    );
}

#[test]
fn hex_forms() {
    let raw = data("dcap/sgx_quote");
    let expected = Evidence::parse(&raw).unwrap();
    for text in [
        hex::encode(&raw),
        format!("0x{}\n", hex::encode_upper(&raw)),
        format!("  {}  \n", hex::encode(&raw)),
    ] {
        assert_eq!(Evidence::parse(text.as_bytes()).unwrap(), expected);
    }
    assert_eq!(
        Evidence::parse(b"0xZZ").unwrap_err().to_string(),
        "evidence is not valid hex: `0x` prefix not followed by hex digits"
    );
    assert_eq!(
        Evidence::parse(b"0x123").unwrap_err().to_string(),
        "evidence is not valid hex: Odd number of digits"
    );
}

#[test]
fn oversized_evidence_is_refused() {
    let mut big = data("dcap/sgx_quote");
    big.resize(MAX_EVIDENCE_LEN + 1, 0);
    assert_eq!(
        Evidence::parse(&big).unwrap_err(),
        EvidenceError::TooLarge {
            len: MAX_EVIDENCE_LEN + 1,
            limit: MAX_EVIDENCE_LEN
        }
    );
}

#[test]
fn collateral_formats() {
    assert!(matches!(
        Collateral::from_bytes(&data("dcap/sgx_quote_collateral.json")).unwrap(),
        Collateral::Dcap(_)
    ));
    assert!(matches!(
        Collateral::from_bytes(&data("sev-snp/vcek_milan.der")).unwrap(),
        Collateral::SevSnp { .. }
    ));
    assert!(matches!(
        Collateral::from_bytes(b"hello").unwrap_err(),
        CollateralError::UnknownFormat
    ));
    let err = Collateral::from_bytes(b"{\"tcb_info\": 1}").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid DCAP collateral JSON: "),
        "{err}"
    );
    let err = Collateral::from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x00]).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid VCEK certificate: "),
        "{err}"
    );
    let err =
        Collateral::from_file(std::path::Path::new("/nonexistent/collateral.json")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read collateral file /nonexistent/collateral.json: No such file or directory (os error 2)"
    );
    // DCAP collateral round-trips through its JSON form.
    let c = Collateral::from_bytes(&data("dcap/tdx_quote_collateral.json")).unwrap();
    assert_eq!(
        Collateral::from_bytes(c.to_json().unwrap().as_bytes()).unwrap(),
        c
    );
}
