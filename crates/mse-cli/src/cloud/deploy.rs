//! `mse deploy`: package and encrypt the code, upload it, attest the enclave the node started
//! for it, and only then send it the code key and the secrets, over TLS pinned to the attested
//! certificate.
//!
//! What the measurement check trusts: the CLI recomputes the measurement manifest from what it
//! knows itself (the SHA-256 of the package it built and uploaded, the app id and domain the
//! node assigned and the certificate names, the `python_application` of mse.toml, the enclave
//! size of the hardware tier, the expiration or the owner certificate it sent) plus two digests
//! it takes from the node's API: the `mse-enclave` runtime digest (`--runtime-digest` pins it)
//! and the digest of the app's Python environment (built by the node from the named base
//! environment and the package's requirements.txt). Those two are printed so that they can be
//! compared with a reproducible build of the runtime and of the environment.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mse_attest::ratls::RaTlsCert;
use mse_attest::{Collateral, Evidence, Policy, TrustAnchors};
use mse_conf::AppConf;
use mse_crypto::CodeKey;
use mse_launch::{ConfPayload, Digest32, LaunchSpec, PackageRef, Runtime, TeeKind, TlsSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::api::{App, FilePart, NodeClient};
use super::config::{Login, config_dir};
use super::context::{CERT_FILE, CONTEXT_VERSION, ContextInfo, ContextStore, SPEC_FILE};
use super::{LIVE, app_url, router_address, tls, wait_until};

/// `--json`: the progress goes to stderr and stdout gets one JSON object at the end.
static JSON: AtomicBool = AtomicBool::new(false);

/// A progress line: stdout, or stderr under `--json`.
macro_rules! say {
    ($($arg:tt)*) => {
        if JSON.load(Ordering::Relaxed) {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

/// Where DCAP collateral of hardware evidence comes from unless `MSE_PCCS_URL` says otherwise.
const DEFAULT_PCCS_URL: &str = "https://api.trustedservices.intel.com";
/// The configuration POST (the enclave decrypts the code before answering).
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// Path to the app's mse.toml.
    #[arg(long, default_value = "mse.toml")]
    pub path: PathBuf,
    /// Replace a running app of the same name without asking.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Do not recompute the measurement locally (the evidence is still verified in full:
    /// genuine TEE, certificate key binding, TCB, debug mode).
    #[arg(long, conflicts_with = "rebuild_env")]
    pub no_verify: bool,
    /// Ignore [cloud.ssl]: serve the app with its RA-TLS certificate (not trusted by browsers)
    /// instead of the owner's certificate.
    #[arg(long)]
    pub untrusted_ssl: bool,
    /// Give up if the app is not running after this many minutes.
    #[arg(long, value_name = "MIN", default_value_t = 1440,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub timeout: u64,
    /// A JSON file sealed to the enclave's attested X25519 key and sent as its sealed secrets
    /// ($SEALED_SECRETS_PATH); it may hold "code_secret_key".
    #[arg(long, value_name = "FILE")]
    pub sealed_secrets: Option<PathBuf>,
    /// Expected SHA-256 of the node's mse-enclave runtime (hex); without it the node's word
    /// is taken (and printed).
    #[arg(long, value_name = "HEX")]
    pub runtime_digest: Option<String>,
    /// Print the result as one JSON object on stdout (the progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub env: crate::rebuild_env::RebuildEnvArgs,
}

/// What the owner mode adds: the certificate chain sent to the node, the key sent only to
/// the attested enclave.
struct OwnerTls {
    domain: String,
    chain_pem: String,
    key_pem: Zeroizing<String>,
}

/// The configuration material, read before anything is uploaded.
struct Material {
    secrets: Option<serde_json::Map<String, Value>>,
    sealed: Option<Zeroizing<Vec<u8>>>,
    owner: Option<OwnerTls>,
}

fn read_material(conf: &AppConf, args: &DeployArgs) -> anyhow::Result<Material> {
    let cloud = conf.cloud()?;
    let secrets = cloud
        .secrets
        .as_deref()
        .map(mse_conf::load_secrets)
        .transpose()?;
    let sealed = match &args.sealed_secrets {
        Some(path) => {
            // Checked to be one JSON object, like secrets.json; the content is never shown.
            mse_conf::load_secrets(path)?;
            Some(Zeroizing::new(
                mse_conf::bounded::read_bounded(path, mse_conf::bounded::MAX_SECRETS_FILE)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            ))
        }
        None => None,
    };
    let owner = match (&cloud.ssl, args.untrusted_ssl) {
        (Some(ssl), false) => Some(OwnerTls {
            domain: ssl.domain_name.clone(),
            chain_pem: mse_conf::bounded::read_bounded_string(
                &ssl.certificate,
                mse_conf::bounded::MAX_CERT_FILE,
            )
            .with_context(|| format!("cannot read {}", ssl.certificate.display()))?,
            key_pem: Zeroizing::new(
                mse_conf::bounded::read_bounded_string(
                    &ssl.private_key,
                    mse_conf::bounded::MAX_CERT_FILE,
                )
                .with_context(|| format!("cannot read {}", ssl.private_key.display()))?,
            ),
        }),
        _ => None,
    };
    Ok(Material {
        secrets,
        sealed,
        owner,
    })
}

fn parse_digest(what: &str, text: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| anyhow::anyhow!("{what} {text:?} is not 64 hexadecimal characters"))?;
    Ok(out)
}

/// Asks before replacing `apps`; refuses without a terminal unless `yes`.
fn confirm_replace(name: &str, apps: &[App], yes: bool) -> anyhow::Result<()> {
    let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    if yes {
        say!("Replacing app {name:?} ({})", ids.join(", "));
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "an app named {name:?} is already deployed ({}); use -y to replace it",
            ids.join(", ")
        );
    }
    if JSON.load(Ordering::Relaxed) {
        eprint!(
            "An app named {name:?} is already deployed ({}). Replace it? [y/N] ",
            ids.join(", ")
        );
    } else {
        print!(
            "An app named {name:?} is already deployed ({}). Replace it? [y/N] ",
            ids.join(", ")
        );
    }
    std::io::stdout().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("deployment cancelled: app {name:?} is left as it was")
    }
}

