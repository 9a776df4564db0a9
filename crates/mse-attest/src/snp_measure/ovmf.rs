//! Parser for the parts of an OVMF image that an SEV-SNP launch measures: the footer GUID table at
//! the end of the image (QEMU's "OVMF table") and the SEV metadata section list it points to.
//!
//! The image is untrusted input: every offset and size is checked, and anything out of range is a
//! [`SnpMeasureError`], never a panic.
//!
//! Layout, from the end of the image backwards: 32 bytes (the reset vector), then the footer entry
//! (`u16` size of the whole table, footer GUID), then the entries, each `data ‖ u16 size ‖ GUID`
//! where `size` counts the 18-byte header and the data. The SEV metadata entry holds a `u32` offset
//! from the end of the image of a header `"ASEV" ‖ u32 size ‖ u32 version(1) ‖ u32 count`
//! followed by `count` sections of `u32 gpa ‖ u32 size ‖ u32 type`.

use super::SnpMeasureError;
use super::guid::{
    Guid, OVMF_SEV_METADATA, OVMF_TABLE_FOOTER, SEV_ES_RESET_BLOCK, SEV_HASH_TABLE_RV,
};

/// Size of a footer table entry header: `u16` size and a GUID.
const ENTRY_HEADER: usize = 18;
/// The footer table ends this many bytes before the end of the image.
const TRAILER: usize = 32;
/// `"ASEV" ‖ size ‖ version ‖ count`.
const METADATA_HEADER: usize = 16;
/// `gpa ‖ size ‖ type`.
const METADATA_SECTION: usize = 12;
/// The firmware is mapped just below this guest-physical address.
const FOUR_GIB: u64 = 1 << 32;
pub(crate) const PAGE: usize = 4096;

/// Kinds of SEV metadata sections (edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// Pre-validated memory the firmware uses early: measured as zero pages.
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The CPUID page.
    Cpuid,
    /// The SVSM calling-area page: measured as zero pages.
    SvsmCaa,
    /// The page QEMU fills with the SEV hash table (kernel, initrd, command line).
    SnpKernelHashes,
}

impl SectionKind {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            _ => return None,
        })
    }

    /// The name used by edk2 and sev-snp-measure.
    pub fn name(self) -> &'static str {
        match self {
            Self::SnpSecMem => "SNP_SEC_MEM",
            Self::SnpSecrets => "SNP_SECRETS",
            Self::Cpuid => "CPUID",
            Self::SvsmCaa => "SVSM_CAA",
            Self::SnpKernelHashes => "SNP_KERNEL_HASHES",
        }
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One SEV metadata section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSection {
    /// Guest-physical address of the first page.
    pub gpa: u32,
    /// Size in bytes (a multiple of 4096).
    pub size: u32,
    /// What the section holds.
    pub kind: SectionKind,
}

/// A parsed OVMF image: its bytes, its footer table entries and its SEV metadata sections.
#[derive(Debug, Clone)]
pub struct Ovmf<'a> {
    data: &'a [u8],
    entries: Vec<(Guid, &'a [u8])>,
    sections: Vec<MetadataSection>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[at..at + 16]);
    Guid::from_bytes(g)
}

impl<'a> Ovmf<'a> {
    /// Parses the footer table and the SEV metadata of an SEV-SNP capable OVMF image.
    pub fn parse(data: &'a [u8]) -> Result<Self, SnpMeasureError> {
        let len = data.len();
        if len < TRAILER + ENTRY_HEADER {
            return Err(SnpMeasureError::FirmwareTooSmall(len));
        }
        if len % PAGE != 0 {
            return Err(SnpMeasureError::FirmwareNotPageAligned(len));
        }
        if len as u64 > FOUR_GIB {
            return Err(SnpMeasureError::FirmwareTooLarge(len));
        }
        let entries = parse_footer_table(data)?;
        let mut ovmf = Ovmf {
            data,
            entries,
            sections: Vec::new(),
        };
        ovmf.sections = ovmf.parse_metadata()?;
        Ok(ovmf)
    }

    /// The image bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Guest-physical address of the first byte: the image ends at 4 GiB.
    pub fn gpa(&self) -> u64 {
        FOUR_GIB - self.data.len() as u64
    }

    /// The SEV metadata sections, in image order.
    pub fn sections(&self) -> &[MetadataSection] {
        &self.sections
    }

