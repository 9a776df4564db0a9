//! PCCS responses: `mse_attest::collateral::fetch_collateral_blocking` for the sim SGX quote
//! against a mock PCCS on loopback whose every answer (status, issuer-chain header, body: PCK
//! CRL, TCB info, QE identity, root CA CRL) the fuzzer chooses, from the real sim answer to
//! validly re-signed documents with fuzzed fields to arbitrary bytes. Whatever collateral the
//! fetch accepts is then verified against the quote. Never a panic or a hang.
#![no_main]

#[path = "../common/sim.rs"]
mod sim;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{LazyLock, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mse_attest::{Collateral, verify};
use sim::{SIM, Signed, policy};

#[derive(Arbitrary, Debug)]
enum Answer {
    /// The real answer (body and issuer-chain header).
    Real,
    /// The real answer with this HTTP status.
    Status(u16),
    /// This body, real header.
    Body(Vec<u8>),
    /// The real body, this issuer-chain header value.
    Header(String),
    /// The real body, no issuer-chain header.
    NoHeader,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pck_crl: Answer,
    tcb: Answer,
    tcb_doc: Signed,
    qe: Answer,
    qe_doc: Signed,
    root_crl: Answer,
    /// CRLs as hex text (a PCCS) rather than DER (Intel's PCS).
    hex_crls: bool,
}

/// The next answer per path prefix: (path fragment, raw HTTP response).
static ANSWERS: Mutex<Vec<(&'static str, Vec<u8>)>> = Mutex::new(Vec::new());

static SERVER: LazyLock<SocketAddr> = LazyLock::new(|| {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            let path = line.split(' ').nth(1).unwrap_or("");
            let answer = ANSWERS
                .lock()
                .expect("answers")
                .iter()
                .find(|(p, _)| path.contains(p))
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
            let _ = conn.write_all(&answer);
        }
    });
    addr
});

/// Percent-encodes everything but unreserved characters (issuer chains are URL-encoded PEM).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn response(a: &Answer, header: Option<(&str, String)>, real_body: Vec<u8>) -> Vec<u8> {
    let (status, header, body) = match a {
        Answer::Real => (200, header, real_body),
        Answer::Status(s) => (*s % 1000, header, real_body),
        Answer::Body(b) => (200, header, b.clone()),
        Answer::Header(v) => (200, header.map(|(k, _)| (k, v.clone())), real_body),
        Answer::NoHeader => (200, None, real_body),
    };
    let mut out = format!(
        "HTTP/1.1 {status:03} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    if let Some((k, v)) = header {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn signed_body(field: &str, (text, sig): (String, Vec<u8>)) -> Vec<u8> {
    // The document goes in verbatim (RawValue) when it is JSON, as a string otherwise.
    let doc = if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
        text
    } else {
        serde_json::Value::String(text).to_string()
    };
    format!(r#"{{"{field}":{doc},"signature":"{}"}}"#, hex::encode(sig)).into_bytes()
}

fuzz_target!(|input: Input| {
    let s = &*SIM;
    let crl = |der: &[u8]| {
        if input.hex_crls {
            hex::encode(der).into_bytes()
        } else {
            der.to_vec()
        }
    };
    let tcb_chain = url_encode(&s.pki.tcb_issuer_chain_pem());
    let answers = vec![
        (
            "/pckcrl",
            response(
                &input.pck_crl,
                Some((
                    "SGX-PCK-CRL-Issuer-Chain",
                    url_encode(&s.pki.pck_crl_issuer_chain_pem()),
                )),
                crl(&s.pki.pck_crl_der),
            ),
        ),
        (
            "/tcb?",
            response(
                &input.tcb,
                Some(("TCB-Info-Issuer-Chain", tcb_chain.clone())),
                signed_body("tcbInfo", input.tcb_doc.document(true)),
            ),
        ),
        (
            "/qe/identity",
            response(
                &input.qe,
                Some(("SGX-Enclave-Identity-Issuer-Chain", tcb_chain)),
                signed_body("enclaveIdentity", input.qe_doc.document(false)),
            ),
        ),
        (
            "/rootcacrl",
            response(&input.root_crl, None, crl(&s.pki.root_crl_der)),
        ),
    ];
    *ANSWERS.lock().expect("answers") = answers;
    let url = format!("http://{}/sgx/certification/v4", *SERVER);
    match mse_attest::collateral::fetch_collateral_blocking(&url, &s.quote) {
        Ok(collateral) => {
            let report = verify(&s.evidence, &collateral, &s.anchors, &policy(), None);
            let _ = (report.trusted(), report.error(), report.to_string());
            if let Collateral::Dcap(c) = &collateral {
                assert!(!c.tcb_info.is_empty() || !report.trusted());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
