//! The reproducible guest image of VM enclaves: Debian's cloud kernel, the Debian packages the
//! guest needs (pinned by `image/lock`), a few kernel modules and `mse-enclave` as `/init`,
//! assembled into `vmlinuz` + `initrd.img` + `image.json`. The same commit and lock give the same
//! bytes in any directory: the SHA-256 of `image.json` (which holds the kernel's and initrd's
//! digests) is the image's identity, `runtime.vm.image_sha256` in a LaunchSpec. See docs/image.md.

pub mod apt;
pub mod initramfs;
pub mod kmod;
pub mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use self::apt::Apt;
use self::initramfs::{Kind, Node, Tree};
pub use self::lock::{Lock, LockedPackage, Recipe};
use crate::Digest32;

/// `image.json`'s format version.
pub const MANIFEST_VERSION: u32 = 1;

/// The placeholder in [`ImageManifest::cmdline`] replaced by the LaunchSpec's SHA-256 (hex).
pub const SPEC_PLACEHOLDER: &str = "{spec}";

/// The guest kernel command line. `quiet`: under emulation every console byte is slow, and the
/// serial console carries the runtime's and the app's output, not the kernel's chatter.
/// `panic=-1`: a panicking guest reboots at once, which QEMU (`-no-reboot`) turns into an exit.
pub const CMDLINE_TEMPLATE: &str = "console=ttyS0 quiet panic=-1 mse.spec={spec}";

/// Where, inside the guest, the module load order is written (one absolute path per line).
pub const GUEST_MODULES_FILE: &str = "etc/mse-image/modules";

/// `image.json`: what a VM enclave boots, by digest. Its bytes (as [`ImageManifest::to_bytes`]
/// writes them) hash to the image identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageManifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// SHA-256 of `vmlinuz`.
    pub kernel_sha256: String,
    /// SHA-256 of `initrd.img`.
    pub initrd_sha256: String,
    /// The kernel command line, with [`SPEC_PLACEHOLDER`] where the spec hash goes.
    pub cmdline: String,
    /// The kernel release (`uname -r` in the guest).
    pub kernel_version: String,
    /// Kernel modules, absolute guest paths (uncompressed `.ko`), in load order.
    pub modules: Vec<String>,
    /// SHA-256 of the `image/lock` bytes the image was built from.
    pub lock_sha256: String,
    /// Every Debian package in the image (the kernel's included), sorted by name.
    pub packages: Vec<LockedPackage>,
}

