//! mse-sealfs reading host-controlled backing files: a real sealed file (header and blocks
//! written by `SealedFile`), then corrupted, truncated or extended by the fuzzer as a hostile
//! host would, then opened and read at fuzzed offsets; and the directory-id file reader on the
//! same bytes. Nothing may panic; a read either fails or returns at most what was asked, and an
//! untouched file reads back its plaintext.
#![no_main]

use std::io::{Seek, SeekFrom, Write};
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mse_sealfs::{Ciphers, SealKey, SealedFile};

const BINDING: &[u8] = b"dir id and name of the file";

static CIPHERS: LazyLock<Ciphers> =
    LazyLock::new(|| Ciphers::new(&SealKey::from_bytes([0x5a; 32])));

#[derive(Arbitrary, Debug)]
enum Damage {
    /// XOR one byte of the backing file.
    Flip { at: u16, mask: u8 },
    /// Cut the backing file.
    Truncate { len: u16 },
    /// Write bytes at an offset (extending the file if beyond its end).
    Write { at: u16, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    plain: Vec<u8>,
    damage: Vec<Damage>,
    reads: Vec<(u16, u16)>,
    /// Open with another binding (a file moved by the host).
    other_binding: bool,
    /// Replace the whole backing file by these bytes.
    raw: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let c = &*CIPHERS;
    let backing = tempfile::NamedTempFile::new().expect("tempfile");
    let path = backing.path();
    {
        let file = backing.reopen().expect("reopen");
        let mut sealed = SealedFile::create(c, file, BINDING).expect("create sealed");
        if !input.plain.is_empty() {
            sealed.write(c, 0, &input.plain).expect("write");
        }
    }
    let intact = input.damage.is_empty() && input.raw.is_none() && !input.other_binding;
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    if let Some(raw) = &input.raw {
        file.set_len(0).expect("truncate");
        file.write_all(raw).expect("write");
    }
    for d in &input.damage {
        match d {
            Damage::Flip { at, mask } => {
                let mut b = [0u8];
                use std::os::unix::fs::FileExt;
                if file.read_at(&mut b, u64::from(*at)).unwrap_or(0) == 1 {
                    file.write_at(&[b[0] ^ mask], u64::from(*at)).expect("flip");
                }
            }
            Damage::Truncate { len } => file.set_len(u64::from(*len)).expect("truncate"),
            Damage::Write { at, bytes } => {
                file.seek(SeekFrom::Start(u64::from(*at))).expect("seek");
                file.write_all(bytes).expect("write");
            }
        }
    }
    let _ = mse_sealfs::read_dir_id_file(c, &std::fs::File::open(path).expect("open"));
    let binding: &[u8] = if input.other_binding {
        b"another name"
    } else {
        BINDING
    };
    match SealedFile::open(c, file, binding) {
        Ok(sealed) => {
            if intact {
                assert_eq!(sealed.size(), input.plain.len() as u64);
                let all = sealed.read(c, 0, input.plain.len()).expect("read intact");
                assert_eq!(all, input.plain);
            }
            for (off, len) in input.reads.iter().take(8) {
                if let Ok(got) = sealed.read(c, u64::from(*off), usize::from(*len)) {
                    assert!(got.len() <= usize::from(*len));
                }
            }
        }
        Err(e) => {
            assert!(!intact, "intact file refused: {e}");
            let _ = e.to_string();
        }
    }
});
