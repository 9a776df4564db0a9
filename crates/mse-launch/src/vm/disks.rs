//! The host side of the guest's disks, built in `<state_dir>/vm/` at launch and deleted at
//! stop. The host only attaches them: the guest checks each against the spec.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::abi::{self, SimDisk};
use super::qemu::DiskArg;
use crate::{LaunchError, LaunchInputs, LaunchSpec, TlsSpec};

/// The directory of the disks inside the app's state dir.
pub const DISK_DIR: &str = "vm";

fn io(what: String) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Io { what, source }
}

/// Writes `bytes` zero-padded to whole sectors.
fn write_padded(path: &Path, bytes: &[u8]) -> Result<(), LaunchError> {
    let mut data = bytes.to_vec();
    data.resize(abi::padded_len(bytes.len() as u64) as usize, 0);
    fs::write(path, data).map_err(io(format!("cannot write {}", path.display())))
}

/// Pads an existing file with zeros to whole sectors.
fn pad_file(path: &Path) -> Result<(), LaunchError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let len = file
        .metadata()
        .map_err(io(format!("cannot stat {}", path.display())))?
        .len();
    file.set_len(abi::padded_len(len))
        .map_err(io(format!("cannot pad {}", path.display())))
}

/// The sim seed file (32 raw bytes or 64 hex characters) as 64 hex characters.
pub fn seed_hex(path: &Path) -> Result<String, LaunchError> {
    let bytes = fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
    if bytes.len() == 32 {
        return Ok(hex::encode(bytes));
    }
    let text = String::from_utf8_lossy(bytes.trim_ascii()).to_ascii_lowercase();
    if text.len() == 64 && hex::decode(&text).is_ok() {
        return Ok(text);
    }
    Err(LaunchError::Other(format!(
        "{}: a sim seed is 32 raw bytes or 64 hex characters",
        path.display()
    )))
}

/// Formats `path` (a sparse file of [`abi::HOME_DISK_BYTES`]) as an empty ext4 without a
/// journal, with lazily initialised inode tables (the file stays sparse).
fn make_home(path: &Path, mkfs: &Path) -> Result<(), LaunchError> {
    let file = fs::File::create(path).map_err(io(format!("cannot create {}", path.display())))?;
    file.set_len(abi::HOME_DISK_BYTES)
        .map_err(io(format!("cannot size {}", path.display())))?;
    drop(file);
    let out = Command::new(mkfs)
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal",
            "-m",
            "0",
            "-L",
            "mse-home",
        ])
        .args([
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
        ])
        .arg(path)
        .output()
        .map_err(io(format!("cannot run {}", mkfs.display())))?;
    if !out.status.success() {
        return Err(LaunchError::Other(format!(
            "{} {}: {}",
            mkfs.display(),
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Builds every disk of `spec` in `<inputs.state_dir>/vm/`; returns them in attachment order.
pub fn build(
    spec: &LaunchSpec,
    inputs: &LaunchInputs,
    sim: Option<&SimDisk>,
    mkfs: &Path,
) -> Result<Vec<DiskArg>, LaunchError> {
    let dir = inputs.state_dir.join(DISK_DIR);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let mut disks = Vec::new();
    let mut add = |name: &str, serial: &'static str, read_only: bool| -> PathBuf {
        let path = dir.join(name);
        disks.push(DiskArg {
            path: path.clone(),
            serial,
            read_only,
        });
        path
    };

    write_padded(
        &add("spec.img", abi::SERIAL_SPEC, true),
        &spec.canonical_bytes(),
    )?;

    let code = add("code.img", abi::SERIAL_CODE, true);
    let size = fs::copy(&inputs.package, &code).map_err(io(format!(
        "cannot copy the package {}",
        inputs.package.display()
    )))?;
    if size != spec.package.size {
        return Err(LaunchError::Other(format!(
            "the package {} has {size} bytes, the spec says {}",
            inputs.package.display(),
            spec.package.size
        )));
    }
    pad_file(&code)?;

    let env = add("env.img", abi::SERIAL_ENV, true);
    {
        let file =
            fs::File::create(&env).map_err(io(format!("cannot create {}", env.display())))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        super::envtar::pack(&inputs.environment, &mut w).map_err(|e| {
            LaunchError::Other(format!("environment {}: {e}", inputs.environment.display()))
        })?;
        w.flush()
            .map_err(io(format!("cannot write {}", env.display())))?;
    }
    pad_file(&env)?;

    if let TlsSpec::OwnerCertificateSha256(_) = spec.tls {
        let cert = inputs
            .owner_certificate
            .as_ref()
            .ok_or_else(|| LaunchError::Other("owner mode needs the owner's certificate".into()))?;
        let bytes = fs::read(cert).map_err(io(format!("cannot read {}", cert.display())))?;
        write_padded(&add("cert.img", abi::SERIAL_CERT, true), &bytes)?;
    }

    if let Some(sim) = sim {
        let json = serde_json::to_vec(sim).map_err(|e| LaunchError::Other(e.to_string()))?;
        write_padded(&add("sim.img", abi::SERIAL_SIM, true), &json)?;
    }

    make_home(&add("home.img", abi::SERIAL_HOME, false), mkfs)?;
    Ok(disks)
}