    /// The data of the footer table entry with this GUID.
    pub fn entry(&self, guid: Guid) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(g, _)| *g == guid)
            .map(|(_, d)| *d)
    }

    fn entry_u32(&self, name: &'static str, guid: Guid) -> Result<u32, SnpMeasureError> {
        let d = self
            .entry(guid)
            .ok_or(SnpMeasureError::MissingEntry { name, guid })?;
        if d.len() < 4 {
            return Err(SnpMeasureError::EntryTooShort {
                name,
                len: d.len(),
                min: 4,
            });
        }
        Ok(u32_at(d, 0))
    }

    /// The address at which application processors start (the SEV-ES reset block).
    pub fn sev_es_reset_eip(&self) -> Result<u32, SnpMeasureError> {
        self.entry_u32("SEV_ES_RESET_BLOCK", SEV_ES_RESET_BLOCK)
    }

    /// Guest-physical address of the SEV hash table that QEMU fills.
    pub fn sev_hash_table_gpa(&self) -> Result<u32, SnpMeasureError> {
        self.entry_u32("SEV_HASH_TABLE_RV", SEV_HASH_TABLE_RV)
    }

    fn parse_metadata(&self) -> Result<Vec<MetadataSection>, SnpMeasureError> {
        let data = self.data;
        let len = data.len();
        let offset = self.entry_u32("OVMF_SEV_METADATA", OVMF_SEV_METADATA)?;
        let start = match len.checked_sub(offset as usize) {
            Some(s) if len - s >= METADATA_HEADER => s,
            _ => return Err(SnpMeasureError::MetadataOffset { offset, len }),
        };
        let mut signature = [0u8; 4];
        signature.copy_from_slice(&data[start..start + 4]);
        if &signature != b"ASEV" {
            return Err(SnpMeasureError::MetadataSignature(signature));
        }
        let size = u32_at(data, start + 4);
        let version = u32_at(data, start + 8);
        let count = u32_at(data, start + 12);
        if version != 1 {
            return Err(SnpMeasureError::MetadataVersion(version));
        }
        let available = len - start;
        let needed = (count as u64) * METADATA_SECTION as u64 + METADATA_HEADER as u64;
        if (size as u64) < needed || size as u64 > available as u64 {
            return Err(SnpMeasureError::MetadataSize {
                size,
                count,
                needed,
                available,
            });
        }
        let mut sections = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let at = start + METADATA_HEADER + index * METADATA_SECTION;
            let gpa = u32_at(data, at);
            let size = u32_at(data, at + 4);
            let raw_kind = u32_at(data, at + 8);
            let kind =
                SectionKind::from_u32(raw_kind).ok_or(SnpMeasureError::UnknownSectionType {
                    index,
                    kind: raw_kind,
                })?;
            let sized = matches!(
                kind,
                SectionKind::SnpSecMem | SectionKind::SvsmCaa | SectionKind::SnpKernelHashes
            );
            if sized && size as usize % PAGE != 0 {
                return Err(SnpMeasureError::SectionSize {
                    index,
                    kind,
                    gpa,
                    size,
                });
            }
            sections.push(MetadataSection { gpa, size, kind });
        }
        Ok(sections)
    }
}

/// The footer table's entries, last entry first (the order in which they are found).
fn parse_footer_table(data: &[u8]) -> Result<Vec<(Guid, &[u8])>, SnpMeasureError> {
    let footer = data.len() - TRAILER - ENTRY_HEADER;
    if guid_at(data, footer + 2) != OVMF_TABLE_FOOTER {
        return Err(SnpMeasureError::MissingFooterTable);
    }
    let table_size = u16_at(data, footer) as usize;
    if table_size < ENTRY_HEADER || table_size - ENTRY_HEADER > footer {
        return Err(SnpMeasureError::FooterTableSize {
            size: table_size,
            max: footer + ENTRY_HEADER,
        });
    }
    let table = &data[footer - (table_size - ENTRY_HEADER)..footer];
    let mut end = table.len();
    let mut entries: Vec<(Guid, &[u8])> = Vec::new();
    while end >= ENTRY_HEADER {
        let size = u16_at(table, end - ENTRY_HEADER) as usize;
        let guid = guid_at(table, end - ENTRY_HEADER + 2);
        if size < ENTRY_HEADER || size > end {
            return Err(SnpMeasureError::FooterEntrySize {
                guid,
                size,
                max: end,
            });
        }
        if entries.iter().any(|(g, _)| *g == guid) {
            return Err(SnpMeasureError::DuplicateEntry(guid));
        }
        entries.push((guid, &table[end - size..end - ENTRY_HEADER]));
        end -= size;
    }
    Ok(entries)
}
