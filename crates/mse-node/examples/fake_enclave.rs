//! A stand-in for `mse-enclave` used by mse-node's tests: same launch arguments, TLS on
//! --host:--port with a self-signed certificate for --san. It answers like the configuration
//! server (`200` + `Mse-Status: Waiting`) until it receives a POST, then like a running app
//! whose every answer names the app id. It attests nothing and decrypts nothing.
//!
//! `--application crash:app` makes it exit with code 3 right after starting, for the tests of
//! the on_error path.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const FLAGS: &[&str] = &[
    "--size",
    "--san",
    "--id",
    "--application",
    "--expiration",
    "--certificate",
    "--package",
    "--env",
    "--host",
    "--port",
    "--tee",
    "--timeout",
    "--state-dir",
    "--sim-seed",
];

fn args() -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        out.insert(flag.trim_start_matches("--").to_owned(), value);
    }
    for required in [
        "size",
        "san",
        "id",
        "application",
        "package",
        "env",
        "host",
        "port",
        "tee",
        "state-dir",
    ] {
        if !out.contains_key(required) {
            return Err(format!("missing --{required}"));
        }
    }
    if out.contains_key("expiration") == out.contains_key("certificate") {
        return Err("exactly one of --expiration or --certificate".into());
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-enclave: {e}");
            std::process::exit(2);
        }
    };
    let id = args["id"].clone();
    println!("fake-enclave: app {id} starting");
    eprintln!("fake-enclave: SIMULATED, attests nothing");
    if args["application"] == "crash:app" {
        eprintln!("fake-enclave: crashing as asked (last words)");
        std::process::exit(3);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![args["san"].clone()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("tls config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(format!("{}:{}", args["host"], args["port"]))
        .await
        .expect("bind");
    let provisioned = Arc::new(AtomicBool::new(false));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let provisioned = provisioned.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let provisioned = provisioned.clone();
                let id = id.clone();
                async move {
                    let resp = if !provisioned.load(Ordering::SeqCst) {
                        if req.method() == hyper::Method::POST {
                            provisioned.store(true, Ordering::SeqCst);
                            println!("fake-enclave: provisioned, app running");
                            Response::new(Full::new(Bytes::from_static(b"")))
                        } else {
                            Response::builder()
                                .header("Mse-Status", "Waiting")
                                .body(Full::new(Bytes::from_static(
                                    b"Waiting for code secret key and/or ssl private key...",
                                )))
                                .expect("response")
                        }
                    } else {
                        Response::new(Full::new(Bytes::from(format!(
                            "app {id} {}",
                            req.uri().path()
                        ))))
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}
