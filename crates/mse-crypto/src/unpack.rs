//! Unpacking (and decrypting) a code package that may be hostile.
//!
//! Only regular files and directories with plain relative paths are accepted; absolute paths,
//! `..`, symbolic and hard links, devices, FIFOs, sparse members, duplicates and over-size members are
//! refused. Everything is written into a fresh staging directory next to the target, which is
//! renamed into place only when every member decrypted and verified: on any error nothing is left.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crypto_secretbox::aead::{OsRng, rand_core::RngCore};

use crate::secretbox::{SecretboxError, decrypt_file};
use crate::{CodeKey, ENC_SUFFIX, is_clear_file};

/// Bounds on a package being unpacked, so a hostile one cannot fill the disk.
/// The default is 1 GiB per member, 4 GiB in all, 100 000 entries.
#[derive(Debug, Clone)]
pub struct UnpackLimits {
    /// Largest member as stored (encrypted), in bytes.
    pub max_member_bytes: u64,
    /// Largest sum of the members' stored sizes, in bytes.
    pub max_total_bytes: u64,
    /// Most tar entries (files and directories).
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_member_bytes: 1 << 30,
            max_total_bytes: 4 << 30,
            max_entries: 100_000,
        }
    }
}

/// What [`unpack_package`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Number of files written (directories not counted).
    pub files: usize,
    /// Sum of the file members' stored (encrypted) sizes, in bytes.
    pub bytes: u64,
}

/// Why a package was refused; on any of these nothing is left at the target.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The target directory exists and has entries.
    #[error("output directory {0} already exists and is not empty")]
    TargetExists(PathBuf),
    /// A file system operation on the staging directory or target failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Not a readable tar, or a member shorter than its header says.
    #[error("malformed package archive: {0}")]
    Malformed(String),
    /// A member path that is absolute, empty, non-UTF-8 or has a `.` or `..` component.
    #[error("member {0:?}: unsafe path (absolute, empty, `.` or `..` component)")]
    UnsafePath(String),
    /// A member that is neither a regular file nor a directory.
    #[error("member {member:?}: {kind} entries are not allowed in a code package")]
    Forbidden {
        /// The member's path as stored.
        member: String,
        /// Its tar entry type, e.g. "symbolic link".
        kind: &'static str,
    },
    /// A path given twice, or used both as a file and as a directory.
    #[error("member {0:?} appears twice or clashes with another member")]
    Duplicate(String),
    /// A member over [`UnpackLimits::max_member_bytes`].
    #[error("member {member:?} is {size} bytes, over the limit of {limit} bytes")]
    MemberTooLarge {
        /// The member's path.
        member: String,
        /// Its size from the tar header, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The members add up to more than [`UnpackLimits::max_total_bytes`].
    #[error("package holds more than {limit} bytes")]
    TotalTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// More entries than [`UnpackLimits::max_entries`].
    #[error("package holds more than {limit} entries")]
    TooManyEntries {
        /// The limit, in entries.
        limit: usize,
    },
    /// An encrypted member that does not decrypt with the key.
    #[error("member {member:?}: {source}")]
    Decrypt {
        /// The member's path (with `.enc`).
        member: String,
        /// Why decryption failed.
        #[source]
        source: SecretboxError,
    },
    /// A member without `.enc` that is not a `requirements.txt`.
    #[error("member {0:?} is in clear but only requirements.txt files may be")]
    UnexpectedClear(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    let context = context.into();
    move |source| UnpackError::Io { context, source }
}

/// Decrypts the package read from `reader` into `target` (which must not exist, or be empty).
pub fn unpack_package<R: Read>(
    reader: R,
    key: &CodeKey,
    target: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackSummary, UnpackError> {
    let target_was_empty_dir = match fs::read_dir(target) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(UnpackError::TargetExists(target.to_path_buf()));
            }
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(format!("cannot read {}", target.display()))(e)),
    };
    let staging = staging_dir(target);
    fs::create_dir_all(&staging).map_err(io_err(format!("cannot create {}", staging.display())))?;
    match unpack_into(reader, key, &staging, limits) {
        Ok(summary) => {
            if target_was_empty_dir {
                fs::remove_dir(target)
                    .map_err(io_err(format!("cannot replace {}", target.display())))?;
            }
            fs::rename(&staging, target).map_err(|e| {
                let _ = fs::remove_dir_all(&staging);
                io_err(format!("cannot move the result to {}", target.display()))(e)
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn staging_dir(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!(".{name}.partial-{:016x}", OsRng.next_u64()))
}

fn unpack_into<R: Read>(
    reader: R,
    key: &CodeKey,
    staging: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackSummary, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Malformed(e.to_string()))?;
    let mut files: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut summary = UnpackSummary { files: 0, bytes: 0 };
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Malformed(e.to_string()))?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|e| UnpackError::UnsafePath(String::from_utf8_lossy(e.as_bytes()).into()))?;
        let kind = entry.header().entry_type();
        let is_dir = kind.is_dir();
        let rel = safe_rel(&raw, is_dir)?;
        if !(kind.is_file() || kind == tar::EntryType::Continuous || is_dir) {
            return Err(UnpackError::Forbidden {
                member: raw,
                kind: kind_name(kind),
            });
        }
        if is_dir {
            claim_dir(&rel, &files, &mut dirs)?;
            fs::create_dir_all(staging.join(&rel))
                .map_err(io_err(format!("cannot create directory {rel}")))?;
            continue;
        }
        let size = entry.size();
        if size > limits.max_member_bytes {
            return Err(UnpackError::MemberTooLarge {
                member: rel,
                size,
                limit: limits.max_member_bytes,
            });
        }
        summary.bytes += size;
        if summary.bytes > limits.max_total_bytes {
            return Err(UnpackError::TotalTooLarge {
                limit: limits.max_total_bytes,
            });
        }
        let out_rel = match rel.strip_suffix(ENC_SUFFIX) {
            Some(stripped) if !stripped.is_empty() && !stripped.ends_with('/') => {
                stripped.to_string()
            }
            _ if is_clear_file(&rel) => rel.clone(),
            _ => return Err(UnpackError::UnexpectedClear(rel)),
        };
        claim_file(&out_rel, &rel, &mut files, &mut dirs)?;
        let mut data = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| UnpackError::Malformed(format!("member {rel:?}: {e}")))?;
        if data.len() as u64 != size {
            return Err(UnpackError::Malformed(format!(
                "member {rel:?} is truncated ({} of {size} bytes)",
                data.len()
            )));
        }
        let plain = if out_rel == rel {
            data
        } else {
            decrypt_file(key, &data).map_err(|source| UnpackError::Decrypt {
                member: rel.clone(),
                source,
            })?
        };
        write_new(&staging.join(&out_rel), &plain)
            .map_err(io_err(format!("cannot write {out_rel}")))?;
        summary.files += 1;
    }
    Ok(summary)
}

