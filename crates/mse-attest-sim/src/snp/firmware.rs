//! A synthetic SEV-SNP firmware for sim-snp nodes and tests.

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
    let guid = |d1: u32, d2: u16, d3: u16, d4: [u8; 8]| {
        let mut g = Vec::new();
        g.extend_from_slice(&d1.to_le_bytes());
        g.extend_from_slice(&d2.to_le_bytes());
        g.extend_from_slice(&d3.to_le_bytes());
        g.extend_from_slice(&d4);
        g
    };
    let mut table = Vec::new();
    let mut entry = |data: &[u8], g: Vec<u8>| {
        table.extend_from_slice(data);
        table.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(&g);
    };
    entry(
        &0x0080_1c00u32.to_le_bytes(),
        guid(
            0x7255_371f,
            0x3a3b,
            0x4b04,
            [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
        ),
    );
    entry(
        &0xffff_f004u32.to_le_bytes(),
        guid(
            0x00f7_71de,
            0x1a7e,
            0x4fcb,
            [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
        ),
    );
    entry(
        &0x1000u32.to_le_bytes(),
        guid(
            0xdc88_6566,
            0x984a,
            0x4798,
            [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
        ),
    );
    entry(
        &[],
        guid(
            0x96b5_82de,
            0x1fb2,
            0x45f7,
            [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
        ),
    );
    let n = table.len();
    table[n - 18..n - 16].copy_from_slice(&(n as u16).to_le_bytes());
    img[len - 32 - n..len - 32].copy_from_slice(&table);
    img
}

