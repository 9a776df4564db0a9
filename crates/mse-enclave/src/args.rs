//! Launch arguments, like the original's `mse-run` / `mse-bootstrap`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, ValueEnum};

/// Which TEE produces the evidence and the sealing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeeArg {
    /// Simulated SGX (mock Intel PKI from --sim-seed); refused where real TEE hardware exists.
    Sim,
    /// SGX under Gramine (/dev/attestation).
    Gramine,
    /// Linux configfs-tsm (TDX or SEV-SNP guest).
    Tsm,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mse-enclave",
    version,
    about = "Run a Python web app inside a TEE: attest, receive its key and secrets, serve it"
)]
pub struct Args {
    /// Enclave memory size in MB.
    #[arg(long, value_name = "MB")]
    pub size: u64,
    /// The app's domain name (or IP address): the certificate's SAN.
    #[arg(long)]
    pub san: String,
    /// The app's UUID; the configuration payload must carry the same.
    #[arg(long, value_name = "UUID")]
    pub id: String,
    /// The app object, as module:variable.
    #[arg(long, value_name = "MODULE:VAR")]
    pub application: String,
    /// Self mode: the RA-TLS certificate expires at this Unix time.
    #[arg(
        long,
        value_name = "UNIX_TS",
        required_unless_present = "certificate",
        conflicts_with = "certificate"
    )]
    pub expiration: Option<i64>,
    /// Owner mode: serve the app with this certificate chain (PEM); its key arrives with the
    /// configuration.
    #[arg(long, value_name = "FULLCHAIN_PEM")]
    pub certificate: Option<PathBuf>,
    /// The encrypted code package (tar, as written by `mse package`).
    #[arg(long, value_name = "FILE")]
    pub package: PathBuf,
    /// The app's Python virtualenv.
    #[arg(long, value_name = "VENV")]
    pub env: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port of the configuration server, then of the app.
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// The TEE to use.
    #[arg(long, value_enum)]
    pub tee: TeeArg,
    /// Stop with an error if no valid configuration arrived within this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Per-app host directory (sealed $HOME backing, fallback directories).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Sim TEE only: the node's secret (32 raw bytes or 64 hex characters) from which the mock
    /// Intel PKI and the sim platform sealing key derive.
    #[arg(long, value_name = "FILE", required_if_eq("tee", "sim"))]
    pub sim_seed: Option<PathBuf>,
}

/// Whether `text` looks like a canonical UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `text` is `module:variable` with Python identifiers (dotted module).
pub fn is_application(text: &str) -> bool {
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    text.split_once(':')
        .is_some_and(|(m, v)| m.split('.').all(ident) && ident(v))
}

impl Args {
    /// Checks that clap cannot express; `now` is the current Unix time.
    pub fn validate(&self, now: i64) -> anyhow::Result<()> {
        if self.size == 0 {
            bail!("--size must be a positive number of MB");
        }
        if !is_uuid(&self.id) {
            bail!("--id {:?} is not a UUID", self.id);
        }
        if !is_application(&self.application) {
            bail!(
                "--application {:?} is not module:variable (e.g. app:app)",
                self.application
            );
        }
        if self.san.is_empty() || self.san.chars().any(|c| c.is_whitespace() || c == '/') {
            bail!("--san {:?} is not a domain name or IP address", self.san);
        }
        if let Some(exp) = self.expiration
            && exp <= now
        {
            bail!("--expiration {exp} is in the past");
        }
        if self.tee != TeeArg::Sim && self.sim_seed.is_some() {
            bail!("--sim-seed is only for --tee sim");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_application() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(is_application("app:app"));
        assert!(is_application("pkg.web:create_app"));
        assert!(!is_application("app"));
        assert!(!is_application("app:"));
        assert!(!is_application("a-b:app"));
    }

    #[test]
    fn validation_messages() {
        let base = Args::parse_from([
            "mse-enclave",
            "--size",
            "1024",
            "--san",
            "localhost",
            "--id",
            "123e4567-e89b-12d3-a456-426614174000",
            "--application",
            "app:app",
            "--expiration",
            "2000",
            "--package",
            "p.tar",
            "--env",
            "venv",
            "--tee",
            "sim",
            "--sim-seed",
            "seed",
            "--state-dir",
            "s",
        ]);
        base.validate(1000).unwrap();
        assert_eq!(
            base.validate(2000).unwrap_err().to_string(),
            "--expiration 2000 is in the past"
        );
        let mut a = base.clone();
        a.id = "nope".into();
        assert_eq!(
            a.validate(0).unwrap_err().to_string(),
            "--id \"nope\" is not a UUID"
        );
        let mut a = base.clone();
        a.size = 0;
        assert_eq!(
            a.validate(0).unwrap_err().to_string(),
            "--size must be a positive number of MB"
        );
    }
}
