//! A stand-in for `mse-enclave` used by mse-node's tests: same launch arguments (mse-launch's
//! command line, the launch spec on stdin), TLS on --host:--port with a self-signed
//! certificate for the spec's SAN. It answers like the configuration
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
    "--spec",
    "--package",
    "--env",
    "--certificate",
    "--host",
    "--port",
    "--timeout",
    "--state-dir",
    "--sim-seed",
];

/// The arguments (mse-launch's command line) and the launch spec read from stdin.
fn args() -> Result<(HashMap<String, String>, mse_launch::LaunchSpec), String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        out.insert(flag.trim_start_matches("--").to_owned(), value);
    }
    for required in ["spec", "package", "env", "host", "port", "state-dir"] {
        if !out.contains_key(required) {
            return Err(format!("missing --{required}"));
        }
    }
    if out["spec"] != "-" {
        return Err("the launcher sends the spec on stdin (--spec -)".into());
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|e| e.to_string())?;
    let spec = mse_launch::LaunchSpec::from_json(&bytes).map_err(|e| e.to_string())?;
    let owner = matches!(spec.tls, mse_launch::TlsSpec::OwnerCertificateSha256(_));
    if owner != out.contains_key("certificate") {
        return Err("--certificate goes with an owner-mode spec".into());
    }
    if spec.tee.is_simulated() != out.contains_key("sim-seed") {
        return Err("--sim-seed goes with a simulated TEE".into());
    }
    Ok((out, spec))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // As mse-enclave does: end with the process that launched it.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let (args, spec) = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-enclave: {e}");
            std::process::exit(2);
        }
    };
    let id = spec.app_id.clone();
    println!("fake-enclave: app {id} starting");
    eprintln!("fake-enclave: SIMULATED, attests nothing");
    if spec.application == "crash:app" {
        eprintln!("fake-enclave: crashing as asked (last words)");
        std::process::exit(3);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![spec.san.clone()])
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
