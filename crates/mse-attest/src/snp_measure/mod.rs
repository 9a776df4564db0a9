//! The SEV-SNP launch digest (the report's MEASUREMENT), computed offline from the firmware, the
//! vCPUs and the direct-boot kernel, initrd and command line, as AMD's firmware computes it while
//! QEMU launches the guest. Gives the same result as PyPI `sev-snp-measure` 0.0.13 `--mode snp`
//! (the differential test in crates/mse-cli/tests/measure_snp.rs holds us to that).
//!
//! The digest is a chain of SHA-384 over 112-byte PAGE_INFO records (SNP firmware ABI, "PAGE_INFO"):
//! `ld' = SHA-384(ld ‖ contents ‖ 0x70 u16 ‖ page type ‖ is_imi ‖ vmpl3..1 perms ‖ 0 ‖ gpa u64)`, one
//! per 4 KiB page: the firmware image (normal pages, contents = SHA-384 of the page), then each SEV
//! metadata section of the firmware (zero, secrets and CPUID pages, and the SEV hash-table page when
//! a kernel is booted directly), then one VMSA page per vCPU. The VMSA pages themselves come from the
//! `sev` crate's `measurement::vmsa` (its OVMF parser and top-level function are not used: they read
//! paths and index the image without bounds checks).

pub mod guid;
mod ovmf;
mod vcpu;

pub use guid::Guid;
pub use ovmf::{MetadataSection, Ovmf, SectionKind};
pub use vcpu::{VcpuType, VmmType};

use ovmf::PAGE;
use sev::measurement::vmsa::{GuestFeatures, VMMType, VMSA};
use sev::parser::ByteParser;
use sha2::{Digest, Sha256, Sha384};

/// Why a launch digest cannot be computed: each is one line naming what is wrong.
// Each variant's #[error] message is its documentation.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpMeasureError {
    #[error("firmware is {0} bytes, too small to hold an OVMF footer table")]
    FirmwareTooSmall(usize),
    #[error("firmware size {0} is not a multiple of 4096 bytes")]
    FirmwareNotPageAligned(usize),
    #[error("firmware is {0} bytes, more than the 4 GiB below which it is mapped")]
    FirmwareTooLarge(usize),
    #[error(
        "no OVMF footer table: GUID 96b582de-1fb2-45f7-baea-a366c55a082d not found 50 bytes before the end of the firmware"
    )]
    MissingFooterTable,
    #[error("OVMF footer table size {size} is out of range (18..={max})")]
    FooterTableSize { size: usize, max: usize },
    #[error("OVMF footer table entry {guid} has size {size}, out of range (18..={max})")]
    FooterEntrySize { guid: Guid, size: usize, max: usize },
    #[error("OVMF footer table has two entries with GUID {0}")]
    DuplicateEntry(Guid),
    #[error(
        "OVMF footer table has no {name} entry (GUID {guid}): not a firmware that can boot an SEV-SNP guest"
    )]
    MissingEntry { name: &'static str, guid: Guid },
    #[error("OVMF footer table entry {name} holds {len} bytes, expected at least {min}")]
    EntryTooShort {
        name: &'static str,
        len: usize,
        min: usize,
    },
    #[error("SEV metadata offset {offset} from the end is outside the {len}-byte firmware")]
    MetadataOffset { offset: u32, len: usize },
    #[error("SEV metadata signature is {} (hex), expected \"ASEV\"", hex::encode(.0))]
    MetadataSignature([u8; 4]),
    #[error("SEV metadata version is {0}, expected 1")]
    MetadataVersion(u32),
    #[error(
        "SEV metadata size {size} is out of range: {count} sections need {needed} bytes and {available} remain in the firmware"
    )]
    MetadataSize {
        size: u32,
        count: u32,
        needed: u64,
        available: usize,
    },
    #[error("SEV metadata section {index} has unknown type {kind:#x}")]
    UnknownSectionType { index: usize, kind: u32 },
    #[error(
        "SEV metadata section {index} ({kind}) at GPA {gpa:#x} has size {size:#x}, not a multiple of 4096"
    )]
    SectionSize {
        index: usize,
        kind: SectionKind,
        gpa: u32,
        size: u32,
    },
    #[error(
        "a kernel was given but the firmware has no SNP_KERNEL_HASHES section (it cannot measure a directly booted kernel)"
    )]
    NoKernelHashesSection,
    #[error(
        "SNP_KERNEL_HASHES section at GPA {gpa:#x} has size {size:#x}, expected one page (0x1000)"
    )]
    KernelHashesSectionSize { gpa: u32, size: u32 },
    #[error(
        "SEV hash table at GPA {gpa:#x} does not fit in its page (offset {offset:#x} + 176 bytes > 4096)"
    )]
    HashTableOffset { gpa: u32, offset: usize },
    #[error("an initrd or a kernel command line was given without a kernel")]
    InitrdOrCmdlineWithoutKernel,
    #[error("the number of vCPUs must be at least 1")]
    NoVcpus,
    #[error("the SEV-ES reset block gives application processors reset address 0")]
    ZeroApResetAddress,
    #[error(
        "unknown vCPU type '{0}' (one of: EPYC, EPYC-v1, EPYC-v2, EPYC-IBPB, EPYC-v3, EPYC-v4, EPYC-Rome, EPYC-Rome-v1, EPYC-Rome-v2, EPYC-Rome-v3, EPYC-Milan, EPYC-Milan-v1, EPYC-Milan-v2, EPYC-Genoa, EPYC-Genoa-v1, EPYC-Turin)"
    )]
    UnknownVcpuType(String),
    #[error("unsupported VMM type '{0}' (only qemu)")]
    UnknownVmmType(String),
    #[error("building the VMSA pages: {0}")]
    Vmsa(String),
}

