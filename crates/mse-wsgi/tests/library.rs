//! The library API the enclave runtime uses: an already-bound listener, a caller-supplied rustls
//! config, a shutdown future, typed errors. Python is initialised once for this whole process.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mse_wsgi::{Bind, Error, Server, ServerConfig, Tls};

fn rustls_config(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.join("ca.pem");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    (Arc::new(config), cert_path)
}

#[test]
fn library_api_end_to_end() {
    assert!(mse_wsgi::check_libpython().is_ok());
    let venv_path = venv();

    let err = Server::new(
        ServerConfig::new(Bind::Addr(([127, 0, 0, 1], 0).into()), "nocolon")
            .venv(Some(venv_path.clone())),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid application spec \"nocolon\": expected module:variable"
    );
    let err = Server::new(
        ServerConfig::new(Bind::Addr(([127, 0, 0, 1], 0).into()), "no_such_module:app")
            .app_dir(apps_dir())
            .venv(Some(venv_path.clone())),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, Error::AppImport { spec, reason }
        if spec == "no_such_module:app" && reason.contains("ModuleNotFoundError: No module named 'no_such_module'")),
        "{err}"
    );
    let other = tempfile::tempdir().unwrap();
    let err = Server::new(
        ServerConfig::new(Bind::Addr(([127, 0, 0, 1], 0).into()), "hello_raw:app")
            .venv(Some(other.path().to_path_buf())),
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::AlreadyInitialised { .. }), "{err}");
    let err = Server::new(
        ServerConfig::new(Bind::Addr(([127, 0, 0, 1], 0).into()), "hello_raw:app")
            .venv(Some(venv_path.clone()))
            .threads(0),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "thread count must be between 1 and 256, got 0"
    );

    // A caller-bound listener and a caller-built rustls config (the RA-TLS path).
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = rustls_config(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::new(
        ServerConfig::new(Bind::Listener(listener), "hello_flask:app")
            .app_dir(apps_dir())
            .venv(Some(venv_path))
            .threads(2)
            .tls(Tls::Config(tls))
            .shutdown_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(server.local_addr().port(), port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    assert_eq!(curl_h2_root(ca.to_str().unwrap(), port), "Hello, World! 2");
    stop_tx.send(()).unwrap();
    let result = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), handle).await });
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
