//! Unit tests: a synthetic firmware in the OVMF layout, golden digests from sev-snp-measure 0.0.13,
//! and one exact message per kind of malformed firmware. (The differential test against
//! sev-snp-measure on many inputs is crates/mse-cli/tests/measure_snp.rs.)
use super::*;

/// A synthetic OVMF image: `pages` pages of a fixed pattern, SEV metadata `meta_from_end` bytes
/// before the end, and a footer table holding the hash-table, SEV-ES reset block and metadata
/// entries.
struct Fw {
    pages: usize,
    eip: u32,
    hash_table_gpa: u32,
    meta_from_end: usize,
    sections: Vec<(u32, u32, u32)>,
}

impl Default for Fw {
    fn default() -> Self {
        Fw {
            pages: 8,
            eip: 0xffff_e004,
            hash_table_gpa: 0x0080_5c00,
            meta_from_end: 0x1000,
            sections: vec![
                (0x0080_0000, 0x3000, 1),
                (0x0080_3000, 0x1000, 2),
                (0x0080_4000, 0x1000, 3),
                (0x0080_5000, 0x1000, 0x10),
                (0x0080_6000, 0x2000, 1),
            ],
        }
    }
}

fn entry(out: &mut Vec<u8>, data: &[u8], guid: Guid) {
    out.extend_from_slice(data);
    out.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
    out.extend_from_slice(guid.bytes());
}

impl Fw {
    fn build(&self) -> Vec<u8> {
        let len = self.pages * 4096;
        let mut img: Vec<u8> = (0..len).map(|i| ((i * 7) ^ (i >> 9)) as u8).collect();
        let mut meta = Vec::new();
        meta.extend_from_slice(b"ASEV");
        meta.extend_from_slice(&((16 + 12 * self.sections.len()) as u32).to_le_bytes());
        meta.extend_from_slice(&1u32.to_le_bytes());
        meta.extend_from_slice(&(self.sections.len() as u32).to_le_bytes());
        for (gpa, size, kind) in &self.sections {
            for v in [gpa, size, kind] {
                meta.extend_from_slice(&v.to_le_bytes());
            }
        }
        let at = len - self.meta_from_end;
        img[at..at + meta.len()].copy_from_slice(&meta);
        let mut table = Vec::new();
        let mut rv = self.hash_table_gpa.to_le_bytes().to_vec();
        rv.extend_from_slice(&0x400u32.to_le_bytes());
        entry(&mut table, &rv, guid::SEV_HASH_TABLE_RV);
        entry(
            &mut table,
            &self.eip.to_le_bytes(),
            guid::SEV_ES_RESET_BLOCK,
        );
        entry(
            &mut table,
            &(self.meta_from_end as u32).to_le_bytes(),
            guid::OVMF_SEV_METADATA,
        );
        entry(&mut table, &[], guid::OVMF_TABLE_FOOTER);
        let n = table.len();
        // The footer entry's size is that of the whole table.
        table[n - 18..n - 16].copy_from_slice(&(n as u16).to_le_bytes());
        let end = len - 32;
        img[end - n..end].copy_from_slice(&table);
        img
    }
}

fn digest_hex(input: &SnpMeasureInput<'_>) -> String {
    hex::encode(launch_digest(input).unwrap())
}

fn err(input: &SnpMeasureInput<'_>) -> String {
    launch_digest(input).unwrap_err().to_string()
}

#[test]
fn parses_the_synthetic_layout() {
    let img = Fw::default().build();
    let ovmf = Ovmf::parse(&img).unwrap();
    assert_eq!(ovmf.gpa(), 0x1_0000_0000 - 8 * 4096);
    assert_eq!(ovmf.sev_es_reset_eip().unwrap(), 0xffff_e004);
    assert_eq!(ovmf.sev_hash_table_gpa().unwrap(), 0x0080_5c00);
    assert_eq!(ovmf.sections().len(), 5);
    assert_eq!(
        ovmf.sections()[3],
        MetadataSection {
            gpa: 0x0080_5000,
            size: 0x1000,
            kind: SectionKind::SnpKernelHashes
        }
    );
}

#[test]
fn firmware_digest_equals_sev_snp_measure() {
    let img = Fw::default().build();
    let mut input = SnpMeasureInput::new(&img, 4, VcpuType::EpycMilan);
    assert_eq!(digest_hex(&input), GOLDEN_FIRMWARE_ONLY);
    input.guest_features = 0x21;
    assert_eq!(digest_hex(&input), GOLDEN_FEATURES_21);
}

