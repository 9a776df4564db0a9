//! The whole life of an enclave, in order.

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{Context, bail};
use mse_attest::attester::AttesterKind;
use mse_attest::measurement::{Manifest, MeasurementInputs, TlsInput};
use mse_crypto::UnpackLimits;
use mse_wsgi::{Bind, Server, ServerConfig, Tls};
use time::OffsetDateTime;

use crate::args::Args;
use crate::identity::{Identity, OWNER_MODE_CONF_CERT_LIFETIME, server_config};
use crate::provision::{Mode, Provisioner, read_owner_chain};
use crate::{conf_server, tee};
use mse_sandbox::{Sandbox, SandboxConfig};

/// Measure what this enclave runs, exactly as `mse` recomputes it.
pub fn manifest(args: &Args) -> anyhow::Result<Manifest> {
    let runtime = std::env::current_exe().context("cannot locate the mse-enclave executable")?;
    let tls = match (&args.certificate, args.expiration) {
        (Some(cert), _) => TlsInput::OwnerCertificate(cert),
        (None, Some(exp)) => TlsInput::Expiration(exp),
        (None, None) => bail!("give --expiration or --certificate"),
    };
    Ok(Manifest::compute(&MeasurementInputs {
        runtime: &runtime,
        environment: &args.env,
        package: &args.package,
        app_id: &args.id,
        san: &args.san,
        application: &args.application,
        size_mb: args.size,
        tls,
    })?)
}

/// Resolves when SIGTERM or SIGINT arrives, with the signal's name.
async fn signalled() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with(args, None)
}

/// What a VM guest decides instead of the process flow.
pub struct GuestOverrides {
    /// The sealed $HOME's key: made at this boot.
    pub home_key: [u8; 32],
    /// The measurement the sim TEE reports: the spec hash (what `mse` recomputes from the spec).
    pub measurement: [u8; 32],
}

/// [`run`], with the sealed $HOME's key given (a VM guest makes a fresh one at each boot)
/// instead of derived from the platform's sealing key.
pub fn run_with(mut args: Args, guest: Option<GuestOverrides>) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    args.validate(now.unix_timestamp())?;
    // Absolute paths: the sandbox keeps them visible under its mounts, and the cwd may change.
    args.env = std::fs::canonicalize(&args.env)
        .with_context(|| format!("--env {}", args.env.display()))?;
    args.package = std::fs::canonicalize(&args.package)
        .with_context(|| format!("--package {}", args.package.display()))?;
    let owner_chain = args
        .certificate
        .as_deref()
        .map(read_owner_chain)
        .transpose()?;

    // Everything up to the sandbox runs on this one thread (the sandbox needs that).
    let manifest = manifest(&args)?;
    let measurement = guest
        .as_ref()
        .map_or_else(|| manifest.measurement(), |g| g.measurement);
    tracing::info!(
        measurement = %hex::encode(measurement),
        package = %hex::encode(manifest.package_digest),
        environment = %hex::encode(manifest.environment_digest),
        runtime = %hex::encode(manifest.runtime_digest),
        "measured"
    );
    let attester = tee::attester(args.tee, args.sim_seed.as_deref(), measurement)?;
    if attester.kind() == AttesterKind::Sim {
        tracing::warn!(
            "SIMULATED TEE: no hardware protection; this enclave's evidence is signed by a mock \
             Intel PKI and only verifiers that explicitly allow simulation accept it"
        );
    }
    let home_key = match &guest {
        Some(g) => g.home_key,
        None => tee::home_key(attester.as_ref(), &measurement)?,
    };
    // The sandbox exports the app's variables into this process's environment itself.
    let sandbox = mse_sandbox::enter_with(
        &SandboxConfig {
            size_mb: args.size,
            home_key,
            state_dir: args.state_dir.clone(),
        },
        &[args.env.clone(), args.package.clone()],
    )
    .context("cannot set up the sandbox")?;
    let env: Vec<String> = sandbox
        .paths()
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tracing::info!("app environment: {}", env.join(" "));

    let result = serve(
        &args,
        attester.as_ref(),
        &sandbox,
        owner_chain,
        manifest.package_digest,
        now,
    );
    if let Err(e) = sandbox.stop() {
        tracing::warn!("sandbox cleanup: {e}");
    }
    result
}

