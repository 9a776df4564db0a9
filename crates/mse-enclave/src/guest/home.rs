//! The encrypted `$HOME` of a VM enclave.
//!
//! The host attaches `mse-home`: a sparse file of the seeds' 10 GB, formatted by the host as an
//! empty ext4 (no journal: `$HOME` is erased at stop, so nothing needs replaying). The guest
//! mounts it at [`STATE_DIR`] and the sandbox puts mse-sealfs (files encrypted and
//! integrity-protected, names included) on top of a directory there for `/root`, keyed by a key
//! drawn from the guest kernel's CSPRNG at this boot ([`fresh_key`]). The key never leaves guest
//! memory, so the host's file holds ext4 metadata and sealfs ciphertext only; a host that alters
//! it gets EIO in the app, never altered plaintext. Why sealfs rather than dm-crypt: it is
//! already the process launcher's `$HOME` (one implementation, one set of tests, the same quota
//! and wipe-at-stop), it authenticates every block (dm-crypt alone does not) and needs no
//! device-mapper set-up code or `cryptsetup` in the image.

use std::path::PathBuf;

use rustix::mount::MountFlags;
use zeroize::Zeroizing;

use super::GuestError;
use super::disks::Disks;

/// Where the `mse-home` disk is mounted: the sandbox's state directory.
pub const STATE_DIR: &str = "/mse-home";

/// Mounts the `mse-home` disk at [`STATE_DIR`] and returns that path.
pub fn mount(disks: &Disks) -> Result<PathBuf, GuestError> {
    let disk = disks
        .get(mse_launch::vm::abi::SERIAL_HOME)
        .ok_or_else(|| GuestError::Home("no mse-home disk attached".into()))?;
    std::fs::create_dir_all(STATE_DIR)
        .map_err(|e| GuestError::Home(format!("cannot create {STATE_DIR}: {e}")))?;
    rustix::mount::mount(
        &disk.dev,
        STATE_DIR,
        "ext4",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::NOATIME,
        // The host formats with lazy inode tables: do not zero them in the background (slow
        // under emulation, and nothing is ever read from an unused inode).
        c"noinit_itable",
    )
    .map_err(|e| GuestError::Home(format!("cannot mount the mse-home disk as ext4: {e}")))?;
    Ok(PathBuf::from(STATE_DIR))
}

/// A fresh 32-byte key from the kernel's CSPRNG (blocks until it is seeded).
pub fn fresh_key() -> Result<Zeroizing<[u8; 32]>, GuestError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let mut filled = 0;
    while filled < key.len() {
        let n = rustix::rand::getrandom(&mut key[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| GuestError::Home(format!("getrandom: {e}")))?;
        filled += n;
    }
    Ok(key)
}
