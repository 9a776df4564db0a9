//! Test support shared by the RA-TLS tests (and `mse verify`'s CLI tests): a simulated node
//! (mock PKI + sim attester) and a tiny TLS server on loopback serving its RA-TLS certificate.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mse_attest::attester::{AttestError, HostProbe};
use mse_attest::ratls::{RaTlsIdentity, RaTlsParams, generate};
use mse_attest_sim::{MockServer, SimAttester};
use mse_attest_sim::{SimEnclave, SimPki};
use tokio::io::AsyncWriteExt;

pub const SEED: [u8; 32] = [0x42; 32];
pub const MR_ENCLAVE: [u8; 32] = [0xAA; 32];
pub const MR_SIGNER: [u8; 32] = [0xBB; 32];
pub const X25519: [u8; 32] = [0x25; 32];

pub fn enclave(debug: bool) -> SimEnclave {
    SimEnclave {
        mr_enclave: MR_ENCLAVE,
        mr_signer: MR_SIGNER,
        isv_prod_id: 1,
        isv_svn: 2,
        debug,
    }
}

/// A sim attester on a fake host with no TEE device (so it also runs on real TEE hosts).
pub fn sim_attester(debug: bool) -> SimAttester {
    let root = std::env::temp_dir().join("mse-attest-test-empty-host");
    let _ = std::fs::create_dir_all(&root);
    SimAttester::with_probe(&HostProbe::with_root(root), &SEED, enclave(debug))
        .expect("sim attester")
}

pub fn pki() -> SimPki {
    SimPki::from_seed(&SEED).expect("mock PKI")
}

pub fn params(san: &str) -> RaTlsParams {
    RaTlsParams {
        san: san.to_owned(),
        not_before: time::OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap(),
        not_after: time::OffsetDateTime::from_unix_timestamp(2_524_607_999).unwrap(),
        x25519_public: X25519,
    }
}

pub fn identity(san: &str, debug: bool) -> RaTlsIdentity {
    generate(&sim_attester(debug), &params(san)).expect("RA-TLS certificate")
}

/// A TLS server on 127.0.0.1 (own thread and runtime) answering every connection with a small
/// HTTP response. Stops when dropped.
pub struct TlsServer {
    pub addr: SocketAddr,
    _server: MockServer,
}

impl TlsServer {
    pub fn start(cert_der: Vec<u8>, key_pkcs8_der: Vec<u8>) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // A resolver instead of with_single_cert: it does not insist that key and certificate
        // match, so tests can also play a server replaying someone else's certificate.
        let key = provider
            .key_provider
            .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
                key_pkcs8_der.into(),
            ))
            .unwrap();
        let certified = rustls::sign::CertifiedKey::new(
            vec![rustls::pki_types::CertificateDer::from(cert_der)],
            key,
        );
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = MockServer::spawn("tls-server", move |listener, mut stop| async move {
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                            if let Ok(Ok(mut tls)) = handshake.await {
                                let _ = tls
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                                    .await;
                                let _ = tls.shutdown().await;
                            }
                        });
                    }
                }
            }
        })
        .unwrap();
        TlsServer {
            addr: server.addr(),
            _server: server,
        }
    }
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// For each of `devices` (a real TEE's interface): a sim attester made by `start` on a host
/// with only that device is refused, naming it.
pub fn assert_sim_refused_next_to_real_tee<A>(
    devices: &[&str],
    start: impl Fn(&HostProbe) -> Result<A, AttestError>,
) {
    for dev in devices {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join(dev);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        let Err(err) = start(&HostProbe::with_root(root.path())) else {
            panic!("a sim attester next to {dev}");
        };
        assert!(matches!(err, AttestError::RealTeePresent(_)));
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to run the simulated TEE: a real TEE is present ({})",
                path.display()
            )
        );
    }
}

/// Where a test client gets the collateral for a server's evidence.
pub enum Source {
    /// DCAP collateral from this PCCS.
    Pccs(String),
    /// SEV-SNP collateral from this KDS.
    Kds(String),
}

/// The client side of RA-TLS without the CLI: fetch `port`'s certificate for `sni` over TLS,
/// get collateral from `source`, and verify it with the anchors its chain calls for (the sim
/// roots count only under `policy.allow_simulation`). `mse` does the same in its one attest
/// routine (crates/mse-cli/src/attest.rs).
pub async fn fetch_and_verify(
    port: u16,
    sni: &str,
    source: &Source,
    policy: &mse_attest::Policy,
) -> (mse_attest::ratls::RaTlsCert, mse_attest::Report) {
    use mse_attest::ratls::{anchors_for_collateral, fetch_server_certificate, verify_certificate};
    let der = fetch_server_certificate("127.0.0.1", port, sni, Duration::from_secs(10))
        .await
        .unwrap();
    let cert = mse_attest::ratls::RaTlsCert::parse(&der).unwrap();
    let evidence = mse_attest::Evidence::parse(&cert.quote).unwrap();
    let collateral = match source {
        Source::Pccs(url) => mse_attest::fetch_collateral(url, evidence.raw())
            .await
            .unwrap(),
        Source::Kds(url) => {
            let (url, raw) = (url.clone(), evidence.raw().to_vec());
            tokio::task::spawn_blocking(move || {
                mse_attest::fetch_snp_collateral_blocking(&url, &raw, None)
            })
            .await
            .unwrap()
            .unwrap()
        }
    };
    let anchors = anchors_for_collateral(&evidence, &collateral);
    verify_certificate(&der, &collateral, &anchors, policy).unwrap()
}
