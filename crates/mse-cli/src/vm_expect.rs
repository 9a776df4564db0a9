//! What a VM enclave must have measured, recomputed by the client from the node's published
//! image (`GET /image`) and the launch spec it checked itself, before it sends anything
//! (issue 13, "per-app binding"):
//!
//! - SEV-SNP (and sim-snp): MEASUREMENT = the launch digest of the node's firmware, the image's
//!   kernel and initrd, its command line with `mse.spec=<spec hash>` and the spec's vCPUs (of
//!   the node's vCPU model); HOST_DATA = the spec hash;
//! - TDX: MRCONFIGID = the spec hash padded to 48 bytes; MRTD and RTMR0..2 = the reference
//!   values the node publishes for its image (`tdx` in `GET /image`).
//!
//! The image files are downloaded and hashed here: `image.json` must be the spec's
//! `runtime.vm.image_sha256`, and the kernel and initrd the digests it names.

use std::time::Duration;

use anyhow::{Context, bail};
use mse_attest::Evidence;
use mse_attest::vm_identity::{SnpExpected, TdxExpected, TdxReference, snp_boot_input};
use mse_launch::Digest32;
use mse_launch::image::{ImageManifest, SPEC_PLACEHOLDER};
use mse_launch::{LaunchSpec, Runtime, TeeKind};
use serde::{Deserialize, Serialize};

/// Longest wait for one image file (a kernel and an initrd are tens of MB).
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest image file accepted.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The node's `GET /image` summary (the fields this module reads).
#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(default)]
    vcpu_type: Option<String>,
    #[serde(default)]
    tdx: Option<TdxPublished>,
}

/// The TDX reference values a node publishes for its image (hex, 48 bytes each).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct TdxPublished {
    /// MRTD.
    pub mr_td: String,
    /// RTMR0, RTMR1, RTMR2.
    pub rtmrs: [String; 3],
}

impl TdxPublished {
    /// The reference values, each checked to be 48 bytes of hex.
    pub fn parse(&self) -> anyhow::Result<TdxReference> {
        let h48 = |name: &str, text: &str| -> anyhow::Result<[u8; 48]> {
            let mut out = [0u8; 48];
            hex::decode_to_slice(text, &mut out)
                .with_context(|| format!("the node's TDX {name} is not 96 hex characters"))?;
            Ok(out)
        };
        Ok(TdxReference {
            mr_td: h48("MRTD", &self.mr_td)?,
            rtmrs: [
                h48("RTMR0", &self.rtmrs[0])?,
                h48("RTMR1", &self.rtmrs[1])?,
                h48("RTMR2", &self.rtmrs[2])?,
            ],
        })
    }
}

/// The digests of the image files, as computed here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageDigests {
    /// SHA-256 of `image.json` (the spec's `runtime.vm.image_sha256`).
    pub image_sha256: String,
    /// SHA-256 of `vmlinuz`.
    pub kernel_sha256: String,
    /// SHA-256 of `initrd.img`.
    pub initrd_sha256: String,
    /// SHA-256 of the firmware (SEV-SNP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_sha256: Option<String>,
}

/// The expected hardware identity of the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// SEV-SNP or sim-snp.
    Snp(SnpExpected),
    /// TDX.
    Tdx(TdxExpected),
}

/// Everything the client recomputed for one VM enclave.
#[derive(Debug, Clone)]
pub struct VmIdentity {
    /// The spec's TEE.
    pub tee: TeeKind,
    /// The spec hash the client computed.
    pub spec_hash: [u8; 32],
    /// The image files' digests.
    pub image: ImageDigests,
    /// The kernel command line measured (SEV-SNP).
    pub cmdline: Option<String>,
    /// vCPUs and vCPU model measured (SEV-SNP).
    pub vcpus: Option<(u32, String)>,
    /// What the report must carry.
    pub expected: Expected,
}

/// What the image files are, before the expectation is built.
pub struct ImageFiles {
    /// `image.json`'s bytes.
    pub manifest: Vec<u8>,
    /// `vmlinuz`.
    pub kernel: Vec<u8>,
    /// `initrd.img`.
    pub initrd: Vec<u8>,
    /// The firmware, if the node publishes one.
    pub firmware: Option<Vec<u8>>,
    /// The node's vCPU model.
    pub vcpu_type: Option<String>,
    /// The node's TDX reference values.
    pub tdx: Option<TdxPublished>,
}