/// The package, built into `dir`: its path, nonces and digest.
fn build_package(
    conf: &AppConf,
    key: &CodeKey,
    dir: &std::path::Path,
) -> anyhow::Result<(PathBuf, mse_crypto::PackageSummary)> {
    let cloud = conf.cloud()?;
    let files = crate::package::code_files(conf)?;
    let path = dir.join("app.tar");
    let mut out = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let summary = crate::package::encrypt_files(&files, key, None, &mut out)?;
    say!(
        "Packaged {} files ({} encrypted, {} in clear) from {}: {} bytes, digest {}",
        summary.encrypted_files + summary.clear_files,
        summary.encrypted_files,
        summary.clear_files,
        cloud.code.display(),
        summary.package_bytes,
        hex::encode(summary.fingerprint)
    );
    Ok((path, summary))
}

/// An error unless the node reports `app` in status `want` (`what` describes that status).
fn expect_status(app: &App, want: &str, what: &str) -> anyhow::Result<()> {
    if app.status != want {
        bail!(
            "app {} is {} instead of {what}{}; `mse logs {}` may tell why",
            app.id,
            app.status,
            app.exit_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            app.id
        );
    }
    Ok(())
}

/// The root certificate the node's mock PCCS signs its collateral with (sim TEE).
fn sim_root_of(collateral: &Collateral) -> anyhow::Result<Vec<u8>> {
    let Collateral::Dcap(c) = collateral else {
        bail!("the node's PCCS answered with non-DCAP collateral");
    };
    let mut last = None;
    for pem in x509_parser::pem::Pem::iter_from_buffer(c.tcb_info_issuer_chain.as_bytes()) {
        let pem = pem.context("the node's TCB issuer chain is not valid PEM")?;
        last = Some(pem.contents);
    }
    last.context("the node's TCB issuer chain holds no certificate")
}

/// What `mse` knows itself about the app it deployed, to hold the node's launch spec against.
struct ExpectedSpec<'a> {
    app_id: &'a str,
    san: &'a str,
    application: &'a str,
    memory_mb: u64,
    tls: TlsSpec,
    package: PackageRef,
}

