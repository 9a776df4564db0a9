//! The GUIDs of the OVMF footer table and of QEMU's SEV hash table, in their on-disk (little-endian
//! "mixed") byte order.

/// A GUID as written in firmware: the first three fields little-endian, the last eight bytes as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    /// The GUID of canonical text `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, in its on-disk byte
    /// order. Malformed text panics (a compile error where it defines a constant).
    pub const fn parse(text: &str) -> Self {
        let s = text.as_bytes();
        assert!(
            s.len() == 36 && s[8] == b'-' && s[13] == b'-' && s[18] == b'-' && s[23] == b'-',
            "a GUID is 8-4-4-4-12 hex digits"
        );
        // The bytes as written, then the first three fields turned little-endian.
        let mut b = [0u8; 16];
        let (mut i, mut j) = (0, 0);
        while i < 36 {
            if s[i] == b'-' {
                i += 1;
                continue;
            }
            b[j] = (hex_digit(s[i]) << 4) | hex_digit(s[i + 1]);
            i += 2;
            j += 1;
        }
        Guid([
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
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

const fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("a GUID is 8-4-4-4-12 hex digits"),
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

/// Marks the end of the OVMF footer table.
pub const OVMF_TABLE_FOOTER: Guid = Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082d");
/// Footer entry: offset from the end of the image of the SEV metadata.
pub const OVMF_SEV_METADATA: Guid = Guid::parse("dc886566-984a-4798-a75e-5585a7bf67cc");
/// Footer entry: the SEV-ES AP reset address.
pub const SEV_ES_RESET_BLOCK: Guid = Guid::parse("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
/// Footer entry: guest-physical address and size of the SEV hash table.
pub const SEV_HASH_TABLE_RV: Guid = Guid::parse("7255371f-3a3b-4b04-927b-1da6efa8d454");
/// Header of the hash table QEMU writes.
pub const SEV_HASH_TABLE_HEADER: Guid = Guid::parse("9438d606-4f22-4cc9-b479-a793d411fd21");
/// Hash table entry: the kernel.
pub const SEV_KERNEL_ENTRY: Guid = Guid::parse("4de79437-abd2-427f-b835-d5b172d2045b");
/// Hash table entry: the initrd.
pub const SEV_INITRD_ENTRY: Guid = Guid::parse("44baf731-3a2f-4bd7-9af1-41e29169781d");
/// Hash table entry: the kernel command line.
pub const SEV_CMDLINE_ENTRY: Guid = Guid::parse("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");

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
        for g in [
            OVMF_SEV_METADATA,
            SEV_ES_RESET_BLOCK,
            SEV_HASH_TABLE_RV,
            SEV_HASH_TABLE_HEADER,
            SEV_KERNEL_ENTRY,
            SEV_INITRD_ENTRY,
        ] {
            assert_eq!(Guid::parse(&g.to_string()), g);
        }
        // On disk the first field is little-endian.
        assert_eq!(&OVMF_TABLE_FOOTER.bytes()[..4], &[0xde, 0x82, 0xb5, 0x96]);
    }
}