/// Downloads the node's published image (`{base}/image` and its files).
pub fn fetch_image(base: &str, with_firmware: bool) -> anyhow::Result<ImageFiles> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .http_status_as_error(false)
            .build(),
    );
    let get = |name: &str| {
        let url = format!("{}/{name}", base.trim_end_matches('/'));
        crate::rebuild_env::get(&agent, &url, MAX_FILE_BYTES)
    };
    let summary: Summary = serde_json::from_slice(&get("image")?)
        .context("the node's GET /image answer is not the expected JSON")?;
    Ok(ImageFiles {
        manifest: get("image/image.json")?,
        kernel: get("image/vmlinuz")?,
        initrd: get("image/initrd.img")?,
        firmware: if with_firmware {
            Some(get("image/firmware")?)
        } else {
            None
        },
        vcpu_type: summary.vcpu_type,
        tdx: summary.tdx,
    })
}

/// Whether a spec's evidence is checked against a recomputed VM identity (hardware VM TEEs and
/// sim-snp; the sim TEE in a VM reports the spec hash itself as its measurement).
pub fn applies(spec: &LaunchSpec) -> bool {
    matches!(spec.runtime, Runtime::Vm { .. })
        && matches!(spec.tee, TeeKind::SevSnp | TeeKind::SimSnp | TeeKind::Tdx)
}

/// The expected identity of the VM running `spec` from the node's published `files`. Every
/// file is checked against the digests that bind it (spec → image.json → kernel, initrd).
pub fn expect(spec: &LaunchSpec, files: &ImageFiles) -> anyhow::Result<VmIdentity> {
    let Runtime::Vm { image_sha256 } = spec.runtime else {
        bail!("the launch spec names no VM image");
    };
    let spec_hash = spec.hash().0;
    let image = ImageDigests {
        image_sha256: Digest32::of(&files.manifest).to_hex(),
        kernel_sha256: Digest32::of(&files.kernel).to_hex(),
        initrd_sha256: Digest32::of(&files.initrd).to_hex(),
        firmware_sha256: files.firmware.as_deref().map(|f| Digest32::of(f).to_hex()),
    };
    if image.image_sha256 != image_sha256.to_hex() {
        bail!(
            "the node publishes image.json {} but the launch spec names image {}",
            image.image_sha256,
            image_sha256
        );
    }
    let manifest =
        ImageManifest::from_bytes(&files.manifest).context("the node's published image.json")?;
    for (file, published, actual) in [
        ("vmlinuz", &manifest.kernel_sha256, &image.kernel_sha256),
        ("initrd.img", &manifest.initrd_sha256, &image.initrd_sha256),
    ] {
        if published != actual {
            bail!("the node's {file} has SHA-256 {actual}, but its image.json says {published}");
        }
    }
    let (expected, cmdline, vcpus) = match spec.tee {
        TeeKind::SevSnp | TeeKind::SimSnp => {
            let firmware = files.firmware.as_deref().context(
                "the node publishes no firmware: its SEV-SNP launch digest cannot be recomputed",
            )?;
            let vcpu_type = files
                .vcpu_type
                .as_deref()
                .context("the node does not publish its vCPU model (vcpu_type in GET /image)")?;
            let cmdline = manifest
                .cmdline
                .replace(SPEC_PLACEHOLDER, &hex::encode(spec_hash));
            let input = snp_boot_input(
                firmware,
                &files.kernel,
                &files.initrd,
                &cmdline,
                spec.vcpus,
                vcpu_type,
            )
            .context("the node's published boot")?;
            let expected = SnpExpected::for_launch(&input, &spec_hash)
                .context("recomputing the SEV-SNP launch digest")?;
            (
                Expected::Snp(expected),
                Some(cmdline),
                Some((spec.vcpus, vcpu_type.to_owned())),
            )
        }
        TeeKind::Tdx => {
            let reference = files
                .tdx
                .as_ref()
                .context("the node publishes no TDX reference values for its image")?
                .parse()?;
            (
                Expected::Tdx(TdxExpected::for_spec(&reference, &spec_hash)),
                None,
                None,
            )
        }
        other => bail!("TEE {other} has no VM identity to recompute"),
    };
    Ok(VmIdentity {
        tee: spec.tee,
        spec_hash,
        image,
        cmdline,
        vcpus,
        expected,
    })
}

impl VmIdentity {
    /// Compares the evidence (whose signatures the verifier checked) with the expectation:
    /// one line naming every field that differs.
    pub fn check(&self, evidence: &Evidence) -> Result<(), String> {
        match (&self.expected, evidence) {
            (Expected::Snp(e), Evidence::SevSnp(r)) => e.check(r).map_err(|e| e.to_string()),
            (Expected::Tdx(e), Evidence::Tdx(q)) => e.check(&q.report).map_err(|e| e.to_string()),
            (_, other) => Err(format!(
                "the launch spec's TEE is {}, but the enclave presents {} evidence",
                self.tee,
                other.kind()
            )),
        }
    }

