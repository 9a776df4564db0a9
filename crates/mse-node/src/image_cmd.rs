//! `mse-node image build`: the reproducible guest image of VM enclaves (mse_launch::image).

use std::path::PathBuf;

use clap::Subcommand;
use mse_launch::image::{self, BuildOptions, LockMode};

/// `mse-node image …`
#[derive(Subcommand)]
pub enum ImageCmd {
    /// Build vmlinuz, initrd.img and image.json into --out from image/packages and image/lock.
    Build {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The package lock (committed).
        #[arg(long, default_value = "image/lock")]
        lock: PathBuf,
        /// The package recipe.
        #[arg(long, default_value = "image/packages")]
        packages: PathBuf,
        /// The kernel modules list.
        #[arg(long, default_value = "image/modules")]
        modules: PathBuf,
        /// The mse-enclave binary that becomes the guest's /init.
        #[arg(long, default_value = "target/debug/mse-enclave")]
        enclave: PathBuf,
        /// Cache of downloaded .debs and of the private apt ($MSE_IMAGE_CACHE or
        /// ~/.cache/mse/image).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Resolve the packages afresh from Debian and rewrite the lock.
        #[arg(long, conflicts_with = "update_lock_if_moved")]
        update_lock: bool,
        /// Build the lock if Debian still has every locked version, else resolve afresh, rewrite
        /// the lock and warn ("image lock moved: …"). What `make image` uses.
        #[arg(long)]
        update_lock_if_moved: bool,
    },
}

/// Runs an `image` subcommand.
pub fn run(cmd: ImageCmd) -> anyhow::Result<()> {
    match cmd {
        ImageCmd::Build {
            out,
            lock,
            packages,
            modules,
            enclave,
            cache,
            update_lock,
            update_lock_if_moved,
        } => {
            let opts = BuildOptions {
                out,
                recipe: packages,
                lock,
                modules,
                enclave,
                cache: cache.unwrap_or_else(image::default_cache),
                lock_mode: if update_lock {
                    LockMode::Update
                } else if update_lock_if_moved {
                    LockMode::UpdateIfMoved
                } else {
                    LockMode::Locked
                },
            };
            let started = std::time::Instant::now();
            let report = image::build(&opts, &mut |line| eprintln!("mse-node image: {line}"))?;
            let m = &report.manifest;
            eprintln!(
                "mse-node image: built in {:.1} s: kernel {} ({} bytes), initrd {} bytes, {} packages, {} modules",
                started.elapsed().as_secs_f64(),
                m.kernel_version,
                report.kernel_size,
                report.initrd_size,
                m.packages.len(),
                m.modules.len()
            );
            println!("kernel_sha256 {}", m.kernel_sha256);
            println!("initrd_sha256 {}", m.initrd_sha256);
            println!("image_sha256 {}", report.image_sha256);
            Ok(())
        }
    }
}
