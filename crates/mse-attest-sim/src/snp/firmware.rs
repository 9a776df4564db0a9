//! A synthetic SEV-SNP firmware for sim-snp nodes and tests.

use mse_attest::snp_measure::guid;

/// A 16 KiB firmware image in the OVMF AmdSev layout (footer table, SEV metadata with an SNP
/// kernel-hashes section): what a sim-snp node publishes and measures where no real AmdSev
/// build exists (Debian has none). It boots nothing: under sim-snp QEMU boots the kernel
/// directly, and only the launch digest is computed over this file.
pub fn amdsev_firmware() -> Vec<u8> {
    let len = 4 * 4096;
    let mut img = vec![0u8; len];
    let meta_at = len - 0x1000;
    let mut meta = b"ASEV".to_vec();
    meta.extend_from_slice(&(16u32 + 24).to_le_bytes());
    meta.extend_from_slice(&1u32.to_le_bytes());
    meta.extend_from_slice(&2u32.to_le_bytes());
    for v in [0x0080_0000u32, 0x1000, 2, 0x0080_1000, 0x1000, 0x10] {
        meta.extend_from_slice(&v.to_le_bytes());
    }
    img[meta_at..meta_at + meta.len()].copy_from_slice(&meta);
    // The footer table, read backwards from its end: entries (data, size, GUID), then the
    // footer GUID whose size covers the whole table.
    let mut table = Vec::new();
    for (data, guid) in [
        (&0x0080_1c00u32.to_le_bytes()[..], guid::SEV_HASH_TABLE_RV),
        (&0xffff_f004u32.to_le_bytes()[..], guid::SEV_ES_RESET_BLOCK),
        (&0x1000u32.to_le_bytes()[..], guid::OVMF_SEV_METADATA),
        (&[][..], guid::OVMF_TABLE_FOOTER),
    ] {
        table.extend_from_slice(data);
        table.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(guid.bytes());
    }
    let n = table.len();
    table[n - 18..n - 16].copy_from_slice(&(n as u16).to_le_bytes());
    img[len - 32 - n..len - 32].copy_from_slice(&table);
    img
}