impl ExpectedSpec<'_> {
    /// An error naming the first field of `spec` that is not what was asked. Values are
    /// compared typed; only a differing field is formatted for the message.
    fn check(&self, spec: &LaunchSpec) -> anyhow::Result<()> {
        fn differs<T: PartialEq + std::fmt::Debug + ?Sized>(
            field: &'static str,
            theirs: &T,
            ours: &T,
        ) -> Option<(&'static str, String, String)> {
            (theirs != ours).then(|| (field, format!("{theirs:?}"), format!("{ours:?}")))
        }
        let package = |p: &PackageRef| format!("{} ({} bytes)", p.sha256, p.size);
        let first = differs("app_id", spec.app_id.as_str(), self.app_id)
            .or_else(|| differs("san", spec.san.as_str(), self.san))
            .or_else(|| differs("application", spec.application.as_str(), self.application))
            .or_else(|| {
                (spec.memory_mb != self.memory_mb).then(|| {
                    let (theirs, ours) = (spec.memory_mb.to_string(), self.memory_mb.to_string());
                    ("memory_mb", theirs, ours)
                })
            })
            .or_else(|| differs("tls", &spec.tls, &self.tls))
            .or_else(|| {
                (spec.package != self.package)
                    .then(|| ("package", package(&spec.package), package(&self.package)))
            });
        match first {
            Some((field, theirs, ours)) => bail!(
                "the node's launch spec has {field} {theirs} instead of {ours}: refusing (nothing was sent)"
            ),
            None => Ok(()),
        }
    }
}

/// What attestation established about the enclave.
struct Attested {
    cert: RaTlsCert,
    measurement: Vec<u8>,
    simulated: bool,
}

/// Everything [`attest`] needs.
struct AttestInputs<'a> {
    client: &'a NodeClient,
    login: &'a mut Login,
    config_dir: &'a std::path::Path,
    app: &'a App,
    sni: &'a str,
    router: &'a str,
    /// The TEE the node declares (the launch spec's, else the app's).
    tee: Option<TeeKind>,
    expected: Option<[u8; 32]>,
    /// A VM enclave's identity, recomputed from the node's published image.
    vm: Option<crate::vm_expect::VmIdentity>,
}