/// What an SEV-SNP launch measures.
#[derive(Clone)]
pub struct SnpMeasureInput<'a> {
    /// The OVMF firmware image, as passed to QEMU (`-bios` or the code flash).
    pub ovmf: &'a [u8],
    /// Number of vCPUs (`-smp`).
    pub vcpus: u32,
    /// vCPU model (`-cpu`).
    pub vcpu_type: VcpuType,
    /// SEV_FEATURES of every VMSA (bit 0, SNPActive, is always set by SNP guests).
    pub guest_features: u64,
    /// The VMM.
    pub vmm_type: VmmType,
    /// Directly booted kernel (`-kernel`): measured through the SEV hash table.
    pub kernel: Option<&'a [u8]>,
    /// Its initrd (`-initrd`); absent = the hash of no bytes.
    pub initrd: Option<&'a [u8]>,
    /// Its command line (`-append`); absent = the empty command line.
    pub cmdline: Option<&'a str>,
}

impl<'a> SnpMeasureInput<'a> {
    /// sev-snp-measure's default `--guest-features`: SNPActive only.
    pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;

    /// A firmware-only launch with QEMU and the default guest features.
    pub fn new(ovmf: &'a [u8], vcpus: u32, vcpu_type: VcpuType) -> Self {
        SnpMeasureInput {
            ovmf,
            vcpus,
            vcpu_type,
            guest_features: Self::DEFAULT_GUEST_FEATURES,
            vmm_type: VmmType::Qemu,
            kernel: None,
            initrd: None,
            cmdline: None,
        }
    }

    /// The same launch booting `kernel` directly, with an optional initrd and command line.
    pub fn with_kernel(
        mut self,
        kernel: &'a [u8],
        initrd: Option<&'a [u8]>,
        cmdline: Option<&'a str>,
    ) -> Self {
        self.kernel = Some(kernel);
        self.initrd = initrd;
        self.cmdline = cmdline;
        self
    }
}

impl std::fmt::Debug for SnpMeasureInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnpMeasureInput")
            .field("ovmf_len", &self.ovmf.len())
            .field("vcpus", &self.vcpus)
            .field("vcpu_type", &self.vcpu_type)
            .field(
                "guest_features",
                &format_args!("{:#x}", self.guest_features),
            )
            .field("vmm_type", &self.vmm_type)
            .field("kernel_len", &self.kernel.map(<[u8]>::len))
            .field("initrd_len", &self.initrd.map(<[u8]>::len))
            .field("cmdline", &self.cmdline)
            .finish()
    }
}

/// Page types of the SNP_LAUNCH_UPDATE PAGE_INFO record.
#[derive(Clone, Copy)]
#[repr(u8)]
enum PageType {
    Normal = 1,
    Vmsa = 2,
    Zero = 3,
    Secrets = 5,
    Cpuid = 6,
}

/// The VMSA pages are recorded at GPA (u64)-1, page-aligned with bits above 51 cleared.
const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// The launch digest being built.
struct Gctx {
    ld: [u8; 48],
}

impl Gctx {
    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut h = Sha384::new();
        h.update(self.ld);
        h.update(contents);
        h.update(0x70u16.to_le_bytes());
        // page type, is_imi, vmpl3, vmpl2, vmpl1 permissions, reserved
        h.update([page_type as u8, 0, 0, 0, 0, 0]);
        h.update(gpa.to_le_bytes());
        self.ld = h.finalize().into();
    }

    fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, page) in data.chunks(PAGE).enumerate() {
            let digest: [u8; 48] = Sha384::digest(page).into();
            self.update(PageType::Normal, gpa + (i * PAGE) as u64, &digest);
        }
    }

    fn zero_pages(&mut self, gpa: u64, size: u32) {
        for off in (0..size as u64).step_by(PAGE) {
            self.update(PageType::Zero, gpa + off, &[0; 48]);
        }
    }
}

/// QEMU's SEV hash table: header and three entries (command line, initrd, kernel), padded to 16.
const HASH_TABLE_LEN: usize = 176;

