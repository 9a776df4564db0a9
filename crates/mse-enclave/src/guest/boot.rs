//! The guest's own filesystems, console, kernel modules and Python paths.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, mount};

use super::GuestError;

/// The image's list of kernel modules to load, in order: one path per line (absolute, or
/// relative to `/lib/modules/<release>/`); blank lines and `#` comments ignored. Written by the
/// image builder (docs/image.md).
pub const MODULES_LIST: &str = "/etc/mse-image/modules";

/// In-memory directory for the guest's copies of its inputs (package, sim seed, certificate).
pub const RUN_DIR: &str = "/run/mse";

/// Flag of finit_module(2): the file is compressed (xz/zstd), the kernel decompresses it.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

fn boot_err(what: impl std::fmt::Display) -> GuestError {
    GuestError::Boot(what.to_string())
}

fn mkdir(path: &str, mode: u32) -> Result<(), GuestError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| boot_err(format!("cannot create {path}: {e}")))
}

fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: &std::ffi::CStr,
) -> Result<(), GuestError> {
    mkdir(target, 0o755)?;
    match mount(source, target, fstype, flags, data) {
        Ok(()) => Ok(()),
        // Already there (the kernel's devtmpfs automount, a second boot step): fine.
        Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(e) => Err(boot_err(format!("cannot mount {fstype} on {target}: {e}"))),
    }
}

/// `/proc`, `/sys`, `/dev` (devtmpfs), `/dev/pts`, `/run` (tmpfs); the console on
/// stdin/stdout/stderr (the initramfs may have no `/dev/console`, and then the kernel started
/// init with no descriptors at all).
pub fn early() -> Result<(), GuestError> {
    let hard = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_fs("proc", "/proc", "proc", hard, c"")?;
    mount_fs("sysfs", "/sys", "sysfs", hard, c"")?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MountFlags::NOSUID,
        c"mode=0755",
    )?;
    mount_fs("tmpfs", "/run", "tmpfs", hard, c"mode=0755,size=50%")?;
    mkdir(RUN_DIR, 0o700)?;
    let console = rustix::fs::open("/dev/console", OFlags::RDWR | OFlags::NOCTTY, Mode::empty())
        .map_err(|e| boot_err(format!("cannot open /dev/console: {e}")))?;
    let _ = rustix::stdio::dup2_stdin(&console);
    let _ = rustix::stdio::dup2_stdout(&console);
    let _ = rustix::stdio::dup2_stderr(&console);
    // Tools and libraries expect these; the initramfs may lack them.
    mkdir("/etc", 0o755)?;
    if !Path::new("/etc/hosts").exists() {
        fs::write("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
            .map_err(|e| boot_err(format!("cannot write /etc/hosts: {e}")))?;
    }
    Ok(())
}

/// The module paths of `list` (see [`MODULES_LIST`]), resolved against `base`.
pub fn parse_module_list(list: &str, base: &Path) -> Vec<PathBuf> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let p = Path::new(l);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        })
        .collect()
}

/// Loads the modules listed in `list_path`, in order. A module already present (built in, or
/// loaded) is fine; any other failure is fatal: a missing driver means a missing disk later,
/// with a less clear message. Returns how many were loaded.
pub fn load_modules(list_path: &Path) -> Result<usize, GuestError> {
    let list = match fs::read_to_string(list_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::info!(
                "no {} in the image: no kernel module to load",
                list_path.display()
            );
            return Ok(0);
        }
        Err(e) => {
            return Err(boot_err(format!(
                "cannot read {}: {e}",
                list_path.display()
            )));
        }
    };
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let base = Path::new("/lib/modules").join(release.trim());
    let mut loaded = 0;
    for path in parse_module_list(&list, &base) {
        let file = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| boot_err(format!("kernel module {}: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let flags = if name.ends_with(".xz") || name.ends_with(".zst") || name.ends_with(".gz") {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        match rustix::system::finit_module(&file, c"", flags) {
            Ok(()) => loaded += 1,
            Err(rustix::io::Errno::EXIST) => {}
            // The TEE guest drivers (sev-guest, tdx-guest) find no device outside their TEE.
            Err(rustix::io::Errno::NODEV) => {
                tracing::info!("kernel module {}: no such device here", name);
            }
            Err(e) => {
                return Err(boot_err(format!(
                    "cannot load kernel module {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(loaded)
}

/// Mounts configfs at `/sys/kernel/config`, where configfs-tsm (the SEV-SNP / TDX attester)
/// lives. Only for a real TEE: the simulated one refuses to run where a TSM interface exists.
pub fn mount_configfs() -> Result<(), GuestError> {
    mount_fs(
        "configfs",
        "/sys/kernel/config",
        "configfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"",
    )
}

/// The directory of the libpython `mse-wsgi` was built against (the build interpreter's).
const BUILT_PYTHON_LIBDIR: &str = env!("MSE_ENCLAVE_PYTHON_LIBDIR");

/// The directory of the libpython mapped into this process.
fn loaded_libpython_dir() -> Option<PathBuf> {
    mse_sandbox::loaded_libpython()?
        .parent()
        .map(Path::to_path_buf)
}

/// mse-wsgi refuses a libpython loaded from another directory than the build interpreter's
/// (a same-SONAME library of another installation). In the guest the image's libpython (Debian's,
/// `/usr/lib/x86_64-linux-gnu`) is the only one; when the runtime was built against another
/// installation (e.g. a pyenv under `/root`), the build directory is made a link to the image's,
/// so that the check compares the same directory. Called at boot and again once the sandbox has
/// mounted the app's directories: a build directory under `/root` then lives in the sealed
/// `$HOME` (a symbolic link there, nothing else).
pub fn python_paths() -> Result<(), GuestError> {
    let built = Path::new(BUILT_PYTHON_LIBDIR);
    if BUILT_PYTHON_LIBDIR.is_empty() || built.exists() {
        return Ok(());
    }
    let Some(loaded) = loaded_libpython_dir() else {
        return Ok(());
    };
    if let Some(parent) = built.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| boot_err(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::os::unix::fs::symlink(&loaded, built).map_err(|e| {
        boot_err(format!(
            "cannot link {} to {}: {e}",
            built.display(),
            loaded.display()
        ))
    })?;
    tracing::info!(
        "libpython: {} (the build interpreter's directory) links to {}",
        built.display(),
        loaded.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_list_resolves_relative_paths_and_skips_comments() {
        let list = "# virtio\nkernel/drivers/block/virtio_blk.ko.xz\n\n  /lib/x/fuse.ko  \n";
        assert_eq!(
            parse_module_list(list, Path::new("/lib/modules/6.12")),
            vec![
                PathBuf::from("/lib/modules/6.12/kernel/drivers/block/virtio_blk.ko.xz"),
                PathBuf::from("/lib/x/fuse.ko"),
            ]
        );
    }
}
