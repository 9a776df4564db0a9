//! Online collateral: our PCCS client against a loopback PCCS that serves the real SGX
//! vector's collateral, then offline verification of the quote with what it fetched.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use mse_attest::{
    Collateral, CollateralError, Evidence, TrustAnchors, fetch_collateral,
    fetch_collateral_blocking, verify,
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

mod vectors;
use vectors::{at_accepting_config, data};

fn file_collateral() -> QuoteCollateralV3 {
    match Collateral::from_bytes(&data("dcap/sgx_quote_collateral.json")).unwrap() {
        Collateral::Dcap(c) => c,
        other => panic!("unexpected {other:?}"),
    }
}

struct Pccs {
    url: String,
    paths: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Pccs {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serve exactly `requests` requests on a free loopback port. `omit` names a path prefix
/// answered with 404, `no_header` one answered without its issuer-chain header.
fn pccs(requests: usize, omit: Option<&'static str>, no_header: bool) -> Pccs {
    let c = file_collateral();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    // Extra whitespace around the signed JSON: the client must keep its exact bytes.
    let tcb_body = format!(
        "{{ \"tcbInfo\" : {} ,\n \"signature\": \"{}\" }}",
        c.tcb_info,
        hex::encode(&c.tcb_info_signature)
    );
    let qe_body = format!(
        "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
        c.qe_identity,
        hex::encode(&c.qe_identity_signature)
    );
    let routes: Vec<(&str, &str, String, Vec<u8>)> = vec![
        (
            "/sgx/certification/v4/pckcrl",
            "SGX-PCK-CRL-Issuer-Chain",
            enc(&c.pck_crl_issuer_chain),
            c.pck_crl.clone(),
        ),
        (
            "/sgx/certification/v4/tcb",
            "TCB-Info-Issuer-Chain",
            enc(&c.tcb_info_issuer_chain),
            tcb_body.into_bytes(),
        ),
        (
            "/sgx/certification/v4/qe/identity",
            "SGX-Enclave-Identity-Issuer-Chain",
            enc(&c.qe_identity_issuer_chain),
            qe_body.into_bytes(),
        ),
        (
            "/sgx/certification/v4/rootcacrl",
            "X-None",
            String::new(),
            hex::encode(&c.root_ca_crl).into_bytes(),
        ),
    ];
    let thread = std::thread::spawn(move || {
        // Bounded in time too, so a client that stops early never hangs the test.
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for _ in 0..requests {
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                return;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            seen.lock().unwrap().push(target.clone());
            let route = routes.iter().find(|(p, ..)| target.starts_with(p));
            let resp = match route {
                Some((p, ..)) if omit.is_some_and(|o| p.starts_with(o)) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
                Some((_, name, value, body)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    if !no_header && !value.is_empty() {
                        r.push_str(&format!("{name}: {value}\r\n"));
                    }
                    r.push_str("\r\n");
                    let mut r = r.into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&resp);
        }
    });
    Pccs {
        url,
        paths,
        thread: Some(thread),
    }
}

#[test]
fn fetched_collateral_equals_the_file_and_verifies_the_quote() {
    let server = pccs(4, None, false);
    let quote = data("dcap/sgx_quote");
    let Collateral::Dcap(fetched) = fetch_collateral_blocking(&server.url, &quote).unwrap() else {
        panic!("not DCAP collateral")
    };
    let mut expected = file_collateral();
    let Evidence::Sgx(q) = Evidence::parse(&quote).unwrap() else {
        panic!("not SGX")
    };
    expected.pck_certificate_chain = Some(
        String::from_utf8_lossy(&q.qe.certification.data)
            .trim_end_matches('\0')
            .to_string(),
    );
    assert_eq!(fetched, expected);
    assert_eq!(
        *server.paths.lock().unwrap(),
        [
            "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
            "/sgx/certification/v4/tcb?fmspc=00A067110000",
            "/sgx/certification/v4/qe/identity",
            "/sgx/certification/v4/rootcacrl",
        ]
    );
    let policy = at_accepting_config(1_751_328_000);
    let evidence = Evidence::parse(&quote).unwrap();
    let report = verify(
        &evidence,
        &Collateral::Dcap(fetched),
        &TrustAnchors::intel(),
        &policy,
        None,
    );
    assert_eq!(report.error(), None);
    assert!(report.trusted());
}

#[test]
fn async_fetch_works_inside_and_outside_a_tokio_runtime() {
    let quote = data("dcap/sgx_quote");
    let server = pccs(4, None, false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = rt.block_on(fetch_collateral(&server.url, &quote)).unwrap();
    drop(server);
    let server = pccs(4, None, false);
    let outside = poll_once_without_runtime(fetch_collateral(&server.url, &quote)).unwrap();
    assert_eq!(inside, outside);
}

/// Poll once outside any runtime: `fetch_collateral` then finds no runtime handle and must
/// complete synchronously.
fn poll_once_without_runtime<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("fetch without a runtime must complete synchronously"),
    }
}

#[test]
fn pccs_errors_are_reported_with_the_url() {
    let quote = data("dcap/sgx_quote");
    let server = pccs(2, Some("/sgx/certification/v4/tcb"), false);
    let err = fetch_collateral_blocking(&server.url, &quote).unwrap_err();
    assert!(matches!(err, CollateralError::Http { status: 404, .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "PCCS request {}/sgx/certification/v4/tcb?fmspc=00A067110000 returned HTTP 404",
            server.url
        )
    );
    drop(server);
    let server = pccs(1, None, true);
    let err = fetch_collateral_blocking(&server.url, &quote).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "PCCS response from {}/sgx/certification/v4/pckcrl?ca=processor&encoding=der lacks the SGX-PCK-CRL-Issuer-Chain header",
            server.url
        )
    );
    drop(server);
    // Nothing listens on a port we just closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fetch_collateral_blocking(&format!("http://127.0.0.1:{port}"), &quote).unwrap_err();
    assert!(matches!(err, CollateralError::Transport { .. }), "{err}");
    // SEV-SNP collateral does not come from a PCCS.
    let snp = data("sev-snp/report_milan.hex");
    assert!(matches!(
        fetch_collateral_blocking("http://127.0.0.1:1", &snp).unwrap_err(),
        CollateralError::SevSnpFromPccs
    ));
}