    /// Expected (measurement, binding field name, binding value), hex, for printing.
    pub fn expected_fields(&self) -> Vec<(&'static str, String)> {
        match &self.expected {
            Expected::Snp(e) => vec![
                ("MEASUREMENT", hex::encode(e.measurement)),
                ("HOST_DATA", hex::encode(e.host_data)),
            ],
            Expected::Tdx(e) => vec![
                ("MRTD", hex::encode(e.mr_td)),
                ("RTMR0", hex::encode(e.rtmrs[0])),
                ("RTMR1", hex::encode(e.rtmrs[1])),
                ("RTMR2", hex::encode(e.rtmrs[2])),
                ("MRCONFIGID", hex::encode(e.mr_config_id)),
            ],
        }
    }
}

/// The same fields as [`VmIdentity::expected_fields`], as the evidence reports them.
pub fn actual_fields(evidence: &Evidence) -> Vec<(&'static str, String)> {
    match evidence {
        Evidence::SevSnp(r) => vec![
            ("MEASUREMENT", hex::encode(r.measurement)),
            ("HOST_DATA", hex::encode(r.host_data)),
        ],
        Evidence::Tdx(q) => vec![
            ("MRTD", hex::encode(q.report.mr_td)),
            ("RTMR0", hex::encode(q.report.rtmrs[0])),
            ("RTMR1", hex::encode(q.report.rtmrs[1])),
            ("RTMR2", hex::encode(q.report.rtmrs[2])),
            ("MRCONFIGID", hex::encode(q.report.mr_config_id)),
        ],
        Evidence::Sgx(_) => Vec::new(),
    }
}

/// Downloads the node's image (`{node}/image`) and recomputes the identity of the VM running
/// `spec`.
pub fn recompute(node: &str, spec: &LaunchSpec) -> anyhow::Result<VmIdentity> {
    let snp = matches!(spec.tee, TeeKind::SevSnp | TeeKind::SimSnp);
    let files = fetch_image(node, snp)?;
    expect(spec, &files)
}

