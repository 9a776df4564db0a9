//! `mse verify` (also `mse cloud verify`): check that a server, an RA-TLS certificate file or a
//! piece of evidence at rest comes from a genuine TEE running the expected code.
//!
//! Every check is printed even after a failure, and even without collateral (no PCCS
//! reachable): the checks that need none are evaluated, the others say "not evaluated" and why.
//! Exit code 0 only when trusted; 1 when not trusted or when the evidence could not be examined
//! at all (the last line says why); 2 stays clap's usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use mse_attest::ratls::{RaTlsCert, anchors_for_collateral};
use mse_attest::report::Outcome;
use mse_attest::rfc3339;
use mse_attest::{Collateral, Evidence, EvidenceKind, Policy, Report, TrustAnchors, verify};
use serde::Serialize;

/// Where collateral comes from when neither --pccs-url nor --collateral is given.
const DEFAULT_PCCS_URL: &str = "https://api.trustedservices.intel.com";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 trusted; 1 not trusted or could not verify (the last line says why); 2 usage error."
)]
pub struct VerifyArgs {
    /// The app's DOMAIN[:PORT] (port 443 by default): fetch its certificate with SNI and verify it.
    #[arg(value_name = "DOMAIN[:PORT]", required_unless_present_any = ["quote", "cert"],
          conflicts_with_all = ["quote", "cert"])]
    pub target: Option<String>,
    /// Connect to this address (e.g. a node's router) instead of resolving DOMAIN; the SNI and
    /// the certificate's name check still use DOMAIN.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    pub connect: Option<String>,
    /// Verify evidence at rest: an SGX/TDX quote (binary or hex) or a SEV-SNP report.
    #[arg(long, value_name = "FILE", conflicts_with = "cert")]
    pub quote: Option<PathBuf>,
    /// Verify an RA-TLS certificate file (PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Expected measurement (MRENCLAVE, or TDX MRTD / SNP measurement), hex.
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Expected signer (MRSIGNER), hex.
    #[arg(long, value_name = "HEX")]
    pub signer: Option<String>,
    /// PCCS to fetch DCAP collateral from [default: $MSE_PCCS_URL, else Intel's PCS].
    #[arg(long, value_name = "URL", conflicts_with = "collateral")]
    pub pccs_url: Option<String>,
    /// Offline collateral: dcap-qvl collateral JSON (SGX/TDX) or the VCEK certificate (SEV-SNP).
    #[arg(long, value_name = "FILE")]
    pub collateral: Option<PathBuf>,
    /// Accept evidence from a simulated TEE (mock Intel root or mock AMD ARK). Never for production.
    #[arg(long)]
    pub allow_simulation: bool,
    /// Pin this mock root (PEM or DER) for simulated evidence instead of the one the evidence
    /// names (a node's mock PCCS serves it).
    #[arg(long, value_name = "FILE", requires = "allow_simulation")]
    pub sim_root: Option<PathBuf>,
    /// Accept debug-mode enclaves (their memory is readable by the host).
    #[arg(long)]
    pub allow_debug: bool,
    /// Also accept these TCB statuses (default: UpToDate, SWHardeningNeeded).
    #[arg(long, value_name = "STATUS,...", value_delimiter = ',')]
    pub accept_tcb: Vec<String>,
    /// Verify as of this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// A VM enclave (SEV-SNP, sim-snp, TDX): its launch spec (JSON, e.g. the one `mse deploy`
    /// saved); the expected measurement is recomputed from it and the image --node publishes.
    #[arg(long, value_name = "FILE", requires = "node", conflicts_with = "quote")]
    pub launch_spec: Option<PathBuf>,
    /// The node whose `GET /image` publishes the VM image (with --launch-spec).
    #[arg(long, value_name = "URL", requires = "launch_spec")]
    pub node: Option<String>,
    /// Write the verified certificate here (PEM, for `curl --cacert`); only when trusted.
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "quote")]
    pub output: Option<PathBuf>,
    /// With DOMAIN of an app deployed from here: rebuild its environment from the node's lock
    /// (see `mse deploy --rebuild-env`), and expect the measurement of its launch spec.
    #[command(flatten)]
    pub env: crate::rebuild_env::RebuildEnvArgs,
}

/// A certificate-level check (the evidence checks are in the report).
#[derive(Debug, Serialize)]
struct CertCheck {
    name: &'static str,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Serialize)]
struct CertInfo {
    form: String,
    subject: String,
    san: Vec<String>,
    not_before: String,
    not_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    x25519_public: Option<String>,
    checks: Vec<CertCheck>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    source: String,
    trusted: bool,
    certificate: Option<CertInfo>,
    report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    vm: Option<VmInfo>,
}

/// A VM enclave's identity: what was recomputed, what the evidence says.
#[derive(Debug, Serialize)]
struct VmInfo {
    tee: String,
    spec_sha256: String,
    image: crate::vm_expect::ImageDigests,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vcpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vcpu_type: Option<String>,
    fields: Vec<VmField>,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Serialize)]