#[test]
fn kernel_hashes_digest_equals_sev_snp_measure() {
    let img = Fw::default().build();
    let kernel = b"not really a kernel".repeat(1000);
    let initrd = b"initrd".repeat(77);
    let input = SnpMeasureInput::new(&img, 2, VcpuType::EpycGenoa).with_kernel(
        &kernel,
        Some(&initrd),
        Some("console=ttyS0 mse.spec=00ff"),
    );
    assert_eq!(digest_hex(&input), GOLDEN_KERNEL);
    // No initrd and no command line are hashed as empty (the command line as one NUL byte).
    let bare = SnpMeasureInput::new(&img, 2, VcpuType::EpycGenoa).with_kernel(&kernel, None, None);
    let empty = SnpMeasureInput::new(&img, 2, VcpuType::EpycGenoa).with_kernel(
        &kernel,
        Some(b""),
        Some(""),
    );
    assert_eq!(digest_hex(&bare), digest_hex(&empty));
    assert_ne!(digest_hex(&bare), GOLDEN_KERNEL);
}

#[test]
fn every_input_changes_the_digest() {
    let img = Fw::default().build();
    let base =
        SnpMeasureInput::new(&img, 2, VcpuType::EpycV4).with_kernel(b"k", Some(b"i"), Some("c"));
    let d0 = digest_hex(&base);
    let mut other = img.clone();
    other[100] ^= 1;
    let variants = [
        SnpMeasureInput {
            ovmf: &other,
            ..base.clone()
        },
        SnpMeasureInput {
            vcpus: 3,
            ..base.clone()
        },
        SnpMeasureInput {
            vcpu_type: VcpuType::EpycRome,
            ..base.clone()
        },
        SnpMeasureInput {
            guest_features: 0x3,
            ..base.clone()
        },
        SnpMeasureInput {
            kernel: Some(b"K"),
            ..base.clone()
        },
        SnpMeasureInput {
            initrd: Some(b"I"),
            ..base.clone()
        },
        SnpMeasureInput {
            cmdline: Some("c "),
            ..base.clone()
        },
    ];
    for v in &variants {
        assert_ne!(digest_hex(v), d0, "{v:?}");
    }
}

// Golden values: sev-snp-measure 0.0.13 `--mode snp` on the images Fw::default().build() writes.
const GOLDEN_FIRMWARE_ONLY: &str = "f50036a02926d820cf65b47698072a186b5ee9dc90f7284e4a489e19bf51ce51a6cc856a06a001c94c0231f2f55b477f";
const GOLDEN_FEATURES_21: &str = "a701b18558f95a5001b603057a97fd6daafc3aeea4982f1ac5230ca2a6e5dd61f5537f29523550f5b90e47389009f553";
const GOLDEN_KERNEL: &str = "9e121ff7b40093b3756e7ea2b55bb0de20c8627c76c33e5591ab635cecefbbf927291786b64421893a556be9c98b164a";

#[test]
fn malformed_firmware_is_a_one_line_error() {
    let good = Fw::default().build();
    let check = |img: &[u8], want: &str| {
        let got = err(&SnpMeasureInput::new(img, 1, VcpuType::Epyc));
        assert_eq!(got, want);
        assert!(!got.contains('\n'));
    };
    // `good` with `bytes` written at `at`.
    let patched = |at: usize, bytes: &[u8], want: &str| {
        let mut img = good.clone();
        img[at..at + bytes.len()].copy_from_slice(bytes);
        check(&img, want);
    };
    check(
        &[],
        "firmware is 0 bytes, too small to hold an OVMF footer table",
    );
    check(
        &good[..4095],
        "firmware size 4095 is not a multiple of 4096 bytes",
    );
    check(
        &vec![0u8; 4096],
        "no OVMF footer table: GUID 96b582de-1fb2-45f7-baea-a366c55a082d not found 50 bytes before the end of the firmware",
    );
    let end = good.len() - 32;

    // Footer table size larger than the image.
    patched(
        end - 18,
        &0xffffu16.to_le_bytes(),
        "OVMF footer table size 65535 is out of range (18..=32736)",
    );
    patched(
        end - 18,
        &3u16.to_le_bytes(),
        "OVMF footer table size 3 is out of range (18..=32736)",
    );

    // The last entry (metadata) claims more bytes than the table holds.
    patched(
        end - 36,
        &500u16.to_le_bytes(),
        "OVMF footer table entry dc886566-984a-4798-a75e-5585a7bf67cc has size 500, out of range (18..=70)",
    );
    patched(
        end - 36,
        &2u16.to_le_bytes(),
        "OVMF footer table entry dc886566-984a-4798-a75e-5585a7bf67cc has size 2, out of range (18..=70)",
    );
    // The metadata entry's GUID replaced by the reset block's: a duplicate.
    patched(
        end - 34,
        guid::SEV_ES_RESET_BLOCK.bytes(),
        "OVMF footer table has two entries with GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e",
    );
    // ... replaced by an unknown GUID: the metadata is missing.
    patched(
        end - 34,
        &[good[end - 34] ^ 0xff],
        "OVMF footer table has no OVMF_SEV_METADATA entry (GUID dc886566-984a-4798-a75e-5585a7bf67cc): not a firmware that can boot an SEV-SNP guest",
    );
    // A bad GUID of the footer itself.
    patched(
        end - 1,
        &[good[end - 1] ^ 0x01],
        "no OVMF footer table: GUID 96b582de-1fb2-45f7-baea-a366c55a082d not found 50 bytes before the end of the firmware",
    );

    // Metadata offset beyond the image, then too close to its end.
    patched(
        end - 40,
        &0x10_0000u32.to_le_bytes(),
        "SEV metadata offset 1048576 from the end is outside the 32768-byte firmware",
    );
    patched(
        end - 40,
        &8u32.to_le_bytes(),
        "SEV metadata offset 8 from the end is outside the 32768-byte firmware",
    );

    let meta = good.len() - 0x1000;
    patched(
        meta,
        b"B",
        "SEV metadata signature is 42534556 (hex), expected \"ASEV\"",
    );
    patched(meta + 8, &[2], "SEV metadata version is 2, expected 1");
    patched(
        meta + 12,
        &0xffff_ffffu32.to_le_bytes(),
        "SEV metadata size 76 is out of range: 4294967295 sections need 51539607556 bytes and 4096 remain in the firmware",
    );
    patched(
        meta + 4,
        &0x2000u32.to_le_bytes(),
        "SEV metadata size 8192 is out of range: 5 sections need 76 bytes and 4096 remain in the firmware",
    );
    // Section 1 gets type 7.
    patched(
        meta + 16 + 12 + 8,
        &[7],
        "SEV metadata section 1 has unknown type 0x7",
    );
    // Section 0 gets size 0x1234.
    patched(
        meta + 16 + 4,
        &0x1234u32.to_le_bytes(),
        "SEV metadata section 0 (SNP_SEC_MEM) at GPA 0x800000 has size 0x1234, not a multiple of 4096",
    );

    // No SEV-ES reset block entry, or a zero one.
    let fw = Fw {
        eip: 0,
        ..Fw::default()
    };
    check(
        &fw.build(),
        "the SEV-ES reset block gives application processors reset address 0",
    );
}