/// Fetches the enclave's certificate through the router and verifies its evidence (and the
/// measurement when `expected` is given). Any failure refuses the deployment.
fn attest(inp: AttestInputs<'_>) -> anyhow::Result<Attested> {
    let (host, port) = inp
        .router
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .with_context(|| {
            format!(
                "the node's router address {:?} is not host:port",
                inp.router
            )
        })?;
    let tee = inp.tee;
    let client = inp.client;
    let login = inp.login;
    let config_dir = inp.config_dir;
    let trust: crate::attest::TrustFor<'_> = Box::new(move |evidence: &Evidence| {
        let simulated_evidence = mse_attest::sim_root_from_quote(evidence.raw()).is_some();
        if let Some(sim @ (TeeKind::Sim | TeeKind::SimSnp)) = tee {
            say!();
            say!(
                "WARNING: this node declares a SIMULATED TEE ({sim}): the enclave has NO hardware protection;"
            );
            say!("WARNING: the node's operator can read its memory, its code and its secrets.");
            say!("WARNING: use it only for local testing, never with real secrets.");
            say!();
            let (collateral, root, pin) = if sim == TeeKind::SimSnp {
                // The node's mock AMD KDS: the VCEK and its ASK -> ARK chain.
                let kds = format!("{}/kds", client.base());
                let collateral = mse_attest::fetch_snp_collateral_blocking(
                    &kds,
                    evidence.raw(),
                    Some(mse_attest_sim::snp::SIM_SNP_PRODUCT),
                )
                .with_context(|| format!("collateral from the node's mock KDS {kds}"))?;
                let root = mse_attest::sim_ark_from_collateral(&collateral)
                    .context("the node's mock KDS serves no simulation ARK")?;
                (collateral, root, &mut login.sim_amd_root_sha256)
            } else {
                let pccs = format!("{}/pccs", client.base());
                let collateral = mse_attest::fetch_collateral_blocking(&pccs, evidence.raw())
                    .with_context(|| format!("collateral from the node's PCCS {pccs}"))?;
                let root = sim_root_of(&collateral)?;
                (collateral, root, &mut login.sim_root_sha256)
            };
            let fingerprint = hex::encode(Sha256::digest(&root));
            match pin {
                Some(pinned) if *pinned != fingerprint => bail!(
                    "the node's simulation root changed (was {pinned}, now {fingerprint}): refusing; \
                     `mse login` again if the node was re-created"
                ),
                Some(_) => {}
                None => {
                    *pin = Some(fingerprint.clone());
                    login.save(config_dir)?;
                    say!("Pinned this node's simulation root (SHA-256 {fingerprint}).");
                }
            }
            Ok((TrustAnchors::intel().with_simulation_root(root), collateral))
        } else {
            if simulated_evidence {
                bail!(
                    "the enclave presents simulated evidence, but the node declares the TEE {:?}: \
                     refusing (nothing was sent)",
                    tee.map_or("unknown", TeeKind::as_str)
                );
            }
            let pccs =
                std::env::var("MSE_PCCS_URL").unwrap_or_else(|_| DEFAULT_PCCS_URL.to_owned());
            let collateral = mse_attest::fetch_collateral_blocking(&pccs, evidence.raw())
                .with_context(|| format!("collateral from {pccs}"))?;
            Ok((TrustAnchors::intel(), collateral))
        }
    });
    let policy = Policy {
        allow_simulation: tee.is_some_and(TeeKind::is_simulated),
        expected_measurement: inp.expected.map(|m| m.to_vec()),
        ..Policy::default()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let attested = crate::attest::attest_enclave(
        &crate::attest::Enclave {
            host,
            port,
            sni: inp.sni,
            via: "through the node's router",
            name: &format!("the enclave of app {}", inp.app.id),
        },
        trust,
        &policy,
        inp.vm.as_ref(),
        now,
    )?;
    let examined = attested.examined;
    Ok(Attested {
        measurement: examined.report.measurement.clone(),
        simulated: examined.report.simulated,
        cert: examined.cert,
    })
}

