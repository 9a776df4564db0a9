//! The whole life of an enclave, in order.

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::{Context, bail};
use mse_attest::measurement::{environment_digest, file_digest};
use mse_crypto::UnpackLimits;
use mse_launch::{LaunchInputs, LaunchSpec, Runtime, TeeKind, TlsSpec};
use mse_wsgi::{Bind, Server, ServerConfig, Tls};
use time::OffsetDateTime;

use crate::args::{Args, read_spec, validate};
use crate::identity::{Identity, OWNER_MODE_CONF_CERT_LIFETIME, server_config};
use crate::provision::{Mode, Provisioner, read_owner_chain};
use crate::{conf_server, tee};
use mse_sandbox::{Sandbox, SandboxConfig};

/// Checks that what the host attached is what the spec names: this executable, the package
/// (size and SHA-256), the venv (environment digest v1), the owner's certificate chain. The
/// host chose the files; the spec (whose hash the TEE reports) says what they must be.
pub fn check_inputs(spec: &LaunchSpec, inputs: &LaunchInputs) -> anyhow::Result<()> {
    let mismatch = |what: &str, want: &dyn std::fmt::Display, found: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "{what} does not match the launch spec: the spec names {want}, found {found}"
        )
    };
    match spec.runtime {
        Runtime::Process { enclave_sha256 } => {
            let exe =
                std::env::current_exe().context("cannot locate the mse-enclave executable")?;
            let found = file_digest(&exe)?;
            if found != enclave_sha256.0 {
                return Err(mismatch(
                    &format!("this mse-enclave ({})", exe.display()),
                    &enclave_sha256,
                    &hex::encode(found),
                ));
            }
        }
        Runtime::Vm { .. } => {
            bail!("the launch spec names a VM image; this mse-enclave runs as a host process")
        }
    }
    let size = std::fs::metadata(&inputs.package)
        .with_context(|| format!("--package {}", inputs.package.display()))?
        .len();
    if size != spec.package.size {
        return Err(mismatch(
            &format!("the package {}", inputs.package.display()),
            &format!("{} bytes", spec.package.size),
            &format!("{size} bytes"),
        ));
    }
    let found = file_digest(&inputs.package)?;
    if found != spec.package.sha256.0 {
        return Err(mismatch(
            &format!("the package {}", inputs.package.display()),
            &spec.package.sha256,
            &hex::encode(found),
        ));
    }
    let found = environment_digest(&inputs.environment)?;
    if found != spec.environment_sha256.0 {
        return Err(mismatch(
            &format!("the environment {}", inputs.environment.display()),
            &spec.environment_sha256,
            &hex::encode(found),
        ));
    }
    if let (TlsSpec::OwnerCertificateSha256(want), Some(cert)) =
        (spec.tls, &inputs.owner_certificate)
    {
        let found = file_digest(cert)?;
        if found != want.0 {
            return Err(mismatch(
                &format!("the certificate chain {}", cert.display()),
                &want,
                &hex::encode(found),
            ));
        }
    }
    Ok(())
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

/// The whole life of the enclave: spec, input checks, attester, sandbox, configuration server,
/// then the app until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    // First, before any thread exists (the launcher pins this process's CPUs meanwhile).
    let spec = read_spec(&args.spec)?;
    // The enclave ends with the process that launched it (the launcher's spawner thread).
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("cannot ask for the parent-death signal")?;
    run_spec(spec, args.inputs(), None)
}

/// What a VM guest decides instead of the process flow.
pub struct GuestOverrides {
    /// The sealed $HOME's key: made at this boot, never derived from anything the host knows
    /// (the sim platform key derives from the node's seed).
    pub home_key: [u8; 32],
}

