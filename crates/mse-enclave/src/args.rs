//! Launch arguments: the app's [`LaunchSpec`] (a file, or `-` for stdin) and the host-local
//! [`LaunchInputs`] (where the package, the venv, the state dir are; what to listen on). The
//! process launcher of `mse-launch` is the only code that writes this command line
//! ([`mse_launch::process::enclave_args`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use mse_launch::{LaunchInputs, LaunchSpec, MAX_SPEC_BYTES, TeeKind, TlsSpec};

/// The command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mse-enclave",
    version,
    about = "Run a Python web app inside a TEE: attest, receive its key and secrets, serve it"
)]
pub struct Args {
    /// The app's launch spec (canonical JSON, see mse-launch), or `-` to read it from stdin.
    #[arg(long, value_name = "FILE|-")]
    pub spec: PathBuf,
    /// The encrypted code package (tar, as written by `mse package`); must hash to the spec's.
    #[arg(long, value_name = "FILE")]
    pub package: PathBuf,
    /// The app's Python virtualenv; its environment digest must be the spec's.
    #[arg(long, value_name = "VENV")]
    pub env: PathBuf,
    /// Owner mode: the certificate chain (PEM) whose SHA-256 the spec names; its key arrives
    /// with the configuration.
    #[arg(long, value_name = "FULLCHAIN_PEM")]
    pub certificate: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port of the configuration server, then of the app.
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// Stop with an error if no valid configuration arrived within this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Per-app host directory (sealed $HOME backing, fallback directories).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Sim TEE only: the node's secret (32 raw bytes or 64 hex characters) from which the mock
    /// Intel PKI and the sim platform sealing key derive.
    #[arg(long, value_name = "FILE")]
    pub sim_seed: Option<PathBuf>,
}

impl Args {
    /// The host-local inputs these arguments name.
    pub fn inputs(&self) -> LaunchInputs {
        LaunchInputs {
            package: self.package.clone(),
            environment: self.env.clone(),
            owner_certificate: self.certificate.clone(),
            host: self.host.clone(),
            port: self.port,
            state_dir: self.state_dir.clone(),
            sim_seed: self.sim_seed.clone(),
            config_timeout_secs: self.timeout,
        }
    }
}

/// Reads the spec from `path` (`-`: stdin, to its end), at most [`MAX_SPEC_BYTES`] bytes.
pub fn read_spec(path: &Path) -> anyhow::Result<LaunchSpec> {
    let mut bytes = Vec::new();
    let limit = MAX_SPEC_BYTES as u64 + 1;
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read the launch spec from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read the launch spec {}", path.display()))?;
    }
    Ok(LaunchSpec::from_json(&bytes)?)
}

/// Checks between the spec and the inputs that need no file read; `now` is the Unix time.
pub fn validate(spec: &LaunchSpec, inputs: &LaunchInputs, now: i64) -> anyhow::Result<()> {
    match (spec.tls, &inputs.owner_certificate) {
        (TlsSpec::Expiration(exp), None) => {
            if exp <= now {
                bail!("launch spec: tls.expiration {exp} is in the past");
            }
        }
        (TlsSpec::Expiration(_), Some(_)) => {
            bail!("--certificate is for owner mode, the launch spec is in self mode (expiration)")
        }
        (TlsSpec::OwnerCertificateSha256(_), None) => {
            bail!("the launch spec is in owner mode: give the certificate chain with --certificate")
        }
        (TlsSpec::OwnerCertificateSha256(_), Some(_)) => {}
    }
    match (spec.tee, &inputs.sim_seed) {
        (TeeKind::Sim, None) => bail!("the launch spec's TEE is sim: give --sim-seed"),
        (TeeKind::SimSnp, None) => {
            bail!("the launch spec's TEE is sim-snp: only a VM launched by mse-launch has it")
        }
        (TeeKind::Sim | TeeKind::SimSnp, Some(_)) => {}
        (other, Some(_)) => {
            bail!("--sim-seed is only for the sim TEE, the launch spec's is {other}")
        }
        (_, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mse_launch::Digest32;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            tls: TlsSpec::Expiration(2000),
            ..LaunchSpec::example()
        }
    }

    fn inputs() -> LaunchInputs {
        LaunchInputs {
            package: "/p/app.tar".into(),
            environment: "/v".into(),
            owner_certificate: None,
            host: "127.0.0.1".into(),
            port: 4443,
            state_dir: "/s/state".into(),
            sim_seed: Some("/s/seed".into()),
            config_timeout_secs: Some(300),
        }
    }

    /// The command line mse-launch writes is the one this parser reads, field for field.
    #[test]
    fn the_launchers_command_line_round_trips() {
        for i in [
            inputs(),
            LaunchInputs {
                owner_certificate: Some("/c/fullchain.pem".into()),
                sim_seed: None,
                config_timeout_secs: None,
                ..inputs()
            },
        ] {
            let mut argv = vec![std::ffi::OsString::from("mse-enclave")];
            argv.extend(mse_launch::process::enclave_args(&i));
            let args = Args::try_parse_from(argv).unwrap();
            assert_eq!(args.spec, PathBuf::from("-"));
            assert_eq!(args.inputs(), i);
        }
    }

    #[test]
    fn validation_messages() {
        validate(&spec(), &inputs(), 1000).unwrap();
        assert_eq!(
            validate(&spec(), &inputs(), 2000).unwrap_err().to_string(),
            "launch spec: tls.expiration 2000 is in the past"
        );
        let no_seed = LaunchInputs {
            sim_seed: None,
            ..inputs()
        };
        assert_eq!(
            validate(&spec(), &no_seed, 0).unwrap_err().to_string(),
            "the launch spec's TEE is sim: give --sim-seed"
        );
        let mut snp = spec();
        snp.tee = TeeKind::SimSnp;
        validate(&snp, &inputs(), 0).unwrap();
        assert_eq!(
            validate(&snp, &no_seed, 0).unwrap_err().to_string(),
            "the launch spec's TEE is sim-snp: only a VM launched by mse-launch has it"
        );
        let mut gramine = spec();
        gramine.tee = TeeKind::GramineSgx;
        assert_eq!(
            validate(&gramine, &inputs(), 0).unwrap_err().to_string(),
            "--sim-seed is only for the sim TEE, the launch spec's is gramine-sgx"
        );
        let mut owner = spec();
        owner.tls = TlsSpec::OwnerCertificateSha256(Digest32([4; 32]));
        assert_eq!(
            validate(&owner, &inputs(), 0).unwrap_err().to_string(),
            "the launch spec is in owner mode: give the certificate chain with --certificate"
        );
        let with_cert = LaunchInputs {
            owner_certificate: Some("/c.pem".into()),
            ..inputs()
        };
        assert_eq!(
            validate(&spec(), &with_cert, 0).unwrap_err().to_string(),
            "--certificate is for owner mode, the launch spec is in self mode (expiration)"
        );
    }
}
