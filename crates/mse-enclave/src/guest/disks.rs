//! The launcher's disks, found by virtio serial, and their checks against the spec whose hash
//! the kernel command line carries. The host attaches inputs; it never vouches for them: each
//! one is copied into guest memory first and checked there, so that a later change of the
//! host's file cannot reach what was checked.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use mse_launch::vm::abi::{self, SimDisk};
use mse_launch::{Digest32, LaunchSpec, MAX_SPEC_BYTES, TeeKind, TlsSpec};
use sha2::{Digest, Sha256};

/// Where the environment is unpacked (guest memory).
pub const ENV_DIR: &str = "/opt/mse/venv";

/// Largest owner certificate chain accepted.
const MAX_CERT_BYTES: u64 = 1 << 20;
/// Largest sim disk accepted.
const MAX_SIM_BYTES: u64 = 64 * 1024;

/// Why an input disk is refused. One line each, naming the disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A required disk is not attached.
    #[error("no {0} disk attached")]
    Missing(&'static str),
    /// Two disks carry the same serial.
    #[error("two disks carry the serial {0}")]
    Duplicate(String),
    /// A disk is attached that this spec does not use.
    #[error("a {0} disk is attached, but this spec does not use one")]
    Unexpected(&'static str),
    /// The kernel command line has no usable `mse.spec=`.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// A disk cannot be read.
    #[error("{disk} disk: {source}")]
    Io {
        /// The disk's serial.
        disk: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The spec disk does not hash to `mse.spec=`.
    #[error("mse-spec disk: SHA-256 {actual} is not mse.spec={expected}")]
    SpecHash {
        /// From the command line.
        expected: Digest32,
        /// Of the disk's content.
        actual: Digest32,
    },
    /// The spec disk's content is not a valid canonical spec.
    #[error("mse-spec disk: {0}")]
    Spec(String),
    /// A digest mismatch on another disk.
    #[error("{disk} disk: SHA-256 {actual} is not the spec's {expected}")]
    Digest {
        /// The disk's serial.
        disk: &'static str,
        /// What the spec says.
        expected: Digest32,
        /// What the disk holds.
        actual: Digest32,
    },
    /// The environment's tree digest does not match.
    #[error("mse-env disk: environment digest {actual} is not the spec's {expected}")]
    Environment {
        /// What the spec says.
        expected: Digest32,
        /// What was unpacked.
        actual: Digest32,
    },
    /// The environment tar is malformed.
    #[error("mse-env disk: {0}")]
    EnvTar(#[from] mse_launch::vm::envtar::EnvTarError),
    /// Padding or size is wrong.
    #[error("{disk} disk: {why}")]
    Layout {
        /// The disk's serial.
        disk: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// One attached disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Its device node (`/dev/vdb`).
    pub dev: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// Attached disks by serial.
pub type Disks = BTreeMap<String, Disk>;

/// Lists the virtio disks under `sys_block` (`/sys/block`) by serial.
pub fn find_disks(sys_block: &Path) -> Result<Disks, DiskError> {
    let mut out = Disks::new();
    let Ok(entries) = fs::read_dir(sys_block) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(serial) = fs::read_to_string(entry.path().join("serial")) else {
            continue;
        };
        let serial = serial.trim().to_owned();
        let sectors: u64 = fs::read_to_string(entry.path().join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let disk = Disk {
            dev: Path::new("/dev").join(&name),
            size: sectors * 512,
        };
        if out.insert(serial.clone(), disk).is_some() {
            return Err(DiskError::Duplicate(serial));
        }
    }
    Ok(out)
}

fn get<'a>(disks: &'a Disks, serial: &'static str) -> Result<&'a Disk, DiskError> {
    disks.get(serial).ok_or(DiskError::Missing(serial))
}

/// Opens the disk `serial` for reading.
fn open(disks: &Disks, serial: &'static str) -> Result<fs::File, DiskError> {
    fs::File::open(&get(disks, serial)?.dev).map_err(|source| DiskError::Io {
        disk: serial,
        source,
    })
}

/// The spec hash of `mse.spec=<hex>` on the kernel command line (exactly one occurrence).
pub fn spec_hash_from_cmdline(cmdline: &str) -> Result<Digest32, DiskError> {
    let prefix = format!("{}=", abi::CMDLINE_SPEC);
    let values: Vec<&str> = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(prefix.as_str()))
        .collect();
    match values.as_slice() {
        [one] => Digest32::from_hex(one).ok_or_else(|| {
            DiskError::Cmdline(format!(
                "{prefix}{one:?} is not 64 lowercase hex characters"
            ))
        }),
        [] => Err(DiskError::Cmdline(format!("no {prefix}"))),
        _ => Err(DiskError::Cmdline(format!("{prefix} given more than once"))),
    }
}

/// Reads at most `max` bytes of `disk` and strips the zero padding (at most one sector of it).
fn read_padded(disk: &Disk, serial: &'static str, max: u64) -> Result<Vec<u8>, DiskError> {
    if disk.size > abi::padded_len(max) {
        return Err(DiskError::Layout {
            disk: serial,
            why: format!("{} bytes is more than the {max} allowed", disk.size),
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(&disk.dev)
        .and_then(|f| f.take(disk.size).read_to_end(&mut bytes))
        .map_err(|source| DiskError::Io {
            disk: serial,
            source,
        })?;
    content_of_padded(&bytes, serial).map(<[u8]>::to_vec)
}

/// The content of zero-padded disk bytes: everything up to the last non-zero byte, with at
/// most one sector's worth of padding after it.
pub fn content_of_padded<'a>(bytes: &'a [u8], serial: &'static str) -> Result<&'a [u8], DiskError> {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if bytes.len() as u64 != abi::padded_len(end as u64) {
        return Err(DiskError::Layout {
            disk: serial,
            why: format!("{} bytes for {end} bytes of content", bytes.len()),
        });
    }
    Ok(&bytes[..end])
}

/// Checks spec bytes (the disk's content) against the command line's hash and parses them.
pub fn check_spec(content: &[u8], expected: &Digest32) -> Result<LaunchSpec, DiskError> {
    let actual = Digest32::of(content);
    if actual != *expected {
        return Err(DiskError::SpecHash {
            expected: *expected,
            actual,
        });
    }
    let spec = LaunchSpec::from_json(content).map_err(|e| DiskError::Spec(e.to_string()))?;
    if spec.canonical_bytes() != content {
        return Err(DiskError::Spec("not in canonical form".into()));
    }
    if !matches!(spec.runtime, mse_launch::Runtime::Vm { .. }) {
        return Err(DiskError::Spec("its runtime is not a VM".into()));
    }
    Ok(spec)
}

/// Reads and checks the spec disk.
pub fn read_spec(disks: &Disks, expected: &Digest32) -> Result<LaunchSpec, DiskError> {
    let disk = get(disks, abi::SERIAL_SPEC)?;
    let content = read_padded(disk, abi::SERIAL_SPEC, MAX_SPEC_BYTES as u64)?;
    check_spec(&content, expected)
}

fn create_private(path: &Path, serial: &'static str) -> Result<fs::File, DiskError> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| DiskError::Io {
            disk: serial,
            source,
        })
}

/// Copies exactly `len` bytes of `input` to `out` while hashing them, then checks that the
/// rest of `input` is zero padding of the right length.
pub fn copy_exact<R: Read, W: Write>(
    mut input: R,
    out: &mut W,
    len: u64,
    serial: &'static str,
) -> Result<Digest32, DiskError> {
    let io = |source| DiskError::Io {
        disk: serial,
        source,
    };
    let mut hasher = Sha256::new();
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = input.read(&mut buf[..want]).map_err(io)?;
        if n == 0 {
            return Err(DiskError::Layout {
                disk: serial,
                why: format!("ends {left} bytes before the spec's size {len}"),
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
        left -= n as u64;
    }
    let mut rest = Vec::new();
    input.read_to_end(&mut rest).map_err(io)?;
    if len + rest.len() as u64 != abi::padded_len(len) {
        return Err(DiskError::Layout {
            disk: serial,
            why: format!(
                "{} bytes for the spec's size {len}",
                len + rest.len() as u64
            ),
        });
    }
    if rest.iter().any(|&b| b != 0) {
        return Err(DiskError::Layout {
            disk: serial,
            why: "non-zero bytes after the package".into(),
        });
    }
    Ok(Digest32(hasher.finalize().into()))
}

/// Copies the code package into guest memory at `to` and checks it against the spec.
pub fn copy_package(disks: &Disks, spec: &LaunchSpec, to: &Path) -> Result<PathBuf, DiskError> {
    let serial = abi::SERIAL_CODE;
    let input = open(disks, serial)?;
    let mut out = create_private(to, serial)?;
    let actual = copy_exact(input, &mut out, spec.package.size, serial)?;
    if actual != spec.package.sha256 {
        let _ = fs::remove_file(to);
        return Err(DiskError::Digest {
            disk: serial,
            expected: spec.package.sha256,
            actual,
        });
    }
    Ok(to.to_path_buf())
}

/// Unpacks the environment into guest memory at `dest` and checks its tree digest.
pub fn unpack_environment(
    disks: &Disks,
    spec: &LaunchSpec,
    dest: &Path,
) -> Result<PathBuf, DiskError> {
    let serial = abi::SERIAL_ENV;
    let input = open(disks, serial)?;
    mse_launch::vm::envtar::unpack(io::BufReader::with_capacity(1 << 20, input), dest)?;
    check_environment(dest, &spec.environment_sha256)?;
    Ok(dest.to_path_buf())
}

/// Checks the tree digest of an unpacked environment.
pub fn check_environment(dir: &Path, expected: &Digest32) -> Result<(), DiskError> {
    let actual = Digest32(
        mse_attest::measurement::environment_digest(dir)
            .map_err(|e| DiskError::Spec(format!("environment: {e}")))?,
    );
    if actual != *expected {
        return Err(DiskError::Environment {
            expected: *expected,
            actual,
        });
    }
    Ok(())
}

/// Owner mode: copies the owner's certificate chain into guest memory at `to` and checks it
/// against the spec. Self mode: no certificate disk may be attached.
pub fn copy_owner_certificate(
    disks: &Disks,
    spec: &LaunchSpec,
    to: &Path,
) -> Result<Option<PathBuf>, DiskError> {
    let serial = abi::SERIAL_CERT;
    let TlsSpec::OwnerCertificateSha256(expected) = spec.tls else {
        if disks.contains_key(serial) {
            return Err(DiskError::Unexpected(serial));
        }
        return Ok(None);
    };
    let content = read_padded(get(disks, serial)?, serial, MAX_CERT_BYTES)?;
    let actual = Digest32::of(&content);
    if actual != expected {
        return Err(DiskError::Digest {
            disk: serial,
            expected,
            actual,
        });
    }
    create_private(to, serial)?
        .write_all(&content)
        .map_err(|source| DiskError::Io {
            disk: serial,
            source,
        })?;
    Ok(Some(to.to_path_buf()))
}

/// Parses the sim disk's content and checks it against the spec.
pub fn check_sim(content: &[u8], spec: &LaunchSpec) -> Result<SimDisk, DiskError> {
    let bad = |why: String| DiskError::Layout {
        disk: abi::SERIAL_SIM,
        why,
    };
    let sim: SimDisk = serde_json::from_slice(content).map_err(|e| bad(e.to_string()))?;
    if sim.version != 1 {
        return Err(bad(format!("version {} is not supported", sim.version)));
    }
    if sim.sim_seed.len() != 64 || hex::decode(&sim.sim_seed).is_err() {
        return Err(bad("sim_seed is not 64 hex characters".into()));
    }
    match (spec.tee, &sim.snp) {
        (TeeKind::Sim, None) => {}
        (TeeKind::SimSnp, Some(snp)) => {
            if snp.host_data != spec.hash() {
                return Err(bad(format!(
                    "snp.host_data {} is not the spec hash {}",
                    snp.host_data,
                    spec.hash()
                )));
            }
            if snp.measurement.len() != 96 || hex::decode(&snp.measurement).is_err() {
                return Err(bad("snp.measurement is not 96 hex characters".into()));
            }
        }
        (TeeKind::Sim, Some(_)) => return Err(bad("snp is only for tee sim-snp".into())),
        (_, None) => return Err(bad(format!("tee {} needs snp", spec.tee))),
        (_, Some(_)) => return Err(bad(format!("tee {} takes no snp", spec.tee))),
    }
    Ok(sim)
}

/// Simulated TEEs: reads the sim disk and writes the seed to `seed_to` (guest memory).
/// Real TEEs: no sim disk may be attached.
pub fn read_sim(
    disks: &Disks,
    spec: &LaunchSpec,
    seed_to: &Path,
) -> Result<Option<PathBuf>, DiskError> {
    let serial = abi::SERIAL_SIM;
    if !spec.tee.is_simulated() {
        if disks.contains_key(serial) {
            return Err(DiskError::Unexpected(serial));
        }
        return Ok(None);
    }
    let content = read_padded(get(disks, serial)?, serial, MAX_SIM_BYTES)?;
    let sim = check_sim(&content, spec)?;
    create_private(seed_to, serial)?
        .write_all(sim.sim_seed.as_bytes())
        .map_err(|source| DiskError::Io {
            disk: serial,
            source,
        })?;
    if let Some(snp) = &sim.snp {
        let dir = seed_to.parent().unwrap_or(Path::new("/"));
        fs::write(dir.join(crate::tee::SNP_MEASUREMENT_FILE), &snp.measurement).map_err(
            |source| DiskError::Io {
                disk: serial,
                source,
            },
        )?;
    }
    Ok(Some(seed_to.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_carries_exactly_one_spec_hash() {
        let h = "ab".repeat(32);
        assert_eq!(
            spec_hash_from_cmdline(&format!("console=ttyS0 mse.spec={h} quiet\n"))
                .unwrap()
                .to_hex(),
            h
        );
        assert_eq!(
            spec_hash_from_cmdline("console=ttyS0")
                .unwrap_err()
                .to_string(),
            "kernel command line: no mse.spec="
        );
        assert_eq!(
            spec_hash_from_cmdline(&format!("mse.spec={h} mse.spec={h}"))
                .unwrap_err()
                .to_string(),
            "kernel command line: mse.spec= given more than once"
        );
        assert_eq!(
            spec_hash_from_cmdline("mse.spec=AB")
                .unwrap_err()
                .to_string(),
            "kernel command line: mse.spec=\"AB\" is not 64 lowercase hex characters"
        );
    }

    #[test]
    fn padding_is_checked() {
        let mut bytes = b"{}".to_vec();
        bytes.resize(512, 0);
        assert_eq!(content_of_padded(&bytes, "mse-spec").unwrap(), b"{}");
        bytes.resize(1024, 0);
        assert_eq!(
            content_of_padded(&bytes, "mse-spec")
                .unwrap_err()
                .to_string(),
            "mse-spec disk: 1024 bytes for 2 bytes of content"
        );
    }

    #[test]
    fn package_copy_checks_length_and_padding() {
        let mut disk = vec![7u8; 700];
        disk.resize(1024, 0);
        let mut out = Vec::new();
        let d = copy_exact(&disk[..], &mut out, 700, "mse-code").unwrap();
        assert_eq!(d, Digest32::of(&[7u8; 700]));
        assert_eq!(out.len(), 700);
        disk[900] = 1;
        assert_eq!(
            copy_exact(&disk[..], &mut Vec::new(), 700, "mse-code")
                .unwrap_err()
                .to_string(),
            "mse-code disk: non-zero bytes after the package"
        );
        assert_eq!(
            copy_exact(&disk[..512], &mut Vec::new(), 700, "mse-code")
                .unwrap_err()
                .to_string(),
            "mse-code disk: ends 188 bytes before the spec's size 700"
        );
    }
}
