//! The OVMF footer-table / SEV-metadata parser behind `mse measure snp` and the launch digest
//! (the firmware a node publishes is untrusted input): arbitrary bytes never panic.
//!
//! Each input is tried twice: as a whole image (zero-padded at the front to whole pages), and as
//! the bytes before a well-formed footer entry, so that the entries and the metadata they point
//! to are explored without the fuzzer first having to find the footer GUID. The first input byte
//! steers the second form: bit 0 takes the footer's table size from bytes 1..3 instead of the
//! real one; bits 1..2 give 1..4 vCPUs; bit 3 boots a kernel (the SEV hash-table path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_attest::snp_measure::{Ovmf, SnpMeasureInput, VcpuType, launch_digest};

const FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];

fn page_padded(mut tail: Vec<u8>) -> Vec<u8> {
    let pad = (4096 - tail.len() % 4096) % 4096;
    let mut img = vec![0u8; pad];
    img.append(&mut tail);
    img
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 * 1024 {
        return;
    }
    let _ = Ovmf::parse(&page_padded(data.to_vec()));

    let (ctl, rest) = data.split_at(data.len().min(3));
    let flags = ctl.first().copied().unwrap_or(0);
    let size = if flags & 1 == 1 && ctl.len() == 3 {
        u16::from_le_bytes([ctl[1], ctl[2]])
    } else {
        (rest.len().min(0xffff - 18) + 18) as u16
    };
    let mut tail = rest.to_vec();
    tail.extend_from_slice(&size.to_le_bytes());
    tail.extend_from_slice(&FOOTER_GUID);
    tail.extend_from_slice(&[0u8; 32]);
    let img = page_padded(tail);
    if Ovmf::parse(&img).is_ok() {
        let vcpus = 1 + u32::from((flags >> 1) & 3);
        let mut input = SnpMeasureInput::new(&img, vcpus, VcpuType::EpycMilan);
        if flags & 8 != 0 {
            input = input.with_kernel(b"kernel", Some(b"initrd"), Some("console=ttyS0"));
        }
        let _ = launch_digest(&input);
    }
});
