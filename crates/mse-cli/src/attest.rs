//! The one "attest this enclave" routine of `mse`: fetch the enclave's RA-TLS certificate over
//! SNI, verify its evidence with the caller's trust anchors, collateral and policy (which holds
//! the measurement recomputed locally from the launch spec), check the certificate's validity
//! and name, and return what it established with a TLS verifier pinned to that certificate.
//! `mse deploy` and `mse localtest` attest through [`attest_enclave`]; `mse verify` uses its
//! two halves ([`fetch_certificate`], [`examine`]) to print every check even when one fails;
//! `mse test` talks to the certificate that deploy verified. A VM enclave's evidence is also
//! held against the identity the client recomputed ([`crate::vm_expect`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mse_attest::ratls::{PinnedCertVerifier, RaTlsCert, fetch_server_certificate};
use mse_attest::{Collateral, Evidence, Policy, Report, TrustAnchors};

use crate::vm_expect::VmIdentity;

/// Longest wait for an enclave's certificate.
pub const CERT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Chooses the trust anchors and the collateral for the evidence found.
pub type TrustFor<'a> =
    Box<dyn FnOnce(&Evidence) -> anyhow::Result<(TrustAnchors, Collateral)> + 'a>;

/// Which enclave, and how it is named in messages.
pub struct Enclave<'a> {
    /// Where to connect.
    pub host: &'a str,
    /// Its port.
    pub port: u16,
    /// The SNI to send, which the certificate must name.
    pub sni: &'a str,
    /// How the connection goes, for messages ("through the node's router").
    pub via: &'a str,
    /// The enclave in messages ("the enclave of app …").
    pub name: &'a str,
}

/// A certificate and what its evidence verification found (trusted or not).
pub struct Examined {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, parsed.
    pub cert: RaTlsCert,
    /// Every check.
    pub report: Report,
    /// A VM enclave: its evidence against the recomputed identity (`Err`: every field that
    /// differs, one line).
    pub vm: Option<Result<(), String>>,
}

/// An enclave that passed every check.
pub struct Attested {
    /// What was examined.
    pub examined: Examined,
    /// A TLS verifier that accepts this certificate and no other.
    pub pinned: Arc<dyn rustls::client::danger::ServerCertVerifier>,
}

/// Fetches the certificate `host:port` presents for `sni`, within `timeout`.
pub fn fetch_certificate(
    host: &str,
    port: u16,
    sni: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(fetch_server_certificate(host, port, sni, timeout))?)
}

/// Parses `der` (named `what` in messages) and verifies its evidence (and, for a VM enclave,
/// compares it with `vm`).
pub fn examine(
    der: Vec<u8>,
    what: &str,
    trust: TrustFor<'_>,
    policy: &Policy,
    vm: Option<&VmIdentity>,
) -> anyhow::Result<Examined> {
    let cert =
        RaTlsCert::parse(&der).with_context(|| format!("{what} is not an RA-TLS certificate"))?;
    let evidence = Evidence::parse(&cert.quote).with_context(|| format!("evidence from {what}"))?;
    let (anchors, collateral) = trust(&evidence)?;
    let report = mse_attest::verify(
        &evidence,
        &collateral,
        &anchors,
        policy,
        Some(&cert.expected_report_data),
    );
    let vm = vm.map(|v| v.check(&evidence));
    Ok(Examined {
        der,
        cert,
        report,
        vm,
    })
}

/// Fetches, examines and requires every check to pass (`now`: Unix time); any failure is an
/// error naming the enclave. `vm`: the identity recomputed for a VM enclave.
pub fn attest_enclave(
    enclave: &Enclave<'_>,
    trust: TrustFor<'_>,
    policy: &Policy,
    vm: Option<&VmIdentity>,
    now: i64,
) -> anyhow::Result<Attested> {
    let der = fetch_certificate(enclave.host, enclave.port, enclave.sni, CERT_FETCH_TIMEOUT)
        .with_context(|| format!("cannot fetch the enclave's certificate {}", enclave.via))?;
    let examined = examine(der, "the enclave's certificate", trust, policy, vm)?;
    require_trusted(&examined, enclave, now)?;
    let pinned = Arc::new(PinnedCertVerifier::new(examined.der.clone()));
    Ok(Attested { examined, pinned })
}

/// Every check of `examined` passed, its certificate is valid at `now` and names the SNI.
pub fn require_trusted(examined: &Examined, enclave: &Enclave<'_>, now: i64) -> anyhow::Result<()> {
    if !examined.report.trusted() {
        let reason = examined
            .report
            .error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "a check failed".into());
        bail!("{} is NOT trusted: {reason}", enclave.name);
    }
    examined
        .cert
        .check_validity(now)
        .with_context(|| format!("{} is NOT trusted", enclave.name))?;
    if !examined
        .cert
        .san
        .iter()
        .any(|n| n.eq_ignore_ascii_case(enclave.sni))
    {
        bail!(
            "{} is NOT trusted: its certificate names {:?}, not {:?}",
            enclave.name,
            examined.cert.san,
            enclave.sni
        );
    }
    if let Some(Err(why)) = &examined.vm {
        bail!("{} is NOT trusted: {why}", enclave.name);
    }
    Ok(())
}
