//! Keys, the on-disk format of sealed files (header + blocks) and encrypted names.
//!
//! Everything here is pure (no I/O) so that it can be fuzzed and unit-tested directly.

use aes_siv::Aes256SivAead;
use aes_siv::aead::{Aead, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::FormatError;

/// Plaintext bytes per block.
pub const BLOCK_SIZE: usize = 4096;
/// Random AES-GCM nonce stored in front of every block.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag stored after every block.
pub const TAG_LEN: usize = 16;
/// Bytes a block grows by when sealed.
pub const BLOCK_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// On-disk size of a full block.
pub const CIPHER_BLOCK_SIZE: usize = BLOCK_SIZE + BLOCK_OVERHEAD;
/// Length of the per-file random identifier.
pub const FILE_ID_LEN: usize = 16;
/// Format version written in every header.
pub const FORMAT_VERSION: u16 = 1;
/// Header: version (2, big endian) ‖ file id (16) ‖ nonce (12) ‖ tag (16); the tag also covers
/// the file's binding (parent directory id ‖ name), which is not stored.
pub const HEADER_LEN: usize = 2 + FILE_ID_LEN + NONCE_LEN + TAG_LEN;
/// Longest plaintext name, as on ext4 (NAME_MAX). Names whose encrypted form does not fit a
/// 255-byte host name (plaintext names over 175 bytes) are stored under a long-name alias
/// (see `docs/sealfs-format.md`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest encrypted name stored as is (the host's NAME_MAX).
pub const MAX_STORED_NAME_LEN: usize = 255;
/// Length of the encrypted form of a [`MAX_NAME_LEN`]-byte name: base64url (no padding) of
/// the SIV tag (16) and the name.
pub const MAX_ENC_NAME_LEN: usize = ((MAX_NAME_LEN + 16) * 4).div_ceil(3);
/// Backing names of objects whose encrypted name is too long for the host start with this
/// (base64url never produces a dot, so it cannot clash with an encrypted name); the rest is
/// base64url(SHA-256(encrypted name)).
pub const LONG_NAME_PREFIX: &str = ".mse-sealfs.long.";
/// The encrypted name of a long-named object is stored in a side file next to it: its backing
/// name followed by this suffix.
pub const LONG_NAME_SUFFIX: &str = ".name";
/// Directory (in the backing root) of the sealed targets of symbolic links too long for a host
/// link target once sealed.
pub const LINKS_DIR: &str = ".mse-sealfs.links";
/// Host target of such a link: this prefix and the name of its file in [`LINKS_DIR`] (a sealed
/// target is base64url, which never starts with a dot).
pub const LONG_LINK_PREFIX: &str = ".mse-sealfs.link.";
/// Longest host link target (PATH_MAX without the NUL).
pub const MAX_HOST_LINK_LEN: usize = 4095;
/// Largest plaintext file (8 TiB): its backing file stays below ext4's 16 TiB. A truncate,
/// allocation or write beyond fails with EFBIG (within it, beyond the quota, with ENOSPC).
pub const MAX_FILE_SIZE: u64 = 1 << 43;
/// Length of a directory identifier (also the SIV nonce of the names it contains).
pub const DIR_ID_LEN: usize = 16;

/// Stored directory id: id (16) ‖ nonce (12) ‖ tag (16) authenticating the id.
pub const DIR_ID_FILE_LEN: usize = DIR_ID_LEN + NONCE_LEN + TAG_LEN;

const HEADER_AAD_PREFIX: &[u8] = b"mse-sealfs header v1";
const DIR_ID_AAD_PREFIX: &[u8] = b"mse-sealfs dirid v1";

/// The 32-byte key that seals a filesystem, given by the caller (the runtime derives it as
/// HKDF(platform sealing key, measurement)). Wiped from memory on drop; never printed.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl SealKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses a key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, FormatError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FormatError::KeyLength { got: bytes.len() })?;
        Ok(Self::from_bytes(arr))
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

/// The ciphers derived from a [`SealKey`]: one key per purpose (HKDF-SHA256, distinct labels),
/// so that the content and name ciphers never share key material.
pub struct Ciphers {
    /// AES-256-GCM from `ring`: its x86-64 code uses VAES/VPCLMULQDQ when the CPU has them
    /// (about 3.5x the throughput of the portable AES-NI path on 4 KiB blocks).
    content: LessSafeKey,
    names: Aes256SivAead,
}

impl Ciphers {
    /// Derives the content and name keys from the master key.
    pub fn new(key: &SealKey) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"mse-sealfs"), key.0.as_slice());
        let mut content_key = Zeroizing::new([0u8; 32]);
        let mut name_key = Zeroizing::new([0u8; 64]);
        // Lengths are far below HKDF's 255*32 limit, so expand cannot fail.
        hk.expand(b"mse-sealfs v1 content", content_key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(b"mse-sealfs v1 names", name_key.as_mut_slice())
            .expect("64 bytes is a valid HKDF-SHA256 output length");
        let content = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, content_key.as_slice())
                .expect("AES-256-GCM key is 32 bytes"),
        );
        let names = Aes256SivAead::new_from_slice(name_key.as_slice())
            .expect("AES-256-SIV key is 64 bytes");
        Self { content, names }
    }

    /// Builds a fresh header for a new file with a random file id, bound to `binding` (the
    /// parent directory id ‖ the plaintext name, see [`header_binding`]).
    pub fn new_header(
        &self,
        binding: &[u8],
    ) -> Result<([u8; FILE_ID_LEN], [u8; HEADER_LEN]), FormatError> {
        let mut file_id = [0u8; FILE_ID_LEN];
        random(&mut file_id)?;
        Ok((file_id, self.seal_header(&file_id, binding)?))
    }

    /// Seals the header of file `file_id` for `binding` (a fresh nonce each time: renaming a
    /// file re-seals its header for the new name).
    pub fn seal_header(
        &self,
        file_id: &[u8; FILE_ID_LEN],
        binding: &[u8],
    ) -> Result<[u8; HEADER_LEN], FormatError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut out = [0u8; HEADER_LEN];
        out[..2].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[2..2 + FILE_ID_LEN].copy_from_slice(file_id);
        out[2 + FILE_ID_LEN..2 + FILE_ID_LEN + NONCE_LEN].copy_from_slice(&nonce);
        let aad = header_aad(&out[..2 + FILE_ID_LEN], binding);
        let tag = self.seal_in_place(&nonce, &aad, &mut [])?;
        out[2 + FILE_ID_LEN + NONCE_LEN..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Checks a header read from the backing store against the file's current `binding` and
    /// returns the file id.
    pub fn open_header(
        &self,
        bytes: &[u8],
        binding: &[u8],
    ) -> Result<[u8; FILE_ID_LEN], FormatError> {
        if bytes.len() != HEADER_LEN {
            return Err(FormatError::HeaderLength {
                got: bytes.len(),
                want: HEADER_LEN,
            });
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != FORMAT_VERSION {
            return Err(FormatError::HeaderVersion { got: version });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[2 + FILE_ID_LEN..2 + FILE_ID_LEN + NONCE_LEN]);
        let aad = header_aad(&bytes[..2 + FILE_ID_LEN], binding);
        self.open_in_place(&nonce, &aad, &mut [], &bytes[2 + FILE_ID_LEN + NONCE_LEN..])
            .map_err(|()| FormatError::HeaderAuth)?;
        let mut file_id = [0u8; FILE_ID_LEN];
        file_id.copy_from_slice(&bytes[2..2 + FILE_ID_LEN]);
        Ok(file_id)
    }

    /// Seals one block of at most [`BLOCK_SIZE`] bytes into `out`
    /// (`plain.len() + BLOCK_OVERHEAD` bytes: nonce ‖ ciphertext ‖ tag).
    /// `last` marks the final block of the file, so that cutting whole blocks off is detected.
    pub fn seal_block(
        &self,
        file_id: &[u8; FILE_ID_LEN],
        block_no: u64,
        last: bool,
        nonce: &[u8; NONCE_LEN],
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<(), FormatError> {
        debug_assert!(!plain.is_empty() && plain.len() <= BLOCK_SIZE);
        debug_assert_eq!(out.len(), plain.len() + BLOCK_OVERHEAD);
        out[..NONCE_LEN].copy_from_slice(nonce);
        let (body, tag_out) = out[NONCE_LEN..].split_at_mut(plain.len());
        // ring encrypts in place: the copy of a 4 KiB block stays in L1 for the encryption.
        body.copy_from_slice(plain);
        let tag = self.seal_in_place(nonce, &block_aad(file_id, block_no, last), body)?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Opens one sealed block in place; returns the plaintext (a sub-slice of `sealed`).
    pub fn open_block<'a>(
        &self,
        file_id: &[u8; FILE_ID_LEN],
        block_no: u64,
        last: bool,
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], FormatError> {
        if sealed.len() <= BLOCK_OVERHEAD || sealed.len() > CIPHER_BLOCK_SIZE {
            return Err(FormatError::BlockLength {
                block: block_no,
                got: sealed.len(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let body_len = sealed.len() - BLOCK_OVERHEAD;
        let (body, tag) = sealed[NONCE_LEN..].split_at_mut(body_len);
        self.open_in_place(&nonce, &block_aad(file_id, block_no, last), body, tag)
            .map_err(|()| FormatError::BlockAuth { block: block_no })?;
        Ok(&sealed[NONCE_LEN..NONCE_LEN + body_len])
    }

    /// Encrypts a file name for the directory `dir_id` (deterministic AES-SIV, so lookups work;
    /// the directory id binds the name to its directory).
    pub fn encrypt_name(
        &self,
        dir_id: &[u8; DIR_ID_LEN],
        name: &[u8],
    ) -> Result<String, FormatError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(FormatError::NameLength {
                got: name.len(),
                max: MAX_NAME_LEN,
            });
        }
        let sealed = self
            .names
            .encrypt(&aes_siv::Nonce::from(*dir_id), name)
            .map_err(|_| FormatError::Seal)?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Decrypts a name produced by [`Ciphers::encrypt_name`] for the same directory (the host
    /// name, or the content of a long name's side file).
    pub fn decrypt_name(
        &self,
        dir_id: &[u8; DIR_ID_LEN],
        stored: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        if stored.len() > MAX_ENC_NAME_LEN {
            return Err(FormatError::NameEncoding);
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(stored)
            .map_err(|_| FormatError::NameEncoding)?;
        let name = self
            .names
            .decrypt(&aes_siv::Nonce::from(*dir_id), sealed.as_slice())
            .map_err(|_| FormatError::NameAuth)?;
        if name.is_empty()
            || name.contains(&b'/')
            || name.contains(&0)
            || name == b"."
            || name == b".."
        {
            return Err(FormatError::NameAuth);
        }
        Ok(name)
    }

    /// Seals a fresh random directory id; returns (id, stored form).
    pub fn new_dir_id(&self) -> Result<([u8; DIR_ID_LEN], [u8; DIR_ID_FILE_LEN]), FormatError> {
        let mut id = [0u8; DIR_ID_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut id)?;
        random(&mut nonce)?;
        Ok((id, self.seal_dir_id(&id, &nonce)?))
    }

    /// The stored form of directory id `id` (authenticated so that a wrong key is noticed at the
    /// root and a replaced id file is not trusted).
    pub fn seal_dir_id(
        &self,
        id: &[u8; DIR_ID_LEN],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<[u8; DIR_ID_FILE_LEN], FormatError> {
        let mut aad = DIR_ID_AAD_PREFIX.to_vec();
        aad.extend_from_slice(id);
        let tag = self.seal_in_place(nonce, &aad, &mut [])?;
        let mut out = [0u8; DIR_ID_FILE_LEN];
        out[..DIR_ID_LEN].copy_from_slice(id);
        out[DIR_ID_LEN..DIR_ID_LEN + NONCE_LEN].copy_from_slice(nonce);
        out[DIR_ID_LEN + NONCE_LEN..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Checks a stored directory id and returns the id.
    pub fn open_dir_id(&self, stored: &[u8]) -> Result<[u8; DIR_ID_LEN], FormatError> {
        if stored.len() != DIR_ID_FILE_LEN {
            return Err(FormatError::DirIdLength { got: stored.len() });
        }
        let mut id = [0u8; DIR_ID_LEN];
        id.copy_from_slice(&stored[..DIR_ID_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&stored[DIR_ID_LEN..DIR_ID_LEN + NONCE_LEN]);
        let mut aad = DIR_ID_AAD_PREFIX.to_vec();
        aad.extend_from_slice(&id);
        self.open_in_place(&nonce, &aad, &mut [], &stored[DIR_ID_LEN + NONCE_LEN..])
            .map_err(|()| FormatError::DirIdAuth)?;
        Ok(id)
    }

    /// Seals a symlink target (random nonce; stored as base64url, itself a valid link target).
    pub fn seal_link(&self, target: &[u8]) -> Result<String, FormatError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(target);
        let tag = self.seal_in_place(&nonce, LINK_AAD, &mut all[NONCE_LEN..])?;
        all.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(all))
    }

    /// Opens a symlink target sealed by [`Ciphers::seal_link`].
    pub fn open_link(&self, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
        let mut all = URL_SAFE_NO_PAD
            .decode(stored)
            .map_err(|_| FormatError::LinkAuth)?;
        if all.len() < NONCE_LEN + TAG_LEN {
            return Err(FormatError::LinkAuth);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&all[..NONCE_LEN]);
        let body_len = all.len() - NONCE_LEN - TAG_LEN;
        let (body, tag) = all[NONCE_LEN..].split_at_mut(body_len);
        self.open_in_place(&nonce, LINK_AAD, body, tag)
            .map_err(|()| FormatError::LinkAuth)?;
        Ok(all[NONCE_LEN..NONCE_LEN + body_len].to_vec())
    }

    /// AES-256-GCM encryption of `in_out` in place; returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], FormatError> {
        let tag = self
            .content
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| FormatError::Seal)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Checks `tag` and decrypts `in_out` in place. On failure `in_out` must not be used.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8],
    ) -> Result<(), ()> {
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| ())?;
        self.content
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                Tag::from(tag),
                in_out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}

/// A name as stored: the host name, and the encrypted name when the host name is its
/// long-name alias (the content of the side file).
pub type StoredName = (String, Option<String>);

/// The host name of an encrypted name `enc`, and the content of its side file when it is
/// stored under a long-name alias (`enc` longer than [`MAX_STORED_NAME_LEN`]).
pub fn stored_name(enc: String) -> StoredName {
    if enc.len() <= MAX_STORED_NAME_LEN {
        (enc, None)
    } else {
        (long_name(enc.as_bytes()), Some(enc))
    }
}

/// The long-name alias of encrypted name `enc`: [`LONG_NAME_PREFIX`] ‖
/// base64url(SHA-256(`enc`)) (60 bytes).
pub fn long_name(enc: &[u8]) -> String {
    use sha2::Digest as _;
    let mut out = String::with_capacity(LONG_NAME_PREFIX.len() + 43);
    out.push_str(LONG_NAME_PREFIX);
    URL_SAFE_NO_PAD.encode_string(Sha256::digest(enc), &mut out);
    out
}

/// What a host name in a backing directory is.
#[derive(Debug, PartialEq, Eq)]
pub enum BackingName<'a> {
    /// `.`, `..`, the directory id file or a long name's side file: not an entry.
    Internal,
    /// An encrypted name, stored as is.
    Short(&'a [u8]),
    /// A long-name alias: the encrypted name is in the side file of that name.
    Long,
}

/// Classifies a host name found in a backing directory.
pub fn classify(name: &[u8]) -> BackingName<'_> {
    if name == b"."
        || name == b".."
        || name == crate::fs::DIR_ID_FILE.as_bytes()
        || name == LINKS_DIR.as_bytes()
    {
        BackingName::Internal
    } else if name.starts_with(LONG_NAME_PREFIX.as_bytes()) {
        if name.ends_with(LONG_NAME_SUFFIX.as_bytes()) {
            BackingName::Internal
        } else {
            BackingName::Long
        }
    } else {
        BackingName::Short(name)
    }
}

/// Fills `buf` from the OS random source.
pub fn random(buf: &mut [u8]) -> Result<(), FormatError> {
    getrandom::fill(buf).map_err(|e| FormatError::Random(e.to_string()))
}

fn header_aad(version_and_id: &[u8], binding: &[u8]) -> Vec<u8> {
    let mut aad = HEADER_AAD_PREFIX.to_vec();
    aad.extend_from_slice(version_and_id);
    aad.extend_from_slice(binding);
    aad
}

/// What a file header is bound to: its parent directory id ‖ its plaintext name. A sealed file
/// put under another name, or in another directory, no longer opens.
pub fn header_binding(dir_id: &[u8; DIR_ID_LEN], name: &[u8]) -> Vec<u8> {
    let mut b = dir_id.to_vec();
    b.extend_from_slice(name);
    b
}

/// Link targets are not bound to a directory so that renaming a link keeps it valid.
const LINK_AAD: &[u8] = b"mse-sealfs link v1";

/// AAD of a block: file id ‖ block number (u64 BE) ‖ last-block flag.
fn block_aad(file_id: &[u8; FILE_ID_LEN], block_no: u64, last: bool) -> [u8; FILE_ID_LEN + 9] {
    let mut aad = [0u8; FILE_ID_LEN + 9];
    aad[..FILE_ID_LEN].copy_from_slice(file_id);
    aad[FILE_ID_LEN..FILE_ID_LEN + 8].copy_from_slice(&block_no.to_be_bytes());
    aad[FILE_ID_LEN + 8] = u8::from(last);
    aad
}

/// Plaintext size of a sealed file from the length of its backing file (header included).
pub fn plain_size(backing_len: u64) -> Result<u64, FormatError> {
    let body = backing_len
        .checked_sub(HEADER_LEN as u64)
        .ok_or(FormatError::BackingLength { got: backing_len })?;
    let full = body / CIPHER_BLOCK_SIZE as u64;
    let rem = body % CIPHER_BLOCK_SIZE as u64;
    if rem == 0 {
        return Ok(full * BLOCK_SIZE as u64);
    }
    if rem <= BLOCK_OVERHEAD as u64 {
        return Err(FormatError::BackingLength { got: backing_len });
    }
    Ok(full * BLOCK_SIZE as u64 + rem - BLOCK_OVERHEAD as u64)
}

/// Length of the backing file holding `size` plaintext bytes.
pub fn backing_size(size: u64) -> u64 {
    let full = size / BLOCK_SIZE as u64;
    let rem = size % BLOCK_SIZE as u64;
    let tail = if rem == 0 {
        0
    } else {
        rem + BLOCK_OVERHEAD as u64
    };
    HEADER_LEN as u64 + full * CIPHER_BLOCK_SIZE as u64 + tail
}

/// Number of blocks of a file of `size` plaintext bytes.
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE as u64)
}

/// Offset of block `block_no` in the backing file.
pub fn block_offset(block_no: u64) -> u64 {
    HEADER_LEN as u64 + block_no * CIPHER_BLOCK_SIZE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The on-disk format is plain AES-256-GCM: McGrew–Viega GCM test cases 13 and 14
    /// (all-zero key and nonce; empty and one all-zero block of plaintext).
    #[test]
    fn content_cipher_is_standard_aes_256_gcm() {
        let c = Ciphers {
            content: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0u8; 32]).unwrap()),
            names: Aes256SivAead::new_from_slice(&[0u8; 64]).unwrap(),
        };
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let tag = c.seal_in_place(&[0u8; NONCE_LEN], b"", &mut []).unwrap();
        assert_eq!(hex(&tag), "530f8afbc74536b9a963b4f1c4cb738b");
        let mut block = [0u8; 16];
        let tag = c.seal_in_place(&[0u8; NONCE_LEN], b"", &mut block).unwrap();
        assert_eq!(hex(&block), "cea7403d4d606b6e074ec5d3baf39d18");
        assert_eq!(hex(&tag), "d0d1c8a799996bf0265b98b5d48ab919");
        c.open_in_place(&[0u8; NONCE_LEN], b"", &mut block, &tag)
            .unwrap();
        assert_eq!(block, [0u8; 16]);
        let mut bad = tag;
        bad[0] ^= 1;
        assert_eq!(
            c.open_in_place(&[0u8; NONCE_LEN], b"", &mut block, &bad),
            Err(())
        );
    }
}
