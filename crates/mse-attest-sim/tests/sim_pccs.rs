//! The mock PCCS speaks the PCCS v4 (and v3) API: paths, query parameters, bodies and the
//! URL-encoded issuer-chain headers, as Intel's PCCS does.

use std::io::Read;

use mse_attest_sim::{CollateralOptions, MockPccs, SIM_FMSPC, SimPki, to_pem};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The issuer chain in header `name`, percent-decoded.
    fn chain(&self, name: &str) -> String {
        let header = self.header(name).unwrap();
        percent_encoding::percent_decode_str(&header)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }
}

fn get(url: &str) -> Resp {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent.get(url).call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    Resp {
        status: resp.status().as_u16(),
        headers,
        body,
    }
}

#[test]
fn pccs_paths_bodies_and_issuer_chain_headers() {
    let pki = SimPki::from_seed(&[0x42; 32]).unwrap();
    let opts = CollateralOptions::default();
    let pccs = MockPccs::start(&pki, &opts).unwrap();
    let base = format!("{}/sgx/certification/v4", pccs.url());
    let root_and_tcb = format!("{}{}", to_pem(&pki.tcb_der), to_pem(&pki.root_der));
    let fmspc = hex::encode_upper(SIM_FMSPC);

    let r = get(&format!("{base}/rootcacrl"));
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        hex::encode(&pki.root_crl_der)
    );

    let r = get(&format!("{base}/pckcrl?ca=platform&encoding=der"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pki.pck_crl_der);
    assert_eq!(
        r.chain("SGX-PCK-CRL-Issuer-Chain"),
        format!("{}{}", to_pem(&pki.pck_ca_der), to_pem(&pki.root_der))
    );
    let pem = get(&format!("{base}/pckcrl?ca=platform"));
    assert!(
        String::from_utf8(pem.body)
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----\n")
    );
    assert_eq!(get(&format!("{base}/pckcrl?ca=processor")).status, 404);
    assert_eq!(get(&format!("{base}/pckcrl")).status, 400);

    let r = get(&format!("{base}/tcb?fmspc={fmspc}"));
    assert_eq!(r.status, 200);
    let tcb = pki.tcb_info(&opts).unwrap();
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        tcb.pccs_body("tcbInfo")
    );
    assert_eq!(r.chain("TCB-Info-Issuer-Chain"), root_and_tcb);
    assert_eq!(r.chain("SGX-TCB-Info-Issuer-Chain"), root_and_tcb);
    assert_eq!(
        get(&format!("{base}/tcb?fmspc={}", fmspc.to_lowercase())).status,
        200
    );
    assert_eq!(get(&format!("{base}/tcb?fmspc=00A067110000")).status, 404);

    let r = get(&format!("{base}/qe/identity?update=standard"));
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["enclaveIdentity"]["id"], "QE");
    assert_eq!(body["signature"].as_str().unwrap().len(), 128);
    assert_eq!(r.chain("SGX-Enclave-Identity-Issuer-Chain"), root_and_tcb);

    assert_eq!(
        get(&format!("{}/sgx/certification/v3/qe/identity", pccs.url())).status,
        200
    );
    assert_eq!(
        get(&format!("{}/sgx/certification/v9/qe/identity", pccs.url())).status,
        404
    );
    assert_eq!(get(&format!("{}/nothing", pccs.url())).status, 404);
}

#[test]
fn signed_json_is_compact_and_its_signature_covers_the_exact_bytes() {
    use p256::ecdsa::signature::Verifier;
    let pki = SimPki::from_seed(&[0x42; 32]).unwrap();
    let tcb = pki.tcb_info(&CollateralOptions::default()).unwrap();
    assert!(tcb.raw.starts_with(r#"{"id":"SGX","version":3,"issueDate":"2024-01-01T00:00:00Z","nextUpdate":"2049-12-31T23:59:59Z","fmspc":"0053494D0000","pceId":"0000","tcbType":0,"#));
    // Re-serializing the parsed JSON gives the same bytes (clients that do so still verify).
    let reparsed: serde_json::Value = serde_json::from_str(&tcb.raw).unwrap();
    assert_eq!(reparsed.to_string(), tcb.raw);
    let (_, cert) = x509_parser::parse_x509_certificate(&pki.tcb_der).unwrap();
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
            .unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&tcb.signature).unwrap();
    assert!(key.verify(tcb.raw.as_bytes(), &sig).is_ok());
    let mut tampered = tcb.raw.clone().into_bytes();
    tampered[10] ^= 1;
    assert!(key.verify(&tampered, &sig).is_err());
}
