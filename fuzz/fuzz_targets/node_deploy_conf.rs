//! mse-node's `POST /apps` `conf` part: its JSON shape and `python_application` check
//! (`mse_node::api::fuzz_deploy_conf`), and the owner certificate it carries
//! (`mse_conf::read_certificate` on the PEM the node writes to the app dir, then the domain
//! checks create_app applies: DNS name, coverage by the certificate). Inputs are either raw
//! bytes or a conf built from fuzzed fields with a real certificate (fuzzed SANs and validity,
//! signed by rcgen), so the checks after the PEM and X.509 parsers are reached.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

static KEY: LazyLock<rcgen::KeyPair> = LazyLock::new(|| rcgen::KeyPair::generate().expect("key"));

#[derive(Arbitrary, Debug)]
enum Cert {
    /// A real certificate for these SANs, valid over [not_before, not_after] (Unix seconds).
    Real {
        sans: Vec<String>,
        not_before: u32,
        not_after: u32,
        chain: bool,
    },
    /// Any text.
    Text(String),
    /// A real certificate's PEM with one byte changed.
    Flipped {
        sans: Vec<String>,
        at: u16,
        mask: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Conf {
    name: String,
    python_application: String,
    healthcheck_endpoint: String,
    expires_at: Option<String>,
    hardware: String,
    docker: String,
    domain_name: Option<String>,
    cert: Option<Cert>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Conf(Conf),
}

fn real_pem(sans: &[String], not_before: u32, not_after: u32) -> Option<String> {
    let mut params = rcgen::CertificateParams::new(sans.to_vec()).ok()?;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(i64::from(not_before)).ok()?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(i64::from(not_after)).ok()?;
    Some(params.self_signed(&*KEY).ok()?.pem())
}

fn pem_of(c: &Cert) -> Option<String> {
    match c {
        Cert::Real {
            sans,
            not_before,
            not_after,
            chain,
        } => {
            let pem = real_pem(sans, *not_before, *not_after)?;
            Some(if *chain { format!("{pem}{pem}") } else { pem })
        }
        Cert::Text(t) => Some(t.clone()),
        Cert::Flipped { sans, at, mask } => {
            let mut pem = real_pem(sans, 1_700_000_000, 2_000_000_000)?.into_bytes();
            let i = usize::from(*at) % pem.len();
            pem[i] ^= mask;
            Some(String::from_utf8_lossy(&pem).into_owned())
        }
    }
}

/// What create_app does with the owner's domain and certificate.
fn check_certificate(domain: &str, pem: &str) {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if !mse_node::config::valid_dns_name(&domain) {
        return;
    }
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), pem.as_bytes()).expect("write");
    match mse_conf::read_certificate(file.path()) {
        Ok(cert) => {
            let _ = (cert.covers(&domain), cert.not_after.timestamp_millis());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(bytes) => {
            let _ = mse_node::api::fuzz_deploy_conf(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                check_certificate("app.example.com", text);
            }
        }
        Input::Conf(c) => {
            let pem = c.cert.as_ref().and_then(pem_of);
            let body = json!({
                "name": c.name,
                "python_application": c.python_application,
                "healthcheck_endpoint": c.healthcheck_endpoint,
                "expires_at": c.expires_at,
                "hardware": c.hardware,
                "docker": c.docker,
                "domain_name": c.domain_name,
                "ssl_certificate": pem,
            });
            let _ = mse_node::api::fuzz_deploy_conf(body.to_string().as_bytes());
            if let Some(s) = &c.expires_at {
                let _ =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339);
            }
            if let (Some(domain), Some(pem)) = (&c.domain_name, &pem) {
                check_certificate(domain, pem);
            }
        }
    }
});
