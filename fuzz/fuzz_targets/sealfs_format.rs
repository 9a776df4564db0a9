//! Everything mse-sealfs parses from the (host-controlled) backing store: file headers, sealed
//! blocks, encrypted names, directory ids, link targets and backing lengths. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mse_sealfs::{Ciphers, SealKey};

fuzz_target!(|data: &[u8]| {
    let c = Ciphers::new(&SealKey::from_bytes([0x5a; 32]));
    let _ = c.open_header(data, b"binding: dir id and name");
    let _ = c.open_dir_id(data);
    let _ = c.open_link(data);
    let dir_id = [7u8; 16];
    let _ = c.decrypt_name(&dir_id, data);
    let mut block = data.to_vec();
    let block_no = data.first().copied().unwrap_or(0) as u64;
    let _ = c.open_block(&[1u8; 16], block_no, block_no % 2 == 0, &mut block);
    if data.len() >= 8 {
        let len = u64::from_le_bytes(data[..8].try_into().unwrap());
        if let Ok(size) = mse_sealfs::plain_size(len) {
            assert_eq!(mse_sealfs::backing_size(size), len);
        }
    }
});
