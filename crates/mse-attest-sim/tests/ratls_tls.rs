//! rustls verifiers over a real TLS connection on loopback: the attested server is accepted,
//! a policy mismatch aborts the handshake, pinning accepts only the verified certificate.

#[path = "ratls_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mse_attest::ratls::{PinnedCertVerifier, RaTlsVerifier, fetch_server_certificate};
use mse_attest::{Collateral, Policy, TrustAnchors};
use mse_attest_sim::CollateralOptions;
use rustls::client::danger::ServerCertVerifier;
use support::*;
use tokio::io::AsyncReadExt;

fn policy() -> Policy {
    Policy {
        allow_simulation: true,
        now: Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        ..Policy::default()
    }
}

fn verifier(policy: Policy) -> Arc<RaTlsVerifier> {
    let pki = pki();
    let collateral = Collateral::Dcap(pki.collateral(&CollateralOptions::default()).unwrap());
    Arc::new(RaTlsVerifier::new(
        TrustAnchors::intel().with_simulation_root(pki.root_der.clone()),
        policy,
        collateral,
    ))
}

/// Connect with `verifier`, read the whole response.
async fn get(
    addr: std::net::SocketAddr,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<String, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("app.example.com").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut body)).await;
    Ok(body)
}

#[tokio::test]
async fn attested_server_is_accepted_and_its_report_kept() {
    let id = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let v = verifier(policy());
    let body = get(server.addr, v.clone()).await.unwrap();
    assert!(body.ends_with("\r\n\r\nok"), "{body}");
    let verified = v.last_verified().unwrap();
    assert!(verified.report.trusted());
    assert_eq!(verified.cert.der, id.cert_der);
}

#[tokio::test]
async fn policy_mismatch_aborts_the_handshake() {
    let id = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let wrong = Policy {
        expected_measurement: Some(vec![0; 32]),
        ..policy()
    };
    let err = get(server.addr, verifier(wrong)).await.unwrap_err();
    assert!(
        err.contains(&format!(
            "measurement mismatch: expected {}, evidence has {}",
            hex::encode([0; 32]),
            hex::encode(MR_ENCLAVE)
        )),
        "{err}"
    );
    let no_sim = Policy {
        allow_simulation: false,
        ..policy()
    };
    let err = get(server.addr, verifier(no_sim)).await.unwrap_err();
    assert!(err.contains("simulation root"), "{err}");
}

#[tokio::test]
async fn pinned_verifier_accepts_only_the_verified_certificate() {
    let id = identity("app.example.com", false);
    let other = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    assert!(
        get(
            server.addr,
            Arc::new(PinnedCertVerifier::new(id.cert_der.clone()))
        )
        .await
        .is_ok()
    );
    let err = get(
        server.addr,
        Arc::new(PinnedCertVerifier::new(other.cert_der.clone())),
    )
    .await
    .unwrap_err();
    assert!(err.contains("ApplicationVerificationFailure"), "{err}");
}

#[tokio::test]
async fn a_server_must_hold_the_key_of_the_certificate_it_presents() {
    // A server replaying the attested certificate with another key fails the handshake.
    let id = identity("app.example.com", false);
    let thief = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), thief.key_pkcs8_der.clone());
    let fetched = fetch_server_certificate(
        "127.0.0.1",
        server.addr.port(),
        "app.example.com",
        Duration::from_secs(10),
    )
    .await;
    let err = fetched.unwrap_err().to_string();
    assert!(err.contains(": TLS handshake: "), "{err}");
}

#[tokio::test]
async fn fetch_returns_the_served_certificate() {
    let id = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let der = fetch_server_certificate(
        "127.0.0.1",
        server.addr.port(),
        "app.example.com",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(der, id.cert_der);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fetch_server_certificate("127.0.0.1", closed, "x", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("TLS connection to 127.0.0.1:{closed}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn expired_certificate_is_refused_even_with_good_evidence() {
    let params = mse_attest::ratls::RaTlsParams {
        not_after: time::OffsetDateTime::from_unix_timestamp(1_735_689_600).unwrap(),
        ..params("app.example.com")
    };
    let id = mse_attest::ratls::generate(&sim_attester(false), &params).unwrap();
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let err = get(server.addr, verifier(policy())).await.unwrap_err();
    assert!(
        err.contains(
            "the certificate is valid from 2024-01-01T00:00:00Z to 2025-01-01T00:00:00Z, not at 2026-01-01T00:00:00Z"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn attest_a_server_with_a_pccs_then_talk_to_the_pinned_key() {
    let pki = pki();
    let pccs = mse_attest_sim::MockPccs::start(&pki, &CollateralOptions::default()).unwrap();
    let id = identity("app.example.com", false);
    let server = TlsServer::start(id.cert_der.clone(), id.key_pkcs8_der.clone());
    let source = Source::Pccs(pccs.url());
    let (cert, report) =
        fetch_and_verify(server.addr.port(), "app.example.com", &source, &policy()).await;
    assert!(report.trusted(), "{report}");
    assert_eq!(cert.x25519_public(), Some(X25519));
    let body = get(
        server.addr,
        Arc::new(PinnedCertVerifier::new(cert.der.clone())),
    )
    .await
    .unwrap();
    assert!(body.ends_with("ok"));

    let strict = Policy {
        allow_simulation: false,
        ..policy()
    };
    let (_, refused) =
        fetch_and_verify(server.addr.port(), "app.example.com", &source, &strict).await;
    assert!(!refused.trusted());
}