/// A relative path made only of normal components, returned without a trailing `/`.
fn safe_rel(raw: &str, is_dir: bool) -> Result<String, UnpackError> {
    let trimmed = if is_dir {
        raw.trim_end_matches('/')
    } else {
        raw
    };
    let ok = !trimmed.is_empty()
        && !trimmed.starts_with('/')
        && !trimmed.contains('\\')
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(UnpackError::UnsafePath(raw.to_string()))
    }
}

fn parents(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

fn claim_dir(
    rel: &str,
    files: &HashSet<String>,
    dirs: &mut HashSet<String>,
) -> Result<(), UnpackError> {
    if files.contains(rel) || parents(rel).any(|p| files.contains(p)) {
        return Err(UnpackError::Duplicate(rel.to_string()));
    }
    dirs.insert(rel.to_string());
    dirs.extend(parents(rel).map(str::to_string));
    Ok(())
}

fn claim_file(
    out_rel: &str,
    member: &str,
    files: &mut HashSet<String>,
    dirs: &mut HashSet<String>,
) -> Result<(), UnpackError> {
    if dirs.contains(out_rel)
        || files.contains(out_rel)
        || parents(out_rel).any(|p| files.contains(p))
    {
        return Err(UnpackError::Duplicate(member.to_string()));
    }
    files.insert(out_rel.to_string());
    dirs.extend(parents(out_rel).map(str::to_string));
    Ok(())
}

fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    // No fsync per file: all-or-nothing comes from the staging rename, and a package of
    // thousands of files would otherwise pay thousands of disk flushes.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(data)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special",
    }
}
