//! The GUIDs of the OVMF footer table and of QEMU's SEV hash table, in their on-disk (little-endian
//! "mixed") byte order.

/// A GUID as written in firmware: the first three fields little-endian, the last eight bytes as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    /// Builds the GUID `d1-d2-d3-d4[0..2]-d4[2..8]` in its on-disk byte order.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// The GUID from its 16 on-disk bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The 16 on-disk bytes.
    pub const fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9]
        )?;
        for x in &b[10..] {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Marks the end of the OVMF footer table (`96b582de-1fb2-45f7-baea-a366c55a082d`).
pub const OVMF_TABLE_FOOTER: Guid = Guid::new(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// Footer entry: offset from the end of the image of the SEV metadata
/// (`dc886566-984a-4798-a75e-5585a7bf67cc`).
pub const OVMF_SEV_METADATA: Guid = Guid::new(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// Footer entry: the SEV-ES AP reset address (`00f771de-1a7e-4fcb-890e-68c77e2fb44e`).
pub const SEV_ES_RESET_BLOCK: Guid = Guid::new(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// Footer entry: guest-physical address and size of the SEV hash table
/// (`7255371f-3a3b-4b04-927b-1da6efa8d454`).
pub const SEV_HASH_TABLE_RV: Guid = Guid::new(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// Header of the hash table QEMU writes (`9438d606-4f22-4cc9-b479-a793d411fd21`).
pub const SEV_HASH_TABLE_HEADER: Guid = Guid::new(
    0x9438_d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
/// Hash table entry: the kernel (`4de79437-abd2-427f-b835-d5b172d2045b`).
pub const SEV_KERNEL_ENTRY: Guid = Guid::new(
    0x4de7_9437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
/// Hash table entry: the initrd (`44baf731-3a2f-4bd7-9af1-41e29169781d`).
pub const SEV_INITRD_ENTRY: Guid = Guid::new(
    0x44ba_f731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
/// Hash table entry: the kernel command line (`97d02dd8-bd20-4c94-aa78-e7714d36ab2a`).
pub const SEV_CMDLINE_ENTRY: Guid = Guid::new(
    0x97d0_2dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_canonical_form() {
        assert_eq!(
            OVMF_TABLE_FOOTER.to_string(),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
        assert_eq!(
            SEV_CMDLINE_ENTRY.to_string(),
            "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
        );
        // On disk the first field is little-endian.
        assert_eq!(&OVMF_TABLE_FOOTER.bytes()[..4], &[0xde, 0x82, 0xb5, 0x96]);
    }
}