struct VmField {
    field: &'static str,
    expected: String,
    actual: String,
}

fn vm_info(vm: &crate::vm_expect::VmIdentity, quote: &[u8], outcome: Outcome) -> VmInfo {
    let actual = Evidence::parse(quote)
        .map(|e| crate::vm_expect::actual_fields(&e))
        .unwrap_or_default();
    VmInfo {
        tee: vm.tee.to_string(),
        spec_sha256: hex::encode(vm.spec_hash),
        image: vm.image.clone(),
        cmdline: vm.cmdline.clone(),
        vcpus: vm.vcpus.as_ref().map(|v| v.0),
        vcpu_type: vm.vcpus.as_ref().map(|v| v.1.clone()),
        fields: vm
            .expected_fields()
            .into_iter()
            .map(|(field, expected)| VmField {
                field,
                expected,
                actual: actual
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        outcome,
    }
}

fn parse_hex(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let bytes = hex::decode(t).with_context(|| format!("{what} {text:?} is not hex"))?;
    if bytes.is_empty() {
        bail!("{what} is empty");
    }
    Ok(bytes)
}

fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--at {text:?} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)")
        })?;
    Ok(SystemTime::from(t))
}

/// `host`, `host:port`, `[v6]:port` or an https URL → (host, port).
fn parse_target(target: &str) -> anyhow::Result<(String, u16)> {
    let rest = target.strip_prefix("https://").unwrap_or(target);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .with_context(|| format!("bad address {target:?}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("no host in {target:?}");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("bad port {p:?} in {target:?}"))?,
        None => 443,
    };
    Ok((host.to_owned(), port))
}

fn policy(args: &VerifyArgs) -> anyhow::Result<Policy> {
    let mut policy = Policy {
        allow_debug: args.allow_debug,
        allow_simulation: args.allow_simulation,
        ..Policy::default()
    };
    policy.accept_tcb(&args.accept_tcb)?;
    policy.now = args.at.as_deref().map(parse_time).transpose()?;
    policy.expected_measurement = args
        .fingerprint
        .as_deref()
        .map(|f| parse_hex("--fingerprint", f))
        .transpose()?;
    policy.expected_signer = args
        .signer
        .as_deref()
        .map(|s| parse_hex("--signer", s))
        .transpose()?;
    Ok(policy)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    // Certificates and quotes are at most 1 MiB: bounded before reading (a pipe or /dev/zero
    // fails after 1 MiB instead of filling memory).
    mse_conf::bounded::read_bounded(path, mse_conf::bounded::MAX_CERT_FILE)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// A certificate file, PEM or DER, as DER.
fn cert_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read(path)?;
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.with_context(|| format!("{} is not valid PEM", path.display()))?;
        if pem.label == "CERTIFICATE" {
            return Ok(pem.contents);
        }
    }
    bail!("{} holds no CERTIFICATE", path.display())
}

/// The collateral to judge `evidence` with. When none can be had (PCCS unreachable, SNP
/// without its VCEK), `Collateral::Unavailable`: the checks that read the evidence alone are
/// still evaluated and printed. A --collateral file that cannot be read stays an error.
fn collateral(args: &VerifyArgs, evidence: &Evidence) -> anyhow::Result<Collateral> {
    if let Some(path) = &args.collateral {
        return Ok(Collateral::from_file(path)?);
    }
    if evidence.kind() == EvidenceKind::SevSnp
        && args.allow_simulation
        && let Some(node) = &args.node
    {
        // A sim-snp node serves its mock AMD KDS (VCEK, ASK, ARK) next to its image.
        let kds = format!("{}/kds", node.trim_end_matches('/'));
        return Ok(mse_attest::fetch_snp_collateral_blocking(
            &kds,
            evidence.raw(),
            Some(mse_attest_sim::snp::SIM_SNP_PRODUCT),
        )
        .unwrap_or_else(|e| Collateral::Unavailable(e.to_string())));
    }
    if evidence.kind() == EvidenceKind::SevSnp {
        return Ok(Collateral::Unavailable(
            "SEV-SNP evidence needs --collateral with the VCEK certificate (PEM or DER)".into(),
        ));
    }
    let url = match &args.pccs_url {
        Some(url) => url.clone(),
        None => std::env::var("MSE_PCCS_URL").unwrap_or_else(|_| DEFAULT_PCCS_URL.to_owned()),
    };
    Ok(mse_attest::fetch_collateral_blocking(&url, evidence.raw())
        .unwrap_or_else(|e| Collateral::Unavailable(e.to_string())))
}

/// Whether `san` entries name `host` (exact, or a one-label wildcard).
fn names_host(san: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    san.iter().any(|name| {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => name == host,
        }
    })
}