fn serve(
    args: &Args,
    attester: &dyn mse_attest::attester::Attester,
    sandbox: &Sandbox,
    owner_chain: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    package_digest: [u8; 32],
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let addr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --host {:?}", args.host))?
        .next()
        .with_context(|| format!("--host {:?} resolves to no address", args.host))?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;

    let not_after = match args.expiration {
        Some(exp) => OffsetDateTime::from_unix_timestamp(exp).context("--expiration")?,
        None => now + OWNER_MODE_CONF_CERT_LIFETIME,
    };
    let identity = Identity::generate(attester, &args.san, not_after)?;
    let paths = sandbox.paths();
    let provisioner = Provisioner {
        id: args.id.clone(),
        package: args.package.clone(),
        package_digest,
        x25519: identity.x25519.clone(),
        mode: match &owner_chain {
            Some(chain) => Mode::Owner(chain.clone()),
            None => Mode::SelfSigned,
        },
        secrets_path: paths.secrets_path.clone(),
        sealed_secrets_path: paths.sealed_secrets_path.clone(),
        module_path: paths.module_path.clone(),
        limits: UnpackLimits::default(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tracing::info!(
        "configuration server on https://{} (SAN {}): waiting for the code key and secrets",
        listener.local_addr().map_or(addr, |a| a),
        args.san
    );
    let (listener, provisioned) = runtime.block_on(conf_server::serve(
        listener,
        identity.tls_config(&[b"http/1.1"])?,
        provisioner,
        args.timeout.map(Duration::from_secs),
        signalled(),
    ))?;

    sandbox
        .lock_down()
        .context("cannot lock the sandbox down")?;
    let tls = match (owner_chain, provisioned.ssl_key) {
        (Some(chain), Some(key)) => server_config(chain, key, &[])?,
        _ => identity.tls_config(&[])?,
    };
    let config = ServerConfig::new(Bind::Listener(listener), args.application.clone())
        .app_dir(&paths.module_path)
        .venv(Some(args.env.clone()))
        .tls(Tls::Config(tls))
        .startup_code(Some(Sandbox::python_startup_code().to_owned()));
    let server = Server::new(config).context("cannot start the app")?;
    tracing::info!(
        "app {} serving on https://{} ({:?})",
        args.application,
        server.local_addr(),
        server.interface()
    );
    runtime.block_on(server.serve(async {
        let cause = signalled().await;
        tracing::info!("{cause}: stopping");
    }))?;
    Ok(())
}

/// The enclave flow inside a VM guest whose inputs [`crate::guest::boot`] checked.
pub fn run_guest(booted: crate::guest::Booted) -> anyhow::Result<()> {
    use crate::args::TeeArg;
    use mse_launch::{TeeKind, TlsSpec};
    let crate::guest::Booted {
        spec,
        inputs,
        home_key,
    } = booted;
    let tee = match spec.tee {
        TeeKind::Sim => TeeArg::Sim,
        TeeKind::SevSnp | TeeKind::Tdx => TeeArg::Tsm,
        other => bail!("TEE {other} cannot run in a VM guest yet"),
    };
    let args = Args {
        size: spec.memory_mb,
        san: spec.san.clone(),
        id: spec.app_id.clone(),
        application: spec.application.clone(),
        expiration: match spec.tls {
            TlsSpec::Expiration(t) => Some(t),
            TlsSpec::OwnerCertificateSha256(_) => None,
        },
        certificate: inputs.owner_certificate.clone(),
        package: inputs.package.clone(),
        env: inputs.environment.clone(),
        host: inputs.host.clone(),
        port: inputs.port,
        tee,
        timeout: inputs.config_timeout_secs,
        state_dir: inputs.state_dir.clone(),
        sim_seed: inputs.sim_seed.clone(),
    };
    run_with(
        args,
        Some(GuestOverrides {
            home_key: *home_key,
            measurement: spec.sim_measurement(),
        }),
    )
}