pub fn run(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    JSON.store(args.json, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout * 60);
    let config_dir = config_dir()?;
    let mut login = Login::load(&config_dir)?;
    let client = NodeClient::new(&login.url, &login.token);
    let store = ContextStore::new(&config_dir);

    let conf = AppConf::load(&args.path)?;
    for w in &conf.warnings {
        eprintln!("{w}");
    }
    let cloud = conf.cloud()?.clone();
    let module_files = conf.python_application.module_files();
    if !module_files.iter().any(|f| cloud.code.join(f).is_file()) {
        bail!(
            "{}: python_application {:?}: neither {} nor {} exists in {}",
            conf.file.display(),
            conf.python_application.to_string(),
            module_files[0].display(),
            module_files[1].display(),
            cloud.code.display()
        );
    }
    let runtime_pin = args
        .runtime_digest
        .as_deref()
        .map(|d| parse_digest("--runtime-digest", d))
        .transpose()?;
    let material = read_material(&conf, args)?;

    let (project, note) = super::project::resolve(&client, cloud.project.as_deref(), &conf.file)?;
    if let Some(note) = note {
        say!("{note}");
    }
    let existing: Vec<App> = client
        .apps(Some(&conf.name), LIVE)?
        .into_iter()
        .filter(|a| a.name == conf.name)
        .collect();
    let hardware = client.hardware(&cloud.hardware)?;
    if !existing.is_empty() {
        confirm_replace(&conf.name, &existing, args.yes)?;
    }

    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let key = CodeKey::generate();
    let (package, summary) = build_package(&conf, &key, work.path())?;

    // Only now that everything local succeeded: the node allows one live app per name.
    for app in &existing {
        client.stop(&app.id)?;
        wait_until(&client, &app.id, deadline, |s| !LIVE.contains(&s))
            .with_context(|| format!("stopping app {}", app.id))?;
        say!("Stopped app {}", app.id);
    }

    let conf_json = json!({
        "name": conf.name,
        "project": project.name,
        "dev_mode": false,
        "healthcheck_endpoint": conf.healthcheck_endpoint,
        "python_application": conf.python_application.to_string(),
        "expires_at": cloud.expiration_date.map(|d| d.to_rfc3339()),
        "ssl_certificate": material.owner.as_ref().map(|o| o.chain_pem.clone()),
        "domain_name": material.owner.as_ref().map(|o| o.domain.clone()),
        "hardware": hardware.name,
        "docker": cloud.docker,
    });
    let bar = ProgressBar::new(summary.package_bytes).with_style(
        ProgressStyle::with_template("uploading  {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("static template"),
    );
    let bar2 = bar.clone();
    let app = client.create_app(
        &conf_json,
        &FilePart {
            name: "code",
            file_name: "app.tar",
            content_type: "application/tar",
            path: &package,
        },
        move |done| bar2.set_position(done),
    )?;
    bar.finish_and_clear();
    super::context::check_id(&app.id).context("the node answered with a bad app id")?;
    say!("Uploaded; the node created app {} ({})", app.id, app.name);

    let info = ContextInfo {
        version: CONTEXT_VERSION,
        id: app.id.clone(),
        name: conf.name.clone(),
        project: project.name.clone(),
        node_url: client.base().to_owned(),
        config_domain_name: app.config_domain_name.clone().unwrap_or_default(),
        domain_name: app.domain_name.clone().unwrap_or_default(),
        router_address: String::new(),
        created_at: app.created_at.clone().unwrap_or_default(),
        python_application: conf.python_application.to_string(),
        healthcheck_endpoint: conf.healthcheck_endpoint.clone(),
        tee: app.tee.map(|t| t.to_string()).unwrap_or_default(),
        measurement: String::new(),
        measurement_recomputed: false,
        tests_dir: cloud
            .tests
            .as_ref()
            .map(|t| std::path::absolute(t).unwrap_or_else(|_| t.clone())),
        tests_cmd: conf.tests_cmd.clone(),
        tests_requirements: conf.tests_requirements.clone(),
    };
    let key_hex = Zeroizing::new(key.to_hex());
    let ctx_dir = store.create(
        &info,
        &key_hex,
        &mse_crypto::nonces_to_json(&summary.nonces),
    )?;

    say!("Waiting for the enclave to start...");
    let app = wait_until(&client, &app.id, deadline, |s| s != "spawning")?;
    expect_status(&app, "initializing", "waiting for its configuration")?;
    let sni = app
        .config_domain_name
        .clone()
        .context("the node did not say the app's config_domain_name")?;
    let router = router_address(&app, client.base())?;

    let spec = app.launch_spec.clone();
    let declared_tee = spec.as_ref().map(|s| s.tee).or(app.tee);
    let mut vm_identity = None;
    let expected = if args.no_verify {
        None
    } else {
        let spec = spec
            .as_ref()
            .context("the node did not give the app's launch spec: refusing (nothing was sent)")?;
        let package_size = std::fs::metadata(&package)
            .with_context(|| format!("cannot read {}", package.display()))?
            .len();
        let tls = match &material.owner {
            Some(o) => TlsSpec::OwnerCertificateSha256(Digest32(
                Sha256::digest(o.chain_pem.as_bytes()).into(),
            )),
            None => {
                let TlsSpec::Expiration(node_exp) = spec.tls else {
                    bail!(
                        "the node launched the app in owner-certificate mode, but no certificate was sent: refusing (nothing was sent)"
                    );
                };
                if let Some(asked) = cloud.expiration_date
                    && asked.timestamp() != node_exp
                {
                    bail!(
                        "the node set the expiration to {} instead of {} asked in {}: refusing (nothing was sent)",
                        app.expires_at.as_deref().unwrap_or(""),
                        asked.to_rfc3339(),
                        conf.file.display()
                    );
                }
                TlsSpec::Expiration(node_exp)
            }
        };
        let ours = ExpectedSpec {
            app_id: &app.id,
            san: &sni,
            application: &conf.python_application.to_string(),
            memory_mb: hardware.enclave_size,
            tls,
            package: PackageRef {
                sha256: Digest32(summary.fingerprint),
                size: package_size,
            },
        };
        ours.check(spec)?;
        let runtime = match spec.runtime {
            Runtime::Process { enclave_sha256 } => {
                if let Some(pin) = runtime_pin
                    && pin != enclave_sha256.0
                {
                    bail!(
                        "the node runs mse-enclave {} but --runtime-digest expects {}: refusing (nothing was sent)",
                        enclave_sha256,
                        hex::encode(pin)
                    );
                }
                format!("runtime {enclave_sha256}")
            }
            // A VM with the simulated TEE inside: the sim quote's measurement is the spec hash,
            // which binds the image digest like every other field. SEV-SNP (sim-snp) and TDX:
            // the hardware identity is recomputed from the image files below.
            Runtime::Vm { image_sha256 }
                if spec.tee.is_simulated() || crate::vm_expect::applies(spec) =>
            {
                if runtime_pin.is_some() {
                    bail!(
                        "--runtime-digest pins an mse-enclave, but the node runs VM image {image_sha256}: refusing (nothing was sent)"
                    );
                }
                format!("VM image {image_sha256}")
            }
            Runtime::Vm { .. } => bail!(
                "the node's launch spec names a VM image with TEE {}, whose launch measurement this mse cannot check yet: refusing (nothing was sent)",
                spec.tee
            ),
        };
        let env_origin = if args.env.rebuild_env {
            let line =
                crate::rebuild_env::check(&client, &app.id, spec.environment_sha256, &args.env)
                    .context("--rebuild-env: refusing (nothing was sent)")?;
            say!("{line}");
            "rebuilt here from the node's lock"
        } else {
            "as declared by the node"
        };
        say!(
            "Expected measurement {} ({} and environment {} {env_origin})",
            spec.hash(),
            runtime,
            spec.environment_sha256
        );
        store.write_file(&app.id, SPEC_FILE, &spec.canonical_bytes())?;
        if crate::vm_expect::applies(spec) {
            let vm = crate::vm_expect::recompute(client.base(), spec)
                .context("nothing was sent to the enclave")?;
            for line in vm.describe() {
                say!("{line}");
            }
            vm_identity = Some(vm);
            None
        } else {
            Some(spec.sim_measurement())
        }
    };

    say!("Verifying the enclave of {sni} through the router at {router}...");
    let attested = attest(AttestInputs {
        client: &client,
        login: &mut login,
        config_dir: &config_dir,
        app: &app,
        sni: &sni,
        router: &router,
        tee: declared_tee,
        expected,
        vm: vm_identity,
    })
    .inspect_err(|_| {
        let line = format!(
            "App {} got nothing and is left waiting on the node: `mse stop {}` removes it.",
            app.id, app.id
        );
        if JSON.load(Ordering::Relaxed) {
            eprintln!("{line}");
        } else {
            // Best effort: the error that follows is what matters.
            let _ = crate::write_stdout(format_args!("{line}\n"));
        }
    })
    .context("nothing was sent to the enclave")?;
    let cert_path = store.write_file(&app.id, CERT_FILE, attested.cert.pem().as_bytes())?;
    say!(
        "Enclave verified: {}measurement {}{}",
        if attested.simulated {
            "SIMULATED TEE, "
        } else {
            ""
        },
        hex::encode(&attested.measurement),
        if args.no_verify {
            " (NOT recomputed locally: --no-verify)"
        } else {
            " (recomputed locally: match)"
        }
    );

    let mut payload = ConfPayload {
        uuid: app.id.clone(),
        code_secret_key: Some(Zeroizing::new(key_hex.to_string())),
        app_secrets: material.secrets.clone().map(Value::Object),
        ..ConfPayload::default()
    };
    if let Some(sealed) = &material.sealed {
        let pk = attested
            .cert
            .x25519_public()
            .context("the enclave's certificate carries no X25519 key to seal secrets to")?;
        let boxed = mse_crypto::seal(&pk, sealed).context("sealing the sealed secrets")?;
        payload.app_sealed_secrets = Some(base64::engine::general_purpose::URL_SAFE.encode(boxed));
    }
    if let Some(o) = &material.owner {
        payload.ssl_private_key = Some(Zeroizing::new(o.key_pem.to_string()));
    }
    let body = payload.to_body();
    drop(payload);
    let der = attested.cert.der.clone();
    let answer = tls::pinned_request(
        &router,
        &sni,
        &der,
        hyper::Method::POST,
        "/",
        Some(body.to_vec()),
        CONFIGURE_TIMEOUT,
    )
    .context("sending the configuration to the enclave")?;
    if answer.status != 200 {
        bail!(
            "the enclave refused the configuration: HTTP {}: {}",
            answer.status,
            answer.body
        );
    }
    say!("Sent the code key{} to the attested enclave", {
        let mut what = String::new();
        if material.secrets.is_some() {
            what.push_str(", the secrets");
        }
        if material.sealed.is_some() {
            what.push_str(", the sealed secrets");
        }
        if material.owner.is_some() {
            what.push_str(", the TLS private key");
        }
        what
    });

    let mut info = store.load(&app.id)?;
    info.router_address = router.clone();
    info.config_domain_name = sni.clone();
    info.domain_name = app.domain_name.clone().unwrap_or_else(|| sni.clone());
    info.tee = declared_tee.map(|t| t.to_string()).unwrap_or_default();
    info.measurement = hex::encode(&attested.measurement);
    info.measurement_recomputed = !args.no_verify;
    store.save(&info)?;

    say!("Waiting for the app to be ready...");
    let app = wait_until(&client, &app.id, deadline, |s| s != "initializing")?;
    expect_status(&app, "running", "running")?;
    let url = app_url(&info);
    say!();
    say!(
        "App {} is running ({:.1} s)",
        app.name,
        started.elapsed().as_secs_f64()
    );
    say!("  id:          {}", app.id);
    say!("  url:         {url}");
    say!("  certificate: {}", cert_path.display());
    say!("  context:     {}", ctx_dir.display());
    if material.owner.is_none() {
        say!("Check it and call it with:");
        let sim = if attested.simulated {
            format!(" --allow-simulation --pccs-url {}/pccs", client.base())
        } else {
            String::new()
        };
        let connect = if super::resolve_hint(&info).is_empty() {
            String::new()
        } else {
            format!(" --connect {router}")
        };
        say!(
            "  mse verify {}{connect}{sim} --fingerprint {}",
            url.trim_start_matches("https://"),
            hex::encode(&attested.measurement)
        );
        say!(
            "  curl --cacert {}{} {url}{}",
            cert_path.display(),
            super::resolve_hint(&info),
            info.healthcheck_endpoint
        );
    }
    if args.json {
        let result = json!({
            "id": app.id,
            "name": app.name,
            "status": app.status,
            "url": url,
            "domain_name": info.domain_name,
            "config_domain_name": info.config_domain_name,
            "router_address": info.router_address,
            "certificate": cert_path,
            "context": ctx_dir,
            "measurement": info.measurement,
            "measurement_recomputed": info.measurement_recomputed,
            "simulated": attested.simulated,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{result}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_spec_must_hold_what_was_deployed() {
        let spec = LaunchSpec::example();
        let ours = ExpectedSpec {
            app_id: &spec.app_id,
            san: &spec.san,
            application: "app:app",
            memory_mb: 1024,
            tls: spec.tls,
            package: spec.package,
        };
        ours.check(&spec).unwrap();
        let mut other = spec.clone();
        other.package.size = 1;
        assert_eq!(
            ours.check(&other).unwrap_err().to_string(),
            format!(
                "the node's launch spec has package {} (1 bytes) instead of {} (4096 bytes): refusing (nothing was sent)",
                spec.package.sha256, spec.package.sha256
            )
        );
        let mut other = spec.clone();
        other.application = "evil:app".into();
        assert_eq!(
            ours.check(&other).unwrap_err().to_string(),
            "the node's launch spec has application \"evil:app\" instead of \"app:app\": refusing (nothing was sent)"
        );
    }

    #[test]
    fn digests_and_dates() {
        assert_eq!(parse_digest("x", &"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(
            parse_digest("the node's runtime_digest", "")
                .unwrap_err()
                .to_string(),
            "the node's runtime_digest \"\" is not 64 hexadecimal characters"
        );
    }
}