fn cert_checks(cert: &RaTlsCert, now: SystemTime, host: Option<&str>) -> Vec<CertCheck> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let validity = match cert.check_validity(now) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e.to_string()),
    };
    let mut checks = vec![CertCheck {
        name: "certificate_validity",
        outcome: validity,
    }];
    if let Some(host) = host {
        let outcome = if names_host(&cert.san, host) {
            Outcome::Pass
        } else {
            Outcome::Fail(format!("certificate names {:?}, not {host:?}", cert.san))
        };
        checks.push(CertCheck {
            name: "certificate_names_host",
            outcome,
        });
    }
    checks
}

fn cert_info(cert: &RaTlsCert, checks: Vec<CertCheck>) -> CertInfo {
    CertInfo {
        form: cert.form.to_string(),
        subject: cert.subject.clone(),
        san: cert.san.clone(),
        not_before: rfc3339(cert.not_before).unwrap_or_default(),
        not_after: rfc3339(cert.not_after).unwrap_or_default(),
        x25519_public: cert.x25519_public().map(hex::encode),
        checks,
    }
}

fn print_human(out: &Output<'_>) -> Result<(), crate::StdoutError> {
    println!("Source:       {}", out.source);
    if let Some(c) = &out.certificate {
        println!("Certificate:  {} (SAN {})", c.subject, c.san.join(", "));
        println!("Valid:        {} .. {}", c.not_before, c.not_after);
        println!("Evidence in:  {}", c.form);
        if let Some(pk) = &c.x25519_public {
            println!("Enclave key:  {pk} (X25519)");
        }
    }
    if out.report.simulated {
        println!("Warning:      simulated TEE: no hardware protection, for local testing only");
    }
    let text = out.report.to_string();
    // The report ends with its own verdict; ours also covers the certificate checks.
    let body = text
        .rsplit_once("\nVerdict:")
        .map_or(text.as_str(), |(body, _)| body);
    println!("{body}");
    for check in out.certificate.iter().flat_map(|c| &c.checks) {
        match &check.outcome {
            Outcome::Pass => println!("  [ OK ] {}", check.name),
            Outcome::NotApplicable => println!("  [ -- ] {} (not applicable)", check.name),
            Outcome::Fail(why) => println!("  [FAIL] {}: {why}", check.name),
        }
    }
    if let Some(vm) = &out.vm {
        println!("VM TEE:       {} (launch spec {})", vm.tee, vm.spec_sha256);
        let i = &vm.image;
        println!(
            "Image:        image.json {}, kernel {}, initrd {}",
            i.image_sha256, i.kernel_sha256, i.initrd_sha256
        );
        if let Some(f) = &i.firmware_sha256 {
            println!("Firmware:     {f}");
        }
        if let (Some(n), Some(t)) = (vm.vcpus, &vm.vcpu_type) {
            println!("Measured:     {n} vCPU(s) {t}");
        }
        if let Some(c) = &vm.cmdline {
            println!("Cmdline:      {c}");
        }
        for f in &vm.fields {
            println!(
                "  [{}] {}: expected {}, actual {}",
                if f.expected == f.actual {
                    " OK "
                } else {
                    "FAIL"
                },
                f.field,
                f.expected,
                f.actual
            );
        }
    }
    println!(
        "Verdict:      {}",
        if out.trusted {
            "TRUSTED"
        } else {
            "NOT TRUSTED"
        }
    );
    Ok(())
}

