//! Guest mode: `mse-enclave` as the init (PID 1) of a VM booted by the VM launcher
//! (`mse_launch::vm`) from the guest image.
//!
//! Boot, in order (any failure prints one line `mse-enclave: <reason>` on the console and powers
//! the VM off, so QEMU exits and the node sees why):
//!
//! 1. [`boot`]: `/proc`, `/sys`, `/dev` (devtmpfs), `/run` in memory; the console on
//!    stdout/stderr; the image's kernel modules ([`MODULES_LIST`]).
//! 2. [`net`]: `lo` and the first Ethernet interface with QEMU user-mode networking's static
//!    address ([`net::GUEST_ADDR`]/24, gateway [`net::GATEWAY`], DNS [`net::DNS`]).
//! 3. [`disks`]: the launcher's read-only disks, found by virtio serial: the spec (its SHA-256
//!    must be `mse.spec=` of `/proc/cmdline`), the code package (copied into memory, then
//!    checked against the spec), the environment (a tar unpacked into memory, then its tree
//!    digest checked against the spec), the owner certificate (owner mode), the sim seed
//!    (simulated TEEs only).
//! 4. [`home`]: the `mse-home` disk (ext4, formatted empty by the host) mounted at
//!    [`home::STATE_DIR`]: the sealed `$HOME`'s backing (mse-sealfs, keyed by a random key made
//!    here at this boot, which never leaves guest memory) lives there, so the host's file holds
//!    only ciphertext.
//! 5. The enclave flow of the process launcher, unchanged: sandbox (the seeds' real paths,
//!    seccomp + audit hook), configuration server on port 443, decryption, the app.

pub mod boot;
pub mod disks;
pub mod home;
pub mod net;

use std::io::Write as _;
use std::path::PathBuf;

pub use boot::MODULES_LIST;

/// Port the guest serves on (the launcher forwards a host loopback port to it).
pub const GUEST_PORT: u16 = mse_launch::vm::GUEST_PORT;

/// Whether this process is the init of a VM (PID 1): guest mode.
pub fn is_init() -> bool {
    rustix::process::getpid().is_init()
}

/// What the guest hands to the enclave flow once every input is checked.
#[derive(Debug)]
pub struct Booted {
    /// The verified launch spec.
    pub spec: mse_launch::LaunchSpec,
    /// Host-local inputs, all in guest memory or on guest-encrypted storage.
    pub inputs: mse_launch::LaunchInputs,
    /// The random per-boot key of the sealed `$HOME`.
    pub home_key: zeroize::Zeroizing<[u8; 32]>,
}

/// Why the guest refuses to start. One line each (printed as `mse-enclave: <reason>`).
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Setting up the guest's own filesystems, console or modules.
    #[error("boot: {0}")]
    Boot(String),
    /// The network.
    #[error("network: {0}")]
    Net(String),
    /// A disk is missing, unreadable or does not match the spec.
    #[error("{0}")]
    Disk(#[from] disks::DiskError),
    /// The encrypted `$HOME`.
    #[error("home: {0}")]
    Home(String),
}

/// Boots the guest up to the point where the enclave flow can run.
pub fn boot() -> Result<Booted, GuestError> {
    boot::early()?;
    init_logging();
    tracing::info!(
        "mse-enclave {} as the VM's init: kernel {}",
        env!("CARGO_PKG_VERSION"),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let loaded = boot::load_modules(std::path::Path::new(MODULES_LIST))?;
    tracing::info!("{loaded} kernel module(s) loaded");
    boot::python_paths()?;
    let found = disks::find_disks(std::path::Path::new("/sys/block"))?;
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| GuestError::Boot(format!("cannot read /proc/cmdline: {e}")))?;
    let expected = disks::spec_hash_from_cmdline(&cmdline)?;
    let spec = disks::read_spec(&found, &expected)?;
    tracing::info!(
        "launch spec {} verified against mse.spec= (app {}, tee {}, {} MB, {} vCPU(s))",
        expected,
        spec.app_id,
        spec.tee,
        spec.memory_mb,
        spec.vcpus
    );
    if !spec.tee.is_simulated() {
        boot::mount_configfs()?;
    }
    let run = PathBuf::from(boot::RUN_DIR);
    let package = disks::copy_package(&found, &spec, &run.join("package.tar"))?;
    tracing::info!(
        "code package verified ({} bytes, sha256 {})",
        spec.package.size,
        spec.package.sha256
    );
    let environment =
        disks::unpack_environment(&found, &spec, std::path::Path::new(disks::ENV_DIR))?;
    tracing::info!(
        "environment verified (tree digest {})",
        spec.environment_sha256
    );
    let owner_certificate = disks::copy_owner_certificate(&found, &spec, &run.join("owner.pem"))?;
    let sim = disks::read_sim(&found, &spec, &run.join("sim-seed"))?;
    net::configure()?;
    tracing::info!(
        "network: {}/24 via {}, DNS {}",
        net::GUEST_ADDR,
        net::GATEWAY,
        net::DNS
    );
    let state_dir = home::mount(&found)?;
    let home_key = home::fresh_key()?;
    tracing::info!(
        "$HOME: sealed with a key made at this boot, stored (ciphertext only) on the mse-home disk"
    );
    Ok(Booted {
        inputs: mse_launch::LaunchInputs {
            package,
            environment,
            owner_certificate,
            host: "0.0.0.0".into(),
            port: GUEST_PORT,
            state_dir,
            sim_seed: sim,
            config_timeout_secs: None,
        },
        spec,
        home_key,
    })
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
}

/// Prints the one-line reason on the console and powers the VM off.
pub fn fatal(reason: &str) -> ! {
    let line = reason.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "mse-enclave: {line}");
    power_off()
}

/// Flushes filesystems and powers the VM off (QEMU exits). Never returns.
pub fn power_off() -> ! {
    let _ = std::io::stderr().flush();
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    // Not PID 1 or not allowed: nothing else to do but end.
    std::process::exit(1)
}

/// The whole life of a VM enclave: boot, then the enclave flow; never returns (the VM powers
/// off at the end, with `mse-enclave: <reason>` on the console on failure).
pub fn main() -> ! {
    let booted = match boot() {
        Ok(b) => b,
        Err(e) => fatal(&e.to_string()),
    };
    match crate::run::run_guest(booted) {
        Ok(()) => {
            tracing::info!("enclave stopped: powering off");
            power_off()
        }
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            fatal(&chain.join(": "))
        }
    }
}