impl ImageManifest {
    /// The canonical bytes: pretty JSON in field order, with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        v.push(b'\n');
        v
    }

    /// Parses `image.json` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ImageManifest, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::Manifest(e.to_string()))
    }

    /// The image identity: SHA-256 (hex) of [`ImageManifest::to_bytes`].
    pub fn sha256(&self) -> String {
        Digest32::of(&self.to_bytes()).to_hex()
    }

    /// Reads `dir/image.json` and checks `dir/vmlinuz` and `dir/initrd.img` against its digests
    /// (what a launcher does before booting, and a client with files fetched from a node).
    /// Returns the manifest and the image identity (SHA-256 of the `image.json` bytes).
    pub fn load_verified(dir: &Path) -> Result<(ImageManifest, String), ImageError> {
        let path = dir.join("image.json");
        let bytes = std::fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
        let m = ImageManifest::from_bytes(&bytes)?;
        for (file, expected) in [
            ("vmlinuz", &m.kernel_sha256),
            ("initrd.img", &m.initrd_sha256),
        ] {
            let p = dir.join(file);
            let actual =
                Digest32::of(&std::fs::read(&p).map_err(|e| ImageError::io(&p, e))?).to_hex();
            if &actual != expected {
                return Err(ImageError::FileDigest {
                    file: p.display().to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok((m, Digest32::of(&bytes).to_hex()))
    }

    /// The command line of one app's VM: the template with the spec hash in place.
    pub fn cmdline_for(&self, spec_sha256_hex: &str) -> String {
        self.cmdline.replace(SPEC_PLACEHOLDER, spec_sha256_hex)
    }
}

/// What went wrong building the image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `image/packages` is malformed.
    #[error("{path}:{line}: {msg}")]
    Recipe {
        /// The file.
        path: String,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// `image/lock` is malformed.
    #[error("{path}:{line}: {msg}")]
    Lock {
        /// The file.
        path: String,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The committed lock cannot be built any more (a version left the archive, the recipe
    /// changed): `--update-lock` resolves afresh.
    #[error("image lock moved: {0}")]
    LockMoved(String),
    /// A .deb's SHA-256 is not the locked one.
    #[error("{package} {version}: SHA-256 {actual}, the lock says {expected}")]
    Sha256Mismatch {
        /// Package name.
        package: String,
        /// Version.
        version: String,
        /// From the lock.
        expected: String,
        /// Found.
        actual: String,
    },
    /// apt failed.
    #[error("`{cmd}`: {msg}")]
    Apt {
        /// The command.
        cmd: String,
        /// apt's error lines.
        msg: String,
    },
    /// A .deb could not be read.
    #[error("{package}: {msg}")]
    Deb {
        /// Package name.
        package: String,
        /// What is wrong.
        msg: String,
    },
    /// Two packages put different things at one path.
    #[error("{path} is in both {first} and {second}, differently")]
    Conflict {
        /// Guest path.
        path: String,
        /// First package.
        first: String,
        /// Second package.
        second: String,
    },
    /// The kernel package is not as expected.
    #[error("kernel: {0}")]
    Kernel(String),
    /// A kernel module is missing or unreadable.
    #[error("kernel module {name}: {msg}")]
    Module {
        /// Module name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// An external tool (strip) failed.
    #[error("{tool}: {msg}")]
    Tool {
        /// The tool.
        tool: String,
        /// What happened.
        msg: String,
    },
    /// A build path would end up in the image.
    #[error(
        "{file} contains the build path {prefix}: strip it (or build with --remap-path-prefix)"
    )]
    Leak {
        /// Guest path of the file.
        file: String,
        /// The path found in it.
        prefix: String,
    },
    /// An image file does not have the digest `image.json` gives.
    #[error("{file}: SHA-256 {actual}, image.json says {expected}")]
    FileDigest {
        /// The file.
        file: String,
        /// From image.json.
        expected: String,
        /// Found.
        actual: String,
    },
    /// `image.json` does not parse.
    #[error("image.json: {0}")]
    Manifest(String),
}

impl ImageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// How the build treats the committed lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Build exactly the lock; a version gone from the archive is [`ImageError::LockMoved`].
    Locked,
    /// Resolve afresh and rewrite the lock.
    Update,
    /// The lock if it still builds, else resolve afresh, rewrite it and warn (`image lock moved: …`).
    UpdateIfMoved,
}

/// Inputs of a build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Output directory (created).
    pub out: PathBuf,
    /// `image/packages`.
    pub recipe: PathBuf,
    /// `image/lock` (read, and written when updated).
    pub lock: PathBuf,
    /// `image/modules`: kernel module names, one per line.
    pub modules: PathBuf,
    /// The `mse-enclave` binary that becomes `/init`.
    pub enclave: PathBuf,
    /// Cache of the private apt and of downloaded .debs.
    pub cache: PathBuf,
    /// Lock policy.
    pub lock_mode: LockMode,
}

impl BuildOptions {
    /// The defaults for a workspace at `root`: `image/packages`, `image/lock`, `image/modules`,
    /// `target/debug/mse-enclave`, the cache `$MSE_IMAGE_CACHE` or `~/.cache/mse/image`.
    pub fn for_workspace(root: &Path, out: PathBuf) -> BuildOptions {
        BuildOptions {
            out,
            recipe: root.join("image/packages"),
            lock: root.join("image/lock"),
            modules: root.join("image/modules"),
            enclave: root.join("target/debug/mse-enclave"),
            cache: default_cache(),
            lock_mode: LockMode::Locked,
        }
    }
}

/// `$MSE_IMAGE_CACHE`, else `$HOME/.cache/mse/image`.
pub fn default_cache() -> PathBuf {
    if let Some(c) = std::env::var_os("MSE_IMAGE_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/mse/image")
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The manifest written as `image.json`.
    pub manifest: ImageManifest,
    /// Its SHA-256: the image identity.
    pub image_sha256: String,
    /// Set when the lock was rewritten: why.
    pub lock_updated: Option<String>,
    /// Size of `vmlinuz` in bytes.
    pub kernel_size: u64,
    /// Size of `initrd.img` in bytes.
    pub initrd_size: u64,
}

/// Builds the image into `opts.out`. `log` receives progress lines.
pub fn build(opts: &BuildOptions, log: &mut dyn FnMut(&str)) -> Result<BuildReport, ImageError> {
    let recipe = Recipe::load(&opts.recipe)?;
    let mut apt = Apt::new(&opts.cache);
    let debs_dir = opts.cache.join("debs");
    std::fs::create_dir_all(&debs_dir).map_err(|e| ImageError::io(&debs_dir, e))?;

    let (lock, fetched, lock_updated) = match opts.lock_mode {
        LockMode::Locked => {
            let lock = read_lock(&opts.lock, &recipe)?;
            let debs = fetch(&mut apt, &lock, &debs_dir, log)?;
            (lock, debs, None)
        }
        LockMode::Update => {
            let (lock, debs) = update_lock(&mut apt, &recipe, opts, &debs_dir, log)?;
            (lock, debs, Some("--update-lock".to_string()))
        }
        LockMode::UpdateIfMoved => {
            let attempt = read_lock(&opts.lock, &recipe)
                .and_then(|lock| fetch(&mut apt, &lock, &debs_dir, log).map(|d| (lock, d)));
            match attempt {
                Ok((lock, debs)) => (lock, debs, None),
                Err(ImageError::LockMoved(why)) => {
                    log(&format!(
                        "WARNING: image lock moved: {why}; resolving afresh and rewriting {} \
                         (commit it: the image and its digests change)",
                        opts.lock.display()
                    ));
                    let (lock, debs) = update_lock(&mut apt, &recipe, opts, &debs_dir, log)?;
                    (lock, debs, Some(why))
                }
                Err(e) => return Err(e),
            }
        }
    };
    // The lock as committed (or as just rewritten): its bytes are what image.json pins.
    let lock_bytes = std::fs::read(&opts.lock).map_err(|e| ImageError::io(&opts.lock, e))?;

    let kernel_pkg = lock
        .packages
        .iter()
        .find(|p| p.name.starts_with("linux-image-"))
        .ok_or_else(|| ImageError::Kernel("the lock has no linux-image-* package".into()))?;
    let mut tree = Tree::default();
    let mut kernel = None;
    for (pkg, bytes) in &fetched {
        if pkg.name == kernel_pkg.name {
            kernel = Some(kernel_parts(&pkg.name, bytes)?);
        } else {
            tree.add_deb(&pkg.name, bytes)?;
        }
    }
    let kernel = kernel.ok_or_else(|| ImageError::Kernel("kernel package not fetched".into()))?;

    // Kernel modules, decompressed, in load order.
    let wanted = read_list(&opts.modules)?;
    let builtin = kernel
        .files
        .get("modules.builtin")
        .map(|b| kmod::parse_builtin(&String::from_utf8_lossy(b)))
        .unwrap_or_default();
    let modules = kmod::select(&wanted, &kernel.files, &builtin)?;
    let mod_root = format!("usr/lib/modules/{}", kernel.version);
    let mut guest_paths = Vec::new();
    for m in &modules {
        tree.insert(
            &format!("{mod_root}/{}", m.path),
            node(Kind::File(m.data.clone()), 0o644),
        )?;
        guest_paths.push(format!("/lib/modules/{}/{}", kernel.version, m.path));
    }
    let list: String = guest_paths.iter().map(|p| format!("{p}\n")).collect();
    tree.insert(
        GUEST_MODULES_FILE,
        node(Kind::File(list.into_bytes()), 0o644),
    )?;

    add_base(&mut tree)?;
    let init = strip(&opts.enclave)?;
    leak_check("/init", &init, &build_paths(opts))?;
    tree.insert("init", node(Kind::File(init), 0o755))?;

    let initrd = tree.to_cpio()?;
    let manifest = ImageManifest {
        version: MANIFEST_VERSION,
        kernel_sha256: Digest32::of(&kernel.vmlinuz).to_hex(),
        initrd_sha256: Digest32::of(&initrd).to_hex(),
        cmdline: CMDLINE_TEMPLATE.to_string(),
        kernel_version: kernel.version.clone(),
        modules: guest_paths,
        lock_sha256: Digest32::of(&lock_bytes).to_hex(),
        packages: lock.packages.clone(),
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| ImageError::io(&opts.out, e))?;
    write_atomic(&opts.out.join("vmlinuz"), &kernel.vmlinuz)?;
    write_atomic(&opts.out.join("initrd.img"), &initrd)?;
    write_atomic(&opts.out.join("image.json"), &manifest.to_bytes())?;
    Ok(BuildReport {
        image_sha256: manifest.sha256(),
        manifest,
        lock_updated,
        kernel_size: kernel.vmlinuz.len() as u64,
        initrd_size: initrd.len() as u64,
    })
}

fn node(kind: Kind, mode: u32) -> Node {
    Node {
        kind,
        mode,
        origin: "mse".into(),
    }
}

/// What the guest needs beyond the packages: the merged-/usr symlinks, mount points, the console
/// device, the CA bundle (Debian builds it in a maintainer script, which never runs here), and
/// minimal account and host files.
fn add_base(tree: &mut Tree) -> Result<(), ImageError> {
    for top in initramfs::MERGED_USR {
        tree.insert(top, node(Kind::Symlink(format!("usr/{top}")), 0o777))?;
    }
    for (dir, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("mnt", 0o755),
    ] {
        tree.insert(dir, node(Kind::Dir, mode))?;
    }
    tree.insert("dev/console", node(Kind::CharDev(5, 1), 0o600))?;
    tree.insert("dev/null", node(Kind::CharDev(1, 3), 0o666))?;
    // update-ca-certificates' result: every certificate of the package, in name order.
    let mut bundle = Vec::new();
    let certs: Vec<(&String, &Node)> = tree
        .iter()
        .filter(|(p, _)| p.starts_with("usr/share/ca-certificates/") && p.ends_with(".crt"))
        .collect();
    for (_, n) in certs {
        if let Kind::File(d) = &n.kind {
            bundle.extend_from_slice(d);
            if !bundle.ends_with(b"\n") {
                bundle.push(b'\n');
            }
        }
    }
    if bundle.is_empty() {
        return Err(ImageError::Deb {
            package: "ca-certificates".into(),
            msg: "no certificate under /usr/share/ca-certificates".into(),
        });
    }
    tree.insert(
        "etc/ssl/certs/ca-certificates.crt",
        node(Kind::File(bundle), 0o644),
    )?;
    for (path, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/init\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        ("etc/hostname", "mse-enclave\n"),
    ] {
        tree.insert(path, node(Kind::File(text.as_bytes().to_vec()), 0o644))?;
    }
    Ok(())
}

struct KernelParts {
    version: String,
    vmlinuz: Vec<u8>,
    /// Paths under lib/modules/<version>/ → bytes as shipped.
    files: BTreeMap<String, Vec<u8>>,
}

fn kernel_parts(package: &str, deb: &[u8]) -> Result<KernelParts, ImageError> {
    let mut vmlinuz = None;
    let mut files = BTreeMap::new();
    let mut version = None;
    for e in initramfs::read_deb(package, deb)? {
        let initramfs::DebKind::Plain(Kind::File(data)) = e.kind else {
            continue;
        };
        if let Some(v) = e.path.strip_prefix("boot/vmlinuz-") {
            version = Some(v.to_string());
            vmlinuz = Some(data);
        } else if let Some(rest) = e.path.strip_prefix("lib/modules/") {
            if let Some((_, rel)) = rest.split_once('/') {
                files.insert(rel.to_string(), data);
            }
        }
    }
    match (version, vmlinuz) {
        (Some(version), Some(vmlinuz)) => Ok(KernelParts {
            version,
            vmlinuz,
            files,
        }),
        _ => Err(ImageError::Kernel(format!(
            "{package} has no /boot/vmlinuz-*"
        ))),
    }
}

fn read_lock(path: &Path, recipe: &Recipe) -> Result<Lock, ImageError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::LockMoved(format!(
                "{} does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(ImageError::io(path, e)),
    };
    let lock = Lock::parse(path, &bytes)?;
    if lock.recipe_sha256 != recipe.sha256 {
        return Err(ImageError::LockMoved(format!(
            "{} was resolved from another image/packages (recipe SHA-256 {}, now {})",
            path.display(),
            lock.recipe_sha256,
            recipe.sha256
        )));
    }
    Ok(lock)
}

fn update_lock(
    apt: &mut Apt,
    recipe: &Recipe,
    opts: &BuildOptions,
    debs_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(Lock, Fetched), ImageError> {
    log(&format!(
        "resolving {} afresh (apt-get update)",
        opts.recipe.display()
    ));
    apt.update()?;
    let mut wanted = apt.resolve(&recipe.roots)?;
    wanted.push(apt.kernel_package(&recipe.kernel)?);
    wanted.sort();
    let uris = apt.uris(&wanted)?;
    let mut packages: Vec<LockedPackage> = uris
        .into_iter()
        .map(|u| LockedPackage {
            name: u.name,
            version: u.version,
            sha256: u.sha256,
        })
        .collect();
    packages.sort();
    packages.dedup();
    let lock = Lock {
        recipe_sha256: recipe.sha256.clone(),
        packages,
    };
    let debs = fetch(apt, &lock, debs_dir, log)?;
    write_atomic(&opts.lock, &lock.to_bytes())?;
    log(&format!(
        "wrote {} ({} packages)",
        opts.lock.display(),
        lock.packages.len()
    ));
    Ok((lock, debs))
}

/// Every locked package with its .deb's bytes, in lock order.
type Fetched = Vec<(LockedPackage, Vec<u8>)>;

/// Every locked .deb, from the cache (`debs/<sha256>.deb`, hash checked on every use) or
/// downloaded by apt (then checked against the lock before it enters the cache).
fn fetch(
    apt: &mut Apt,
    lock: &Lock,
    debs_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Fetched, ImageError> {
    let mut have: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut missing = Vec::new();
    for p in &lock.packages {
        let path = debs_dir.join(format!("{}.deb", p.sha256));
        match std::fs::read(&path) {
            Ok(b) if Digest32::of(&b).to_hex() == p.sha256 => {
                have.insert(p.name.clone(), b);
            }
            Ok(_) => {
                log(&format!(
                    "cached {} is corrupt: downloading it again",
                    path.display()
                ));
                std::fs::remove_file(&path).map_err(|e| ImageError::io(&path, e))?;
                missing.push(p.clone());
            }
            Err(_) => missing.push(p.clone()),
        }
    }
    if !missing.is_empty() {
        log(&format!("downloading {} Debian packages", missing.len()));
        apt.update()?;
        let pairs: Vec<(String, String)> = missing
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        let uris = match apt.uris(&pairs) {
            Ok(u) => u,
            Err(ImageError::Apt { msg, .. }) => return Err(ImageError::LockMoved(msg)),
            Err(e) => return Err(e),
        };
        for p in &missing {
            let u = uris
                .iter()
                .find(|u| u.name == p.name && u.version == p.version)
                .expect("apt.uris checks every package has a location");
            if u.sha256 != p.sha256 {
                return Err(ImageError::Sha256Mismatch {
                    package: p.name.clone(),
                    version: p.version.clone(),
                    expected: p.sha256.clone(),
                    actual: u.sha256.clone(),
                });
            }
        }
        let tmp = debs_dir.join(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| ImageError::io(&tmp, e))?;
        let result = apt.download(&missing, &tmp).and_then(|()| {
            for p in &missing {
                let u = uris
                    .iter()
                    .find(|u| u.name == p.name && u.version == p.version);
                let file = tmp.join(&u.expect("checked above").filename);
                let b = std::fs::read(&file).map_err(|e| ImageError::io(&file, e))?;
                let actual = Digest32::of(&b).to_hex();
                if actual != p.sha256 {
                    return Err(ImageError::Sha256Mismatch {
                        package: p.name.clone(),
                        version: p.version.clone(),
                        expected: p.sha256.clone(),
                        actual,
                    });
                }
                let dest = debs_dir.join(format!("{}.deb", p.sha256));
                std::fs::rename(&file, &dest).map_err(|e| ImageError::io(&dest, e))?;
                have.insert(p.name.clone(), b);
            }
            Ok(())
        });
        let _ = std::fs::remove_dir_all(&tmp);
        result?;
    }
    // The digest pins the bytes; the control file says which package and version they are, so a
    // lock line cannot pair a version with another version's digest.
    let mut out = Vec::new();
    for p in &lock.packages {
        let bytes = have.remove(&p.name).expect("every package fetched");
        let (name, version) = initramfs::deb_identity(&p.name, &bytes)?;
        if name != p.name || version != p.version {
            return Err(ImageError::Deb {
                package: p.name.clone(),
                msg: format!(
                    "the .deb with SHA-256 {} is {name} {version}, the lock says {} {}",
                    p.sha256, p.name, p.version
                ),
            });
        }
        out.push((p.clone(), bytes));
    }
    Ok(out)
}

/// A copy of the binary without debug information (which holds absolute build paths) nor GNU
/// build ID.
fn strip(enclave: &Path) -> Result<Vec<u8>, ImageError> {
    let tmp = std::env::temp_dir().join(format!("mse-image-init-{}", std::process::id()));
    let out = Command::new("strip")
        .arg("--strip-debug")
        // The GNU build ID is a hash of the unstripped file, debug info (and its paths) included:
        // the one thing that differs between two builds of the same sources in two directories.
        .arg("--remove-section=.note.gnu.build-id")
        .arg("-o")
        .arg(&tmp)
        .arg(enclave)
        .output()
        .map_err(|e| ImageError::Tool {
            tool: "strip (binutils)".into(),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ImageError::Tool {
            tool: format!("strip {}", enclave.display()),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let b = std::fs::read(&tmp).map_err(|e| ImageError::io(&tmp, e));
    let _ = std::fs::remove_file(&tmp);
    b
}

/// Directories whose absolute paths must not appear in the image: the workspace the enclave
/// binary was built in, the current directory, the output directory.
fn build_paths(opts: &BuildOptions) -> Vec<String> {
    let mut v = BTreeSet::new();
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(ws) = abs(&opts.enclave)
        .ancestors()
        .find(|a| a.join("Cargo.lock").exists())
    {
        v.insert(ws.display().to_string());
    }
    if let Ok(cwd) = std::env::current_dir() {
        v.insert(cwd.display().to_string());
    }
    v.insert(abs(&opts.out).display().to_string());
    // "/" or "/root" would match everything's neighbours: only check specific enough paths.
    v.into_iter()
        .filter(|p| p.matches('/').count() >= 2)
        .collect()
}

fn leak_check(file: &str, bytes: &[u8], prefixes: &[String]) -> Result<(), ImageError> {
    for p in prefixes {
        let needle = format!("{p}/");
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Err(ImageError::Leak {
                file: file.into(),
                prefix: p.clone(),
            });
        }
    }
    Ok(())
}

/// Non-comment, non-empty lines of a list file, trimmed.
fn read_list(path: &Path) -> Result<Vec<String>, ImageError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImageError::io(path, e))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| ImageError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ImageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ImageManifest {
        ImageManifest {
            version: 1,
            kernel_sha256: "k".into(),
            initrd_sha256: "i".into(),
            cmdline: CMDLINE_TEMPLATE.into(),
            kernel_version: "6.12".into(),
            modules: vec!["/lib/modules/6.12/kernel/a.ko".into()],
            lock_sha256: "l".into(),
            packages: vec![LockedPackage {
                name: "libc6".into(),
                version: "2.36".into(),
                sha256: "s".into(),
            }],
        }
    }

    #[test]
    fn manifest_bytes_are_canonical_and_round_trip() {
        let m = manifest();
        let b = m.to_bytes();
        assert!(
            String::from_utf8_lossy(&b)
                .starts_with("{\n  \"version\": 1,\n  \"kernel_sha256\": \"k\",")
        );
        assert_eq!(ImageManifest::from_bytes(&b).unwrap(), m);
        assert_eq!(m.sha256(), Digest32::of(&b).to_hex());
        assert_eq!(
            m.cmdline_for("ab12"),
            "console=ttyS0 quiet panic=-1 mse.spec=ab12"
        );
        let e = ImageManifest::from_bytes(b"{\"version\":1,\"extra\":0}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("image.json: unknown field `extra`"),
            "{e}"
        );
    }

    #[test]
    fn leak_check_names_the_path() {
        let e = leak_check("/init", b"xx/work/a/b/src/x.rs", &["/work/a".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/init contains the build path /work/a: strip it (or build with --remap-path-prefix)"
        );
        leak_check("/init", b"/work/ab/c", &["/work/a".into()]).unwrap();
    }
}
