//! Differential test of `mse measure snp` against PyPI `sev-snp-measure` 0.0.13 (pinned in
//! tests/requirements.txt, installed in the test virtualenv named by `MSE_TEST_VENV`): both tools
//! run on the same files and must print the same 96 hex characters.
//!
//! Inputs: Debian's OVMF (package `ovmf`: OVMF.fd and OVMF_CODE.fd, which carry SEV metadata) with
//! 1..16 vCPUs over every vCPU type, and synthetic firmware images in the OVMF layout (footer GUID
//! table at the end, SEV metadata with an SNP_KERNEL_HASHES section, the SEV hash-table entry)
//! with random kernels, initrds and command lines from fixed seeds. Nothing is skipped: a missing
//! virtualenv, tool or firmware fails the test and says what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every vCPU type sev-snp-measure 0.0.13 accepts.
const VCPU_TYPES: [&str; 16] = [
    "EPYC",
    "EPYC-v1",
    "EPYC-v2",
    "EPYC-IBPB",
    "EPYC-v3",
    "EPYC-v4",
    "EPYC-Rome",
    "EPYC-Rome-v1",
    "EPYC-Rome-v2",
    "EPYC-Rome-v3",
    "EPYC-Milan",
    "EPYC-Milan-v1",
    "EPYC-Milan-v2",
    "EPYC-Genoa",
    "EPYC-Genoa-v1",
    "EPYC-Turin",
];

const DEBIAN_OVMF: [&str; 2] = ["/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF_CODE.fd"];

fn sev_snp_measure() -> PathBuf {
    let venv = std::env::var_os("MSE_TEST_VENV").map(PathBuf::from).expect(
        "MSE_TEST_VENV must name the pinned test virtualenv with sev-snp-measure 0.0.13 \
         (the Makefile sets it; `make venv` builds it)",
    );
    let tool = venv.join("bin/sev-snp-measure");
    assert!(
        tool.is_file(),
        "{} missing: install tests/requirements.txt into the test virtualenv (`make venv`)",
        tool.display()
    );
    let out = Command::new(&tool).arg("--version").output().unwrap();
    let version =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        version.contains("0.0.13"),
        "{} is not version 0.0.13: {version}",
        tool.display()
    );
    tool
}

fn debian_ovmf(path: &str) -> &Path {
    let p = Path::new(path);
    assert!(
        p.is_file(),
        "{path} missing: install the Debian package ovmf (`make apt` does)"
    );
    p
}

/// One launch: the arguments both tools share.
#[derive(Debug, Clone)]
struct Case {
    ovmf: PathBuf,
    vcpus: u32,
    vcpu_type: &'static str,
    guest_features: Option<u64>,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
}

impl Case {
    fn new(ovmf: &Path, vcpus: u32, vcpu_type: &'static str) -> Self {
        Case {
            ovmf: ovmf.to_path_buf(),
            vcpus,
            vcpu_type,
            guest_features: None,
            kernel: None,
            initrd: None,
            append: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--ovmf={}", self.ovmf.display()),
            format!("--vcpus={}", self.vcpus),
            format!("--vcpu-type={}", self.vcpu_type),
        ];
        if let Some(f) = self.guest_features {
            a.push(format!("--guest-features={f:#x}"));
        }
        if let Some(k) = &self.kernel {
            a.push(format!("--kernel={}", k.display()));
        }
        if let Some(i) = &self.initrd {
            a.push(format!("--initrd={}", i.display()));
        }
        if let Some(c) = &self.append {
            // `--append=VALUE`: a command line starting with '-' is still a value for both tools.
            a.push(format!("--append={c}"));
        }
        a
    }
}

fn stdout_line(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    let line = s.trim_end_matches('\n');
    assert!(!line.contains('\n'), "{what}: more than one line: {s:?}");
    line.to_string()
}

fn mse(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mse"))
        .args(["measure", "snp"])
        .args(args)
        .output()
        .unwrap()
}