fn sev_hash_table(kernel: &[u8], initrd: &[u8], cmdline: &str) -> [u8; HASH_TABLE_LEN] {
    let mut cmdline_z = Vec::with_capacity(cmdline.len() + 1);
    cmdline_z.extend_from_slice(cmdline.as_bytes());
    cmdline_z.push(0);
    let mut t = Vec::with_capacity(HASH_TABLE_LEN);
    t.extend_from_slice(guid::SEV_HASH_TABLE_HEADER.bytes());
    t.extend_from_slice(&168u16.to_le_bytes());
    for (g, data) in [
        (guid::SEV_CMDLINE_ENTRY, &cmdline_z[..]),
        (guid::SEV_INITRD_ENTRY, initrd),
        (guid::SEV_KERNEL_ENTRY, kernel),
    ] {
        t.extend_from_slice(g.bytes());
        t.extend_from_slice(&50u16.to_le_bytes());
        t.extend_from_slice(&Sha256::digest(data));
    }
    t.resize(HASH_TABLE_LEN, 0);
    let mut out = [0u8; HASH_TABLE_LEN];
    out.copy_from_slice(&t);
    out
}

/// The expected SEV-SNP launch digest (MEASUREMENT) of a guest launched with `input`.
pub fn launch_digest(input: &SnpMeasureInput<'_>) -> Result<[u8; 48], SnpMeasureError> {
    if input.vcpus == 0 {
        return Err(SnpMeasureError::NoVcpus);
    }
    if input.kernel.is_none() && (input.initrd.is_some() || input.cmdline.is_some()) {
        return Err(SnpMeasureError::InitrdOrCmdlineWithoutKernel);
    }
    let ovmf = Ovmf::parse(input.ovmf)?;
    let ap_eip = ovmf.sev_es_reset_eip()?;
    if ap_eip == 0 {
        return Err(SnpMeasureError::ZeroApResetAddress);
    }

    // The hash-table page, when a kernel is booted directly.
    let hashes_page = match input.kernel {
        None => None,
        Some(kernel) => {
            let section = ovmf
                .sections()
                .iter()
                .find(|s| s.kind == SectionKind::SnpKernelHashes)
                .ok_or(SnpMeasureError::NoKernelHashesSection)?;
            if section.size as usize != PAGE {
                return Err(SnpMeasureError::KernelHashesSectionSize {
                    gpa: section.gpa,
                    size: section.size,
                });
            }
            let gpa = ovmf.sev_hash_table_gpa()?;
            let offset = gpa as usize & (PAGE - 1);
            if offset + HASH_TABLE_LEN > PAGE {
                return Err(SnpMeasureError::HashTableOffset { gpa, offset });
            }
            let table = sev_hash_table(
                kernel,
                input.initrd.unwrap_or_default(),
                input.cmdline.unwrap_or_default(),
            );
            let mut page = vec![0u8; PAGE];
            page[offset..offset + HASH_TABLE_LEN].copy_from_slice(&table);
            Some(page)
        }
    };

    let vmsa_pages = vmsa_pages(input, ap_eip)?;

    let mut gctx = Gctx { ld: [0; 48] };
    gctx.normal_pages(ovmf.gpa(), ovmf.data());
    for s in ovmf.sections() {
        let gpa = u64::from(s.gpa);
        match s.kind {
            SectionKind::SnpSecMem | SectionKind::SvsmCaa => gctx.zero_pages(gpa, s.size),
            SectionKind::SnpSecrets => gctx.update(PageType::Secrets, gpa, &[0; 48]),
            SectionKind::Cpuid => gctx.update(PageType::Cpuid, gpa, &[0; 48]),
            SectionKind::SnpKernelHashes => match &hashes_page {
                Some(page) => gctx.normal_pages(gpa, page),
                None => gctx.zero_pages(gpa, s.size),
            },
        }
    }
    let (bsp, ap) = vmsa_pages;
    gctx.update(PageType::Vmsa, VMSA_GPA, &bsp);
    for _ in 1..input.vcpus {
        gctx.update(PageType::Vmsa, VMSA_GPA, &ap);
    }
    Ok(gctx.ld)
}

/// SHA-384 of the boot processor's and of the application processors' initial VMSA pages.
fn vmsa_pages(
    input: &SnpMeasureInput<'_>,
    ap_eip: u32,
) -> Result<([u8; 48], [u8; 48]), SnpMeasureError> {
    let features = GuestFeatures::from_bytes(&input.guest_features.to_le_bytes())
        .map_err(|e| SnpMeasureError::Vmsa(e.to_string()))?;
    let vmm = match input.vmm_type {
        VmmType::Qemu => VMMType::QEMU,
    };
    let vmsa = VMSA::new(
        u64::from(ap_eip),
        input.vcpu_type.cpu_type(),
        vmm,
        Some(u64::from(input.vcpus)),
        features,
    );
    let pages = vmsa
        .pages(2)
        .map_err(|e| SnpMeasureError::Vmsa(e.to_string()))?;
    match &pages[..] {
        [bsp, ap] if bsp.len() == PAGE && ap.len() == PAGE => {
            Ok((Sha384::digest(bsp).into(), Sha384::digest(ap).into()))
        }
        _ => Err(SnpMeasureError::Vmsa(format!(
            "expected two 4096-byte pages, got {}",
            pages.len()
        ))),
    }
}

#[cfg(test)]
mod tests;