/// The enclave flow for `spec` with `inputs`. A VM guest ([`crate::guest`]) has checked its
/// inputs against the spec itself (copied from the disks into guest memory) and passes
/// `guest`; a host process checks them here.
pub fn run_spec(
    spec: LaunchSpec,
    mut inputs: LaunchInputs,
    guest: Option<GuestOverrides>,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    validate(&spec, &inputs, now.unix_timestamp())?;
    // Absolute paths: the sandbox keeps them visible under its mounts, and the cwd may change.
    inputs.environment = std::fs::canonicalize(&inputs.environment)
        .with_context(|| format!("--env {}", inputs.environment.display()))?;
    inputs.package = std::fs::canonicalize(&inputs.package)
        .with_context(|| format!("--package {}", inputs.package.display()))?;
    let owner_chain = inputs
        .owner_certificate
        .as_deref()
        .map(read_owner_chain)
        .transpose()?;

    // Everything up to the sandbox runs on this one thread (the sandbox needs that).
    if guest.is_none() {
        check_inputs(&spec, &inputs)?;
    }
    let measurement = spec.sim_measurement();
    tracing::info!(
        measurement = %hex::encode(measurement),
        package = %spec.package.sha256,
        environment = %spec.environment_sha256,
        tee = %spec.tee,
        "measured"
    );
    let attester = tee::attester(spec.tee, inputs.sim_seed.as_deref(), measurement)?;
    if spec.tee.is_simulated() {
        tracing::warn!(
            "SIMULATED TEE ({}): no hardware protection; this enclave's evidence is signed by a \
             mock {} PKI and only verifiers that explicitly allow simulation accept it",
            spec.tee,
            if spec.tee == TeeKind::SimSnp {
                "AMD"
            } else {
                "Intel"
            }
        );
    }
    let home_key = match &guest {
        Some(g) => g.home_key,
        None => tee::home_key(attester.as_ref(), &measurement)?,
    };
    // The sandbox exports the app's variables into this process's environment itself.
    let sandbox = mse_sandbox::enter_with(
        &SandboxConfig {
            size_mb: spec.memory_mb,
            home_key,
            state_dir: inputs.state_dir.clone(),
        },
        &[inputs.environment.clone(), inputs.package.clone()],
    )
    .context("cannot set up the sandbox")?;
    if guest.is_some() {
        crate::guest::boot::python_paths().context("guest")?;
    }
    let env: Vec<String> = sandbox
        .paths()
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tracing::info!("app environment: {}", env.join(" "));

    let result = serve(
        &spec,
        &inputs,
        attester.as_ref(),
        &sandbox,
        owner_chain,
        now,
    );
    if let Err(e) = sandbox.stop() {
        tracing::warn!("sandbox cleanup: {e}");
    }
    result
}

fn serve(
    spec: &LaunchSpec,
    inputs: &LaunchInputs,
    attester: &dyn mse_attest::attester::Attester,
    sandbox: &Sandbox,
    owner_chain: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let addr = (inputs.host.as_str(), inputs.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --host {:?}", inputs.host))?
        .next()
        .with_context(|| format!("--host {:?} resolves to no address", inputs.host))?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;

    let not_after = match spec.tls {
        TlsSpec::Expiration(exp) => {
            OffsetDateTime::from_unix_timestamp(exp).context("launch spec: tls.expiration")?
        }
        TlsSpec::OwnerCertificateSha256(_) => now + OWNER_MODE_CONF_CERT_LIFETIME,
    };
    let identity = Identity::generate(attester, &spec.san, not_after)?;
    let paths = sandbox.paths();
    let provisioner = Provisioner {
        id: spec.app_id.clone(),
        package: sandbox.runtime_path(&inputs.package),
        package_digest: spec.package.sha256.0,
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
        // The app server runs on this runtime: its workers hand requests to Python once per
        // batch, when they run out of ready connections.
        .on_thread_park(mse_wsgi::park_hook)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tracing::info!(
        "configuration server on https://{} (SAN {}): waiting for the code key and secrets",
        listener.local_addr().map_or(addr, |a| a),
        spec.san
    );
    let (listener, provisioned) = runtime.block_on(conf_server::serve(
        listener,
        identity.tls_config(&[b"http/1.1"])?,
        provisioner,
        inputs.config_timeout_secs.map(Duration::from_secs),
        signalled(),
    ))?;

    sandbox
        .lock_down()
        .context("cannot lock the sandbox down")?;
    let tls = match (owner_chain, provisioned.ssl_key) {
        (Some(chain), Some(key)) => server_config(chain, key, &[])?,
        _ => identity.tls_config(&[])?,
    };
    let config = ServerConfig::new(Bind::Listener(listener), spec.application.clone())
        .app_dir(&paths.module_path)
        .venv(Some(sandbox.runtime_path(&inputs.environment)))
        .tls(Tls::Config(tls))
        .startup_code(Some(Sandbox::python_startup_code().to_owned()));
    let server = Server::new(config).context("cannot start the app")?;
    tracing::info!(
        "app {} serving on https://{} ({:?})",
        spec.application,
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
    let crate::guest::Booted {
        spec,
        inputs,
        home_key,
    } = booted;
    run_spec(
        spec,
        inputs,
        Some(GuestOverrides {
            home_key: *home_key,
        }),
    )
}