/// The error measuring firmware `fw` with a one-byte kernel.
fn kernel_err(fw: &Fw) -> String {
    err(&SnpMeasureInput::new(&fw.build(), 1, VcpuType::Epyc).with_kernel(b"k", None, None))
}

#[test]
fn bad_launch_parameters_are_errors() {
    let img = Fw::default().build();
    let input = SnpMeasureInput::new(&img, 0, VcpuType::Epyc);
    assert_eq!(err(&input), "the number of vCPUs must be at least 1");
    let input = SnpMeasureInput {
        initrd: Some(b"i"),
        ..SnpMeasureInput::new(&img, 1, VcpuType::Epyc)
    };
    assert_eq!(
        err(&input),
        "an initrd or a kernel command line was given without a kernel"
    );
    let input = SnpMeasureInput {
        cmdline: Some(""),
        ..SnpMeasureInput::new(&img, 1, VcpuType::Epyc)
    };
    assert_eq!(
        err(&input),
        "an initrd or a kernel command line was given without a kernel"
    );

    let no_hashes = Fw {
        sections: vec![(0x0080_0000, 0x3000, 1), (0x0080_3000, 0x1000, 2)],
        ..Fw::default()
    };
    assert_eq!(
        kernel_err(&no_hashes),
        "a kernel was given but the firmware has no SNP_KERNEL_HASHES section (it cannot measure a directly booted kernel)"
    );
    // Without a kernel the same firmware is fine.
    launch_digest(&SnpMeasureInput::new(&no_hashes.build(), 1, VcpuType::Epyc)).unwrap();

    let two_pages = Fw {
        sections: vec![(0x0080_5000, 0x2000, 0x10)],
        ..Fw::default()
    };
    assert_eq!(
        kernel_err(&two_pages),
        "SNP_KERNEL_HASHES section at GPA 0x805000 has size 0x2000, expected one page (0x1000)"
    );
    let late_table = Fw {
        hash_table_gpa: 0x0080_5f60,
        ..Fw::default()
    };
    assert_eq!(
        kernel_err(&late_table),
        "SEV hash table at GPA 0x805f60 does not fit in its page (offset 0xf60 + 176 bytes > 4096)"
    );
    // 0xf50 + 176 = 4096 exactly: fits.
    let last_fit = Fw {
        hash_table_gpa: 0x0080_5f50,
        ..Fw::default()
    }
    .build();
    launch_digest(
        &SnpMeasureInput::new(&last_fit, 1, VcpuType::Epyc).with_kernel(b"k", None, None),
    )
    .unwrap();
}

/// Writes the golden images for sev-snp-measure (run with `--ignored` and the env var set).
#[test]
#[ignore]
fn write_golden_images() {
    let dir = std::env::var("MSE_SNP_GOLDEN_DIR").unwrap();
    std::fs::write(format!("{dir}/fw.fd"), Fw::default().build()).unwrap();
    std::fs::write(format!("{dir}/kernel"), b"not really a kernel".repeat(1000)).unwrap();
    std::fs::write(format!("{dir}/initrd"), b"initrd".repeat(77)).unwrap();
}
