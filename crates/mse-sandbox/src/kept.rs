//! The host paths the runtime keeps visible inside the sandbox (its virtualenv, its package, the
//! Python installation): opened before the app's directories are mounted over them, then
//! bind-mounted under [`RUNTIME_DIR`] or in place.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Where the app's directories are mounted inside the namespace, hiding what the host has there.
pub(crate) const OVERMOUNTED: [&str; 4] = ["/root", "/tmp", "/mse-app", "/key"];

/// Where the paths the caller keeps visible are bind-mounted inside the namespace: under this
/// directory, at their host path (`/tmp/x/.venv` is reachable at `/mse-runtime/tmp/x/.venv`),
/// so that the app's `/tmp` and `/root` stay its own, empty at start, wherever the project or
/// its virtualenvs live. [`crate::Sandbox::runtime_path`] maps a kept path to where it is reachable.
pub const RUNTIME_DIR: &str = "/mse-runtime";

/// Size of the tmpfs at [`RUNTIME_DIR`] (it holds only mount-point directories).
pub(crate) const RUNTIME_DIR_BYTES: u64 = 1024 * 1024;

/// A host path under an overmounted directory that must stay visible.
pub(crate) struct Kept {
    /// The path as the caller gave it.
    pub(crate) given: PathBuf,
    /// Its canonical form.
    pub(crate) path: PathBuf,
    /// O_PATH descriptor opened before the mounts hide the path.
    pub(crate) fd: OwnedFd,
    pub(crate) is_dir: bool,
    /// Bind-mounted under [`RUNTIME_DIR`] (the caller's paths); else in place (the Python
    /// installation, which virtualenvs name by path in their `pyvenv.cfg`).
    pub(crate) relocated: bool,
}

impl Kept {
    /// Where the runtime reaches it inside the namespace.
    pub(crate) fn target(&self) -> PathBuf {
        if self.relocated {
            relocated(&self.path)
        } else {
            self.path.clone()
        }
    }
}

/// `path` (absolute) under [`RUNTIME_DIR`].
pub(crate) fn relocated(path: &Path) -> PathBuf {
    Path::new(RUNTIME_DIR).join(path.strip_prefix("/").unwrap_or(path))
}

/// The libpython mapped into this process (from `/proc/self/maps`).
pub fn loaded_libpython() -> Option<PathBuf> {
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.splitn(6, char::is_whitespace).nth(5).map(str::trim))
        .map(Path::new)
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libpython"))
        })
        .map(Path::to_path_buf)
}

/// The installation prefix of the libpython mapped into this process (`<prefix>/lib/libpython…`).
pub(crate) fn python_prefix() -> Option<PathBuf> {
    let lib = loaded_libpython()?;
    Some(lib.parent()?.parent()?.to_path_buf())
}

/// Opens the paths (that exist and lie strictly under an overmounted directory) to keep: each
/// with whether it is relocated under [`RUNTIME_DIR`]. A path inside one kept before is
/// reachable through it and skipped.
pub(crate) fn open_kept(paths: &[(PathBuf, bool)]) -> Vec<Kept> {
    let mut kept: Vec<Kept> = Vec::new();
    for (p, relocate) in paths {
        let Ok(path) = p.canonicalize() else {
            tracing::warn!("sandbox: {} does not exist, not kept visible", p.display());
            continue;
        };
        let under = OVERMOUNTED
            .iter()
            .any(|t| path.starts_with(t) && path != Path::new(t));
        if !under || kept.iter().any(|k| path.starts_with(&k.path)) {
            continue;
        }
        let Ok(md) = fs::metadata(&path) else {
            continue;
        };
        match rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => kept.push(Kept {
                given: p.clone(),
                path,
                fd,
                is_dir: md.is_dir(),
                relocated: *relocate,
            }),
            Err(e) => tracing::warn!("sandbox: cannot open {}: {e}", path.display()),
        }
    }
    kept
}
