//! The enclave's keys: an X25519 key pair (sealed secrets are sealed to it) and the RA-TLS
//! certificate whose evidence binds both the P-256 TLS key and the X25519 key.

use std::sync::Arc;

use anyhow::Context;
use mse_attest::attester::Attester;
use mse_attest::ratls::{self, RaTlsIdentity, RaTlsParams};
use mse_crypto::X25519KeyPair;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// How long the configuration server's certificate lives in owner mode, as the original (the
/// app then serves the owner's certificate).
pub const OWNER_MODE_CONF_CERT_LIFETIME: time::Duration = time::Duration::hours(10);

/// The enclave's keys for one start: X25519 (sealed secrets) and the RA-TLS certificate.
pub struct Identity {
    /// The X25519 key pair.
    pub x25519: Arc<X25519KeyPair>,
    /// The RA-TLS certificate and its key.
    pub ratls: RaTlsIdentity,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("x25519_public", &hex::encode(self.x25519.public()))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Fresh keys and an RA-TLS certificate for `san`, valid from now until `not_after`.
    pub fn generate(
        attester: &dyn Attester,
        san: &str,
        not_after: OffsetDateTime,
    ) -> anyhow::Result<Identity> {
        let x25519 = Arc::new(X25519KeyPair::generate());
        let params = RaTlsParams {
            san: san.to_owned(),
            // A little slack for clients whose clock is slightly behind.
            not_before: OffsetDateTime::now_utc() - time::Duration::minutes(5),
            not_after,
            x25519_public: x25519.public(),
        };
        let ratls =
            ratls::generate(attester, &params).context("cannot build the RA-TLS certificate")?;
        Ok(Identity { x25519, ratls })
    }

    /// A rustls server config presenting the RA-TLS certificate with `alpn` protocols.
    pub fn tls_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.ratls.key_pkcs8_der.clone()));
        server_config(
            vec![CertificateDer::from(self.ratls.cert_der.clone())],
            key,
            alpn,
        )
    }
}

/// A rustls server config (ring provider) for `chain` and `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("TLS certificate and key")?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