impl VmIdentity {
    /// What was recomputed, one line each (deploy prints them before attesting).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "VM image {} (kernel {}, initrd {}{}), recomputed from the node's published files",
            self.image.image_sha256,
            self.image.kernel_sha256,
            self.image.initrd_sha256,
            self.image
                .firmware_sha256
                .as_ref()
                .map(|f| format!(", firmware {f}"))
                .unwrap_or_default()
        )];
        if let Some((vcpus, model)) = &self.vcpus {
            lines.push(format!(
                "Measured boot: {vcpus} vCPU(s) {model}, kernel command line {:?}",
                self.cmdline.as_deref().unwrap_or("")
            ));
        }
        for (field, value) in self.expected_fields() {
            lines.push(format!("Expected {field} {value}"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    //! Deploy's refusals for a sim-snp VM enclave, without a VM boot: genuine-format reports
    //! from the simulated SNP firmware with one value wrong each, in RA-TLS certificates, through
    //! the very examination and verdict `mse deploy` uses (`attest::examine`,
    //! `attest::require_trusted`). The positive path and one refusal through a TCG-booted VM:
    //! tests/cloud_e2e.rs `deploy_on_a_sim_snp_vm_node_checks_the_launch_digest`.
    use std::sync::Arc;

    use mse_attest::attester::HostProbe;
    use mse_attest::ratls::{RaTlsParams, generate};
    use mse_attest::{Policy, TrustAnchors, VerifyError};
    use mse_attest_sim::snp::{SimAmdPki, SimSnpAttester, SnpLaunch, amdsev_firmware};

    use super::*;
    use crate::attest::{Enclave, examine, require_trusted};

    const SAN: &str = "app.example.com";
    const NOW: i64 = 1_800_000_000;

    fn manifest(kernel: &[u8], initrd: &[u8]) -> Vec<u8> {
        ImageManifest {
            version: mse_launch::image::MANIFEST_VERSION,
            kernel_sha256: Digest32::of(kernel).to_hex(),
            initrd_sha256: Digest32::of(initrd).to_hex(),
            cmdline: "console=ttyS0 mse.spec={spec}".into(),
            kernel_version: "6.1.0-test".into(),
            modules: Vec::new(),
            lock_sha256: "00".repeat(32),
            packages: Vec::new(),
        }
        .to_bytes()
    }

    fn files(kernel: &[u8], initrd: &[u8]) -> ImageFiles {
        ImageFiles {
            manifest: manifest(b"kernel", b"initrd"),
            kernel: kernel.to_vec(),
            initrd: initrd.to_vec(),
            firmware: Some(amdsev_firmware()),
            vcpu_type: Some("EPYC-v4".into()),
            tdx: None,
        }
    }

    fn spec() -> LaunchSpec {
        LaunchSpec {
            tee: TeeKind::SimSnp,
            runtime: Runtime::Vm {
                image_sha256: Digest32::of(&manifest(b"kernel", b"initrd")),
            },
            vcpus: 2,
            ..LaunchSpec::example()
        }
    }

    /// An attester whose reports have one bit of MEASUREMENT (offset 0x90) flipped.
    #[derive(Debug)]
    struct Tampering(SimSnpAttester);

    impl mse_attest::attester::Attester for Tampering {
        fn kind(&self) -> TeeKind {
            self.0.kind()
        }
        fn tee_kind(&self) -> mse_attest::EvidenceKind {
            self.0.tee_kind()
        }
        fn evidence(
            &self,
            report_data: &[u8; 64],
        ) -> Result<Vec<u8>, mse_attest::attester::AttestError> {
            let mut report = self.0.evidence(report_data)?;
            report[0x90] ^= 1;
            Ok(report)
        }
        fn sealing_key(
            &self,
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, mse_attest::attester::AttestError> {
            self.0.sealing_key()
        }
    }

    /// deploy's verdict on a certificate from `pki` attesting `launch`, held against `vm`.
    fn verdict(
        pki: &Arc<SimAmdPki>,
        trusted: &SimAmdPki,
        launch: SnpLaunch,
        vm: &VmIdentity,
        tamper: bool,
    ) -> String {
        let host = tempfile::tempdir().unwrap();
        let attester =
            SimSnpAttester::from_pki(&HostProbe::with_root(host.path()), pki.clone(), launch)
                .unwrap();
        let params = RaTlsParams {
            san: SAN.into(),
            not_before: time::OffsetDateTime::from_unix_timestamp(NOW - 60).unwrap(),
            not_after: time::OffsetDateTime::from_unix_timestamp(NOW + 3600).unwrap(),
            x25519_public: [0x25; 32],
        };
        // A tampered report still sits in a certificate its key signed: only the report's own
        // signature can catch it.
        let der = if tamper {
            generate(&Tampering(attester), &params)
        } else {
            generate(&attester, &params)
        }
        .unwrap()
        .cert_der;
        let collateral = trusted.collateral();
        let anchors = TrustAnchors::intel().with_simulation_root(trusted.ark_der.clone());
        let policy = Policy {
            allow_simulation: true,
            ..Policy::default()
        };
        let examined = match examine(
            der,
            "the enclave's certificate",
            Box::new(move |_| Ok((anchors, collateral))),
            &policy,
            Some(vm),
        ) {
            Ok(e) => e,
            Err(e) => return format!("{e:#}"),
        };
        let enclave = Enclave {
            host: "127.0.0.1",
            port: 443,
            sni: SAN,
            via: "through the node's router",
            name: "the enclave of app a1",
        };
        match require_trusted(&examined, &enclave, NOW) {
            Ok(()) => "trusted".into(),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn deploy_refuses_every_wrong_sim_snp_report_with_one_line() {
        let spec = spec();
        let vm = expect(&spec, &files(b"kernel", b"initrd")).unwrap();
        let Expected::Snp(want) = vm.expected.clone() else {
            panic!("not SNP")
        };
        assert_eq!(want.host_data, spec.hash().0);
        let pki = Arc::new(SimAmdPki::from_seed(&[7; 32]).unwrap());
        let good = SnpLaunch::new(want.measurement, want.host_data);
        assert_eq!(verdict(&pki, &pki, good.clone(), &vm, false), "trusted");

        // The node boots another initrd than the one it publishes: another launch digest.
        let booted = expect(&spec, &files(b"kernel", b"initrd"))
            .map(|_| ())
            .and_then(|()| {
                let fw = amdsev_firmware();
                let cmdline = format!("console=ttyS0 mse.spec={}", spec.hash().to_hex());
                let input =
                    snp_boot_input(&fw, b"kernel", b"other initrd", &cmdline, 2, "EPYC-v4")?;
                Ok(mse_attest::snp_measure::launch_digest(&input)?)
            });
        let booted = booted.unwrap();
        assert_eq!(
            verdict(
                &pki,
                &pki,
                SnpLaunch::new(booted, want.host_data),
                &vm,
                false
            ),
            format!(
                "the enclave of app a1 is NOT trusted: not the expected VM: MEASUREMENT is {}, expected {}",
                hex::encode(booted),
                hex::encode(want.measurement)
            )
        );
        // ... or publishes an initrd that is not the one its image.json names.
        assert_eq!(
            expect(&spec, &files(b"kernel", b"other initrd"))
                .unwrap_err()
                .to_string(),
            format!(
                "the node's initrd.img has SHA-256 {}, but its image.json says {}",
                Digest32::of(b"other initrd").to_hex(),
                Digest32::of(b"initrd").to_hex()
            )
        );
        // HOST_DATA of another spec.
        assert_eq!(
            verdict(
                &pki,
                &pki,
                SnpLaunch::new(want.measurement, [0xcd; 32]),
                &vm,
                false
            ),
            format!(
                "the enclave of app a1 is NOT trusted: not the expected VM: HOST_DATA is {}, expected {}",
                "cd".repeat(32),
                hex::encode(want.host_data)
            )
        );
        // A debug policy.
        let debug = SnpLaunch {
            policy: good.policy | 1 << 19,
            ..good.clone()
        };
        assert_eq!(
            verdict(&pki, &pki, debug, &vm, false),
            format!(
                "the enclave of app a1 is NOT trusted: {}",
                VerifyError::Debug {
                    kind: mse_attest::EvidenceKind::SevSnp
                }
            )
        );
        // A report signed by another mock root than the one trusted.
        let other = Arc::new(SimAmdPki::from_seed(&[8; 32]).unwrap());
        let refused = verdict(&other, &pki, good.clone(), &vm, false);
        assert_eq!(
            refused,
            "the enclave of app a1 is NOT trusted: signature invalid: VCEK signature over the SEV-SNP report is invalid"
        );
        // A tampered byte.
        let tampered = verdict(&pki, &pki, good, &vm, true);
        assert_eq!(
            tampered,
            "the enclave of app a1 is NOT trusted: signature invalid: VCEK signature over the SEV-SNP report is invalid"
        );
    }

    #[test]
    fn tdx_identity_is_the_published_reference_and_the_padded_spec_hash() {
        let spec = LaunchSpec {
            tee: TeeKind::Tdx,
            ..spec()
        };
        let mut f = files(b"kernel", b"initrd");
        f.firmware = None;
        assert_eq!(
            expect(&spec, &f).unwrap_err().to_string(),
            "the node publishes no TDX reference values for its image"
        );
        let published = TdxPublished {
            mr_td: "11".repeat(48),
            rtmrs: ["22".repeat(48), "33".repeat(48), "44".repeat(48)],
        };
        f.tdx = Some(TdxPublished {
            rtmrs: ["22".repeat(48), "3".into(), "44".repeat(48)],
            ..published.clone()
        });
        assert_eq!(
            format!("{:#}", expect(&spec, &f).unwrap_err()),
            "the node's TDX RTMR1 is not 96 hex characters: Odd number of digits"
        );
        f.tdx = Some(published);
        let vm = expect(&spec, &f).unwrap();
        let Expected::Tdx(t) = &vm.expected else {
            panic!("not TDX")
        };
        let mut config_id = [0u8; 48];
        config_id[..32].copy_from_slice(&spec.hash().0);
        assert_eq!(
            (t.mr_td, t.rtmrs, t.mr_config_id),
            ([0x11; 48], [[0x22; 48], [0x33; 48], [0x44; 48]], config_id)
        );
        let names: Vec<&str> = vm.expected_fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["MRTD", "RTMR0", "RTMR1", "RTMR2", "MRCONFIGID"]);
        // Evidence of another TEE than the spec's.
        let host = tempfile::tempdir().unwrap();
        let snp = SimSnpAttester::with_probe(
            &HostProbe::with_root(host.path()),
            &[7; 32],
            [0; 48],
            [0; 32],
        )
        .unwrap();
        let evidence =
            Evidence::parse(&mse_attest::attester::Attester::evidence(&snp, &[0; 64]).unwrap())
                .unwrap();
        assert_eq!(
            vm.check(&evidence).unwrap_err(),
            "the launch spec's TEE is tdx, but the enclave presents SEV-SNP evidence"
        );
        // A spec naming another image than the one the node publishes.
        let other = LaunchSpec {
            runtime: Runtime::Vm {
                image_sha256: Digest32([9; 32]),
            },
            ..spec
        };
        assert_eq!(
            expect(&other, &f).unwrap_err().to_string(),
            format!(
                "the node publishes image.json {} but the launch spec names image {}",
                Digest32::of(&f.manifest).to_hex(),
                "09".repeat(32)
            )
        );
    }
}