/// Run `mse verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut policy = policy(args)?;
    if args.env.rebuild_env {
        let (host, _) = parse_target(
            args.target
                .as_deref()
                .context("--rebuild-env needs the app's DOMAIN")?,
        )?;
        let (line, measurement) = crate::rebuild_env::check_deployed(&host, &args.env)?;
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        if policy.expected_measurement.is_none() {
            policy.expected_measurement = measurement.map(|m| m.to_vec());
        }
    }
    let now = policy.now.unwrap_or_else(SystemTime::now);

    // A sim SNP report carries no certificates: its mock ARK is found in the collateral.
    let anchors = |evidence: &Evidence, collateral: &Collateral| -> anyhow::Result<TrustAnchors> {
        Ok(match &args.sim_root {
            Some(path) => TrustAnchors::intel().with_simulation_root(cert_der(path)?),
            None => anchors_for_collateral(evidence, collateral),
        })
    };
    // A VM enclave: its identity recomputed from its launch spec and the node's image.
    let vm = match (&args.launch_spec, &args.node) {
        (Some(path), Some(node)) => {
            let spec = mse_launch::LaunchSpec::from_json(&read(path)?)
                .with_context(|| format!("{}", path.display()))?;
            if !crate::vm_expect::applies(&spec) {
                bail!(
                    "{}: TEE {} in a {} has no VM identity to recompute",
                    path.display(),
                    spec.tee,
                    if matches!(spec.runtime, mse_launch::Runtime::Vm { .. }) {
                        "VM"
                    } else {
                        "process"
                    }
                );
            }
            Some(crate::vm_expect::recompute(node, &spec)?)
        }
        _ => None,
    };
    let (source, cert, report, host, vm_check) = if let Some(path) = &args.quote {
        let source = path.display().to_string();
        let evidence =
            Evidence::parse(&read(path)?).with_context(|| format!("evidence from {source}"))?;
        let collateral = collateral(args, &evidence)?;
        let report = verify(
            &evidence,
            &collateral,
            &anchors(&evidence, &collateral)?,
            &policy,
            None,
        );
        (source, None, report, None, None)
    } else {
        let (source, der, host) = match (&args.cert, &args.target) {
            (Some(path), _) => (path.display().to_string(), read(path)?, None),
            (None, Some(target)) => {
                let (host, port) = parse_target(target)?;
                let (to_host, to_port) = match &args.connect {
                    Some(addr) => parse_target(addr)?,
                    None => (host.clone(), port),
                };
                let der =
                    crate::attest::fetch_certificate(&to_host, to_port, &host, CONNECT_TIMEOUT)?;
                (format!("https://{host}:{port}"), der, Some(host))
            }
            (None, None) => bail!("give DOMAIN[:PORT], --cert FILE or --quote FILE"),
        };
        // The same examination as deploy's; the verdict below also covers the certificate.
        let examined = crate::attest::examine(
            der,
            &source,
            Box::new(|evidence: &Evidence| {
                let collateral = collateral(args, evidence)?;
                Ok((anchors(evidence, &collateral)?, collateral))
            }),
            &policy,
            vm.as_ref(),
        )?;
        (
            source,
            Some(examined.cert),
            examined.report,
            host,
            examined.vm,
        )
    };

    let certificate = cert
        .as_ref()
        .map(|c| cert_info(c, cert_checks(c, now, host.as_deref())));
    let cert_ok = certificate
        .iter()
        .flat_map(|c| &c.checks)
        .all(|check| !matches!(check.outcome, Outcome::Fail(_)));
    let vm_ok = !matches!(vm_check, Some(Err(_)));
    let trusted = report.trusted() && cert_ok && vm_ok;
    let vm_out = match (&vm, &cert, vm_check) {
        (Some(vm), Some(c), Some(check)) => Some(vm_info(
            vm,
            &c.quote,
            match check {
                Ok(()) => Outcome::Pass,
                Err(why) => Outcome::Fail(why),
            },
        )),
        _ => None,
    };
    let out = Output {
        source,
        trusted,
        certificate,
        report: &report,
        vm: vm_out,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("JSON encoding of the report")?
        );
    } else {
        print_human(&out)?;
    }

    if !trusted {
        // The report above shows every check; the error line names the first failure, and the
        // exit code is 1 as for every other refusal of the CLI.
        let reason = report
            .error()
            .map(|e| e.to_string())
            .or_else(|| {
                out.certificate
                    .iter()
                    .flat_map(|c| &c.checks)
                    .find_map(|c| match &c.outcome {
                        Outcome::Fail(why) => Some(format!("{}: {why}", c.name)),
                        _ => None,
                    })
            })
            .or_else(|| match out.vm.as_ref().map(|v| &v.outcome) {
                Some(Outcome::Fail(why)) => Some(why.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "a check failed".into());
        bail!("{} is NOT trusted: {reason}", out.source);
    }
    if let (Some(path), Some(cert)) = (&args.output, &cert) {
        std::fs::write(path, cert.pem())
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            println!(
                "Wrote the verified certificate to {} (use it with curl --cacert).",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("app.example.com").unwrap(),
            ("app.example.com".into(), 443)
        );
        assert_eq!(
            parse_target("app.example.com:8443").unwrap(),
            ("app.example.com".into(), 8443)
        );
        assert_eq!(
            parse_target("https://a.b:1/x?y").unwrap(),
            ("a.b".into(), 1)
        );
        assert_eq!(parse_target("[::1]:9").unwrap(), ("::1".into(), 9));
        assert_eq!(
            parse_target("a:x").unwrap_err().to_string(),
            "bad port \"x\" in \"a:x\""
        );
        assert_eq!(
            parse_target(":1").unwrap_err().to_string(),
            "no host in \":1\""
        );
    }

    #[test]
    fn san_matching() {
        let san = vec!["*.example.com".to_owned(), "127.0.0.1".to_owned()];
        assert!(names_host(&san, "app.example.com"));
        assert!(names_host(&san, "127.0.0.1"));
        assert!(!names_host(&san, "example.com"));
        assert!(!names_host(&san, "a.b.example.com"));
    }
}