/// Runs both tools on `case`; panics (with the case) unless both print the same digest.
fn compare(tool: &Path, case: &Case) -> String {
    let args = case.args();
    let ours = stdout_line("mse measure snp", &mse(&args));
    let theirs = stdout_line(
        "sev-snp-measure",
        &Command::new(tool)
            .arg("--mode=snp")
            .args(&args)
            .output()
            .unwrap(),
    );
    assert_eq!(ours.len(), 96, "{case:?}: {ours}");
    assert!(
        ours.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(ours, theirs, "digests differ for {case:?}");
    ours
}

#[test]
fn debian_ovmf_digests_equal_sev_snp_measure() {
    let tool = sev_snp_measure();
    let mut digests = std::collections::HashSet::new();
    let mut cases = 0;
    for (f, path) in DEBIAN_OVMF.iter().enumerate() {
        let ovmf = debian_ovmf(path);
        for vcpus in 1..=16u32 {
            let mut case = Case::new(ovmf, vcpus, VCPU_TYPES[(vcpus as usize - 1 + 5 * f) % 16]);
            // The second image also varies the guest features (default 0x1 on the first).
            if f == 1 {
                case.guest_features = Some([0x1, 0x21, 0x5, 0x41][vcpus as usize % 4]);
            }
            digests.insert(compare(&tool, &case));
            cases += 1;
        }
    }
    assert_eq!(cases, 32);
    // Every case measured something different (vCPU count, type, image all count).
    assert_eq!(digests.len(), 32);
}

/// Appends a footer table entry: data ‖ u16 size ‖ GUID.
fn entry(table: &mut Vec<u8>, data: &[u8], guid: &[u8; 16]) {
    table.extend_from_slice(data);
    table.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
    table.extend_from_slice(guid);
}

/// A GUID's on-disk bytes from its canonical text.
fn guid(s: &str) -> [u8; 16] {
    *mse_attest::snp_measure::Guid::parse(s).bytes()
}

/// A random firmware image in the OVMF layout of an AmdSev build: random code pages, the SEV
/// metadata somewhere in the image (SNP_SEC_MEM, SNP_SECRETS, CPUID, SNP_KERNEL_HASHES and
/// sometimes SVSM_CAA sections, in random order), and the footer table with the SEV hash table,
/// SEV-ES reset block and metadata entries among unrelated ones.
fn synthetic_firmware(rng: &mut StdRng) -> Vec<u8> {
    let pages = rng.gen_range(4..48usize);
    let len = pages * 4096;
    let mut img = vec![0u8; len];
    rng.fill(&mut img[..]);

    let mut gpa = 0x0080_0000u32 + rng.gen_range(0..16u32) * 0x1_0000;
    let mut alloc = |pages: u32| {
        let g = gpa;
        gpa += pages * 0x1000;
        (g, pages * 0x1000)
    };
    // (gpa, type, size)
    let mut sections = Vec::new();
    let (g, size) = alloc(rng.gen_range(1..12));
    sections.push((g, 1u32, size));
    let (g, size) = alloc(1);
    sections.push((g, 2, size));
    let (g, size) = alloc(1);
    sections.push((g, 3, size));
    let (hashes_page, size) = alloc(1);
    sections.push((hashes_page, 0x10, size));
    let (g, size) = alloc(rng.gen_range(1..20));
    sections.push((g, 1, size));
    if rng.gen_bool(0.3) {
        let (g, size) = alloc(1);
        sections.push((g, 4, size));
    }
    // Random order, as the metadata lists them in whatever order the build put them.
    for i in (1..sections.len()).rev() {
        let j = rng.gen_range(0..=i);
        sections.swap(i, j);
    }
    let mut meta = Vec::new();
    meta.extend_from_slice(b"ASEV");
    meta.extend_from_slice(&((16 + 12 * sections.len()) as u32).to_le_bytes());
    meta.extend_from_slice(&1u32.to_le_bytes());
    meta.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for (g, kind, size) in &sections {
        for v in [g, size, kind] {
            meta.extend_from_slice(&v.to_le_bytes());
        }
    }
    // The metadata lies in the last 3 pages, clear of the footer table (< 300 bytes) at the end.
    let meta_at = len - rng.gen_range(400..3 * 4096);
    img[meta_at..meta_at + meta.len()].copy_from_slice(&meta);

    // The hash table sits anywhere in its page where 176 bytes fit (QEMU writes it there).
    let table_offset = rng.gen_range(0..=(4096 - 176u32));
    let mut entries: Vec<(Vec<u8>, [u8; 16])> = Vec::new();
    let mut rv = (hashes_page + table_offset).to_le_bytes().to_vec();
    rv.extend_from_slice(&0x400u32.to_le_bytes());
    entries.push((rv, guid("7255371f-3a3b-4b04-927b-1da6efa8d454")));
    let eip = 0xffff_0000u32 + rng.gen_range(1..0xf000u32);
    entries.push((
        eip.to_le_bytes().to_vec(),
        guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e"),
    ));
    entries.push((
        ((len - meta_at) as u32).to_le_bytes().to_vec(),
        guid("dc886566-984a-4798-a75e-5585a7bf67cc"),
    ));
    for _ in 0..rng.gen_range(0..3) {
        let mut data = vec![0u8; rng.gen_range(0..24)];
        rng.fill(&mut data[..]);
        entries.push((data, rng.r#gen()));
    }
    for i in (1..entries.len()).rev() {
        let j = rng.gen_range(0..=i);
        entries.swap(i, j);
    }
    let mut table = Vec::new();
    for (data, g) in &entries {
        entry(&mut table, data, g);
    }
    entry(
        &mut table,
        &[],
        &guid("96b582de-1fb2-45f7-baea-a366c55a082d"),
    );
    let n = table.len();
    table[n - 18..n - 16].copy_from_slice(&(n as u16).to_le_bytes());
    img[len - 32 - n..len - 32].copy_from_slice(&table);
    img
}

/// A random kernel command line: printable ASCII with spaces (also leading and trailing ones),
/// sometimes a leading '-', sometimes non-ASCII, always carrying an `mse.spec=` hash.
fn random_cmdline(rng: &mut StdRng) -> String {
    let mut s = String::new();
    if rng.gen_bool(0.2) {
        s.push(' ');
    }
    if rng.gen_bool(0.1) {
        s.push('-');
    }
    for _ in 0..rng.gen_range(0..6) {
        let word: String = (0..rng.gen_range(1..20))
            .map(|_| rng.gen_range(0x21u8..0x7f) as char)
            .collect();
        s.push_str(&word);
        s.push(' ');
    }
    if rng.gen_bool(0.2) {
        s.push_str("é→✓ ");
    }
    let spec: [u8; 32] = rng.r#gen();
    s.push_str(&format!("mse.spec={}", hex::encode(spec)));
    if rng.gen_bool(0.2) {
        s.push_str("  ");
    }
    s
}

#[test]
fn synthetic_kernel_hashes_firmware_digests_equal_sev_snp_measure() {
    let tool = sev_snp_measure();
    let dir = tempfile::tempdir().unwrap();
    let mut digests = std::collections::HashSet::new();
    let mut with_kernel = 0;
    for seed in 0..30u64 {
        let mut rng = StdRng::seed_from_u64(0x5e5_0000 + seed);
        let fw = dir.path().join(format!("fw{seed}.fd"));
        std::fs::write(&fw, synthetic_firmware(&mut rng)).unwrap();
        let mut case = Case::new(
            &fw,
            rng.gen_range(1..=16),
            VCPU_TYPES[rng.gen_range(0..VCPU_TYPES.len())],
        );
        if rng.gen_bool(0.5) {
            case.guest_features = Some(rng.r#gen::<u64>() | 1);
        }
        // Seeds 0..25 boot a kernel; the others measure the empty hash page as zero pages.
        if seed < 25 {
            let kernel = dir.path().join(format!("kernel{seed}"));
            let mut k = vec![0u8; rng.gen_range(0..300_000)];
            rng.fill(&mut k[..]);
            std::fs::write(&kernel, &k).unwrap();
            case.kernel = Some(kernel);
            match rng.gen_range(0..4) {
                0 => {}
                1 => {
                    let initrd = dir.path().join(format!("initrd{seed}"));
                    std::fs::write(&initrd, b"").unwrap();
                    case.initrd = Some(initrd);
                }
                _ => {
                    let initrd = dir.path().join(format!("initrd{seed}"));
                    let mut i = vec![0u8; rng.gen_range(1..500_000)];
                    rng.fill(&mut i[..]);
                    std::fs::write(&initrd, &i).unwrap();
                    case.initrd = Some(initrd);
                }
            }
            case.append = match rng.gen_range(0..6) {
                0 => None,
                1 => Some(String::new()),
                _ => Some(random_cmdline(&mut rng)),
            };
            with_kernel += 1;
        }
        digests.insert(compare(&tool, &case));
    }
    assert_eq!(with_kernel, 25);
    assert_eq!(digests.len(), 30);
}

#[test]
fn refusals_are_one_line_errors() {
    // Debian's 4M code image has no SEV metadata: QEMU cannot launch it as an SNP guest, so mse
    // refuses it (sev-snp-measure 0.0.13 computes a digest without the metadata pages).
    let no_meta = debian_ovmf("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let out = mse(&Case::new(no_meta, 1, "EPYC-v4").args());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: cannot measure /usr/share/OVMF/OVMF_CODE_4M.fd: OVMF footer table has no \
         OVMF_SEV_METADATA entry (GUID dc886566-984a-4798-a75e-5585a7bf67cc): not a firmware \
         that can boot an SEV-SNP guest\n"
    );
    // Debian's images have no SNP_KERNEL_HASHES section: a kernel cannot be measured.
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"kernel").unwrap();
    let mut case = Case::new(debian_ovmf(DEBIAN_OVMF[0]), 1, "EPYC-v4");
    case.kernel = Some(kernel);
    let out = mse(&case.args());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: cannot measure /usr/share/ovmf/OVMF.fd: a kernel was given but the firmware has \
         no SNP_KERNEL_HASHES section (it cannot measure a directly booted kernel)\n"
    );
    // A truncated image, an unknown vCPU type, another VMM.
    let cut = dir.path().join("cut.fd");
    let full = std::fs::read(DEBIAN_OVMF[0]).unwrap();
    std::fs::write(&cut, &full[..full.len() - 4096]).unwrap();
    let out = mse(&Case::new(&cut, 1, "EPYC").args());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error: cannot measure {}: no OVMF footer table: GUID \
             96b582de-1fb2-45f7-baea-a366c55a082d not found 50 bytes before the end of the \
             firmware\n",
            cut.display()
        )
    );
    let mut args = Case::new(&cut, 1, "EPYC").args();
    args[2] = "--vcpu-type=epyc".into();
    let out = mse(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("Error: unknown vCPU type 'epyc' (one of: EPYC, EPYC-v1,"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    args[2] = "--vcpu-type=EPYC".into();
    args.push("--vmm-type=ec2".into());
    let out = mse(&args);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: unsupported VMM type 'ec2' (only qemu)\n"
    );
}

#[test]
fn json_output_names_the_inputs() {
    let ovmf = debian_ovmf(DEBIAN_OVMF[0]);
    let hex_out = mse(&Case::new(ovmf, 2, "EPYC-Milan").args());
    let digest = stdout_line("mse measure snp", &hex_out);
    let mut args = Case::new(ovmf, 2, "EPYC-Milan").args();
    args.push("--json".into());
    let out = mse(&args);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tee"], "sev-snp");
    assert_eq!(v["launch_digest"], digest.as_str());
    assert_eq!(v["vcpus"], 2);
    assert_eq!(v["vcpu_type"], "EPYC-Milan");
    assert_eq!(v["guest_features"], "0x1");
    assert_eq!(v["vmm_type"], "qemu");
    assert_eq!(v["ovmf"], DEBIAN_OVMF[0]);
    assert_eq!(v["ovmf_sha256"].as_str().unwrap().len(), 64);
    assert!(v["kernel_sha256"].is_null());
}
