//! The memory limit from `--size`.
//!
//! Two layers, because each alone falls short:
//! * a per-app cgroup (v2 `memory.max` where the memory controller is on cgroup2, else the v1
//!   memory controller's `memory.limit_in_bytes`) caps real memory, tmpfs pages included, and is
//!   enforced from outside the process; beyond it the kernel OOM-kills the runtime (reported by
//!   whoever started it), never the host;
//! * `RLIMIT_DATA` at the same size makes an allocation beyond `--size` fail inside the app
//!   (Python raises `MemoryError` and the server keeps serving) instead of reaching the cgroup's
//!   kill. It counts writable private mappings (heap, thread stacks), not tmpfs or page cache.
//!
//! Without the privilege to create a cgroup only `RLIMIT_DATA` is in force, and the log says so.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;

/// Which limit is in force, for the log and the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryLimit {
    /// cgroup v2 `memory.max` on `group`, plus `RLIMIT_DATA`.
    CgroupV2 {
        /// The app's cgroup directory.
        group: PathBuf,
    },
    /// cgroup v1 `memory.limit_in_bytes` on `group`, plus `RLIMIT_DATA`.
    CgroupV1 {
        /// The app's cgroup directory.
        group: PathBuf,
    },
    /// `RLIMIT_DATA` only: no cgroup could be created (`reason`).
    RlimitOnly {
        /// Why there is no cgroup.
        reason: String,
    },
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CgroupV2 { group } => write!(
                f,
                "cgroup v2 memory.max on {} and RLIMIT_DATA",
                group.display()
            ),
            Self::CgroupV1 { group } => write!(
                f,
                "cgroup v1 memory.limit_in_bytes on {} and RLIMIT_DATA",
                group.display()
            ),
            Self::RlimitOnly { reason } => write!(
                f,
                "RLIMIT_DATA only (no cgroup: {reason}; tmpfs and page cache are not counted)"
            ),
        }
    }
}

/// The limit in force and what to undo at stop.
#[derive(Debug)]
pub(crate) struct MemoryGuard {
    pub(crate) limit: MemoryLimit,
    /// `cgroup.procs` of the group the process came from (to move back before removing ours).
    origin_procs: Option<PathBuf>,
}

/// Applies both layers; only a failing rlimit is an error (the cgroup falls back, logged).
pub(crate) fn apply(bytes: u64) -> Result<MemoryGuard, SandboxError> {
    let pid = std::process::id();
    let (limit, origin_procs) = match create_cgroup(bytes, pid) {
        Ok((limit, origin)) => (limit, Some(origin)),
        Err(reason) => (
            MemoryLimit::RlimitOnly {
                reason: reason.to_string(),
            },
            None,
        ),
    };
    let guard = MemoryGuard {
        limit,
        origin_procs,
    };
    if let Err(e) = set_rlimit_data(bytes) {
        let mut guard = guard;
        let _ = guard.release();
        return Err(e);
    }
    Ok(guard)
}

impl MemoryGuard {
    /// Moves the process back to its original cgroup and removes the per-app one.
    pub(crate) fn release(&mut self) -> Result<(), SandboxError> {
        let group = match &self.limit {
            MemoryLimit::CgroupV1 { group } | MemoryLimit::CgroupV2 { group } => group.clone(),
            MemoryLimit::RlimitOnly { .. } => return Ok(()),
        };
        if let Some(origin) = self.origin_procs.take() {
            write_file(&origin, &std::process::id().to_string()).map_err(|source| {
                SandboxError::Cgroup {
                    path: origin.clone(),
                    source,
                }
            })?;
        }
        match fs::remove_dir(&group) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SandboxError::Cgroup {
                path: group,
                source,
            }),
        }
    }
}

fn set_rlimit_data(bytes: u64) -> Result<(), SandboxError> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Data);
    // Never raise a lower hard limit set by whoever started us.
    let value = current.maximum.map_or(bytes, |max| max.min(bytes));
    setrlimit(
        Resource::Data,
        Rlimit {
            current: Some(value),
            maximum: Some(value),
        },
    )
    .map_err(|e| SandboxError::Rlimit {
        bytes: value,
        source: e.into(),
    })
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value.as_bytes())
}

/// One line of /proc/self/mountinfo that matters here.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// The mount's root within its hierarchy.
    pub(crate) root: String,
    pub(crate) mount_point: PathBuf,
    /// "cgroup" or "cgroup2".
    pub(crate) fstype: String,
    pub(crate) super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(d)) = (bytes[i], octal) {
            let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts listed in a mountinfo text.
pub(crate) fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let super_options = right.next().unwrap_or_default();
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(CgroupMount {
                root: unescape(left.get(3)?),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                fstype: fstype.to_string(),
                super_options: super_options.to_string(),
            })
        })
        .collect()
}

/// This process's group in the v2 hierarchy ("0::path") and in the v1 memory hierarchy.
pub(crate) fn own_groups(proc_cgroup: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1_memory = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1_memory = Some(path.to_string());
        }
    }
    (v2, v1_memory)
}

/// The directory of `group` (a path from /proc/self/cgroup) under `mount`.
pub(crate) fn group_dir(mount: &CgroupMount, group: &str) -> PathBuf {
    let rel = group
        .strip_prefix(mount.root.as_str())
        .unwrap_or(group)
        .trim_start_matches('/');
    mount.mount_point.join(rel)
}

/// Creates the per-app group, sets its limit and moves this process in. Returns the limit and
/// the `cgroup.procs` to move back to, or why no cgroup is possible.
fn create_cgroup(bytes: u64, pid: u32) -> Created {
    let read = |path: &'static str| {
        fs::read_to_string(path).map_err(|source| CgroupError::Read { path, source })
    };
    let mountinfo = read("/proc/self/mountinfo")?;
    let proc_cgroup = read("/proc/self/cgroup")?;
    let mounts = cgroup_mounts(&mountinfo);
    let (v2_group, v1_group) = own_groups(&proc_cgroup);
    let name = format!("mse-sandbox-{pid}");

    let v2_mount = mounts.iter().find(|m| {
        m.fstype == "cgroup2"
            && fs::read_to_string(m.mount_point.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
    });
    if let (Some(mount), Some(group)) = (v2_mount, v2_group.as_deref()) {
        return create_v2(mount, group, &name, bytes, pid);
    }
    let v1_mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory"));
    if let (Some(mount), Some(group)) = (v1_mount, v1_group.as_deref()) {
        return create_v1(mount, group, &name, bytes, pid);
    }
    Err(CgroupError::NoController)
}

/// Why no per-app cgroup could be made (the limit then falls back to `RLIMIT_DATA`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: io::Error,
    },
    #[error("no cgroup memory controller is mounted")]
    NoController,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn fail(path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes the groups of runtimes that died without stopping (SIGKILL, OOM kill): a group named
/// `mse-sandbox-<pid>` whose pid no longer exists is empty and can go. Best effort.
fn sweep_stale_groups(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mse-sandbox-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            match fs::remove_dir(entry.path()) {
                Ok(()) => {
                    tracing::info!("sandbox: removed stale cgroup {}", entry.path().display())
                }
                Err(e) => tracing::debug!("sandbox: stale cgroup {}: {e}", entry.path().display()),
            }
        }
    }
}

/// mkdir that replaces a stale, empty group left by a crashed runtime with the same pid.
fn make_group(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_dir(dir).map_err(|e| fail(dir, e))?;
            fs::create_dir(dir).map_err(|e| fail(dir, e))
        }
        Err(e) => Err(fail(dir, e)),
    }
}

/// Writes the limit files and moves `pid` in; removes the group again on failure.
fn fill_group(dir: &Path, limits: &[(&str, String, bool)], pid: u32) -> Result<(), CgroupError> {
    let result = (|| {
        for (file, value, required) in limits {
            let path = dir.join(file);
            match write_file(&path, value) {
                Ok(()) => {}
                Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(&path, e)),
            }
        }
        let procs = dir.join("cgroup.procs");
        write_file(&procs, &pid.to_string()).map_err(|e| fail(&procs, e))
    })();
    if result.is_err() {
        let _ = fs::remove_dir(dir);
    }
    result
}

/// Creates the group `name` under `parent` (after sweeping stale siblings) with `limits` and `pid`
/// in it.
fn new_group(
    parent: &Path,
    name: &str,
    limits: &[(&str, String, bool)],
    pid: u32,
) -> Result<PathBuf, CgroupError> {
    sweep_stale_groups(parent);
    let dir = parent.join(name);
    make_group(&dir)?;
    fill_group(&dir, limits, pid)?;
    Ok(dir)
}

/// A created group and the `cgroup.procs` to move the runtime back to when it is removed.
type Created = Result<(MemoryLimit, PathBuf), CgroupError>;

/// v1 has no "no internal processes" rule: the app's group nests under the current one, so any
/// limit already on the runtime (e.g. from the node) still applies hierarchically.
fn create_v1(mount: &CgroupMount, group: &str, name: &str, bytes: u64, pid: u32) -> Created {
    let parent = group_dir(mount, group);
    let dir = new_group(
        &parent,
        name,
        &[
            ("memory.limit_in_bytes", bytes.to_string(), true),
            // Swap is counted too where the kernel accounts it (must be set after the above).
            ("memory.memsw.limit_in_bytes", bytes.to_string(), false),
        ],
        pid,
    )?;
    Ok((
        MemoryLimit::CgroupV1 { group: dir },
        parent.join("cgroup.procs"),
    ))
}

/// v2 forbids processes in a group that delegates controllers, so the app's group goes under a
/// dedicated `mse-sandbox` parent at the hierarchy's root (which needs root privileges).
fn create_v2(mount: &CgroupMount, group: &str, name: &str, bytes: u64, pid: u32) -> Created {
    let root = &mount.mount_point;
    let base = root.join("mse-sandbox");
    match fs::create_dir(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(&base, e)),
    }
    for control in [
        root.join("cgroup.subtree_control"),
        base.join("cgroup.subtree_control"),
    ] {
        let enabled =
            fs::read_to_string(&control).is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        if !enabled {
            write_file(&control, "+memory").map_err(|e| fail(&control, e))?;
        }
    }
    let dir = new_group(
        &base,
        name,
        &[
            ("memory.max", bytes.to_string(), true),
            ("memory.swap.max", "0".to_string(), false),
        ],
        pid,
    )?;
    let origin = group_dir(mount, group).join("cgroup.procs");
    Ok((MemoryLimit::CgroupV2 { group: dir }, origin))
}

/// Bytes resident in this process now (/proc/self/statm).
pub(crate) fn resident_bytes() -> u64 {
    let page = rustix::param::page_size() as u64;
    fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// Physical memory of the machine (/proc/meminfo MemTotal), if readable.
pub(crate) fn mem_total_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 /sub /mnt/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate";

    #[test]
    fn mountinfo_lists_cgroup_mounts_only() {
        let m = cgroup_mounts(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m[1].super_options, "rw,memory");
        assert_eq!(m[2].fstype, "cgroup2");
        assert_eq!(m[3].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[3].root, "/sub");
    }

    #[test]
    fn garbage_mountinfo_gives_nothing() {
        assert!(cgroup_mounts("x - \n - cgroup\n\\\\\\0 - cgroup2 a b").is_empty());
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn own_groups_of_a_hybrid_hierarchy() {
        let text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
        assert_eq!(
            own_groups(text),
            (Some("/".to_string()), Some("/process_api/abc".to_string()))
        );
        assert_eq!(own_groups("garbage\n"), (None, None));
    }

    #[test]
    fn group_dir_strips_the_mount_root() {
        let m = &cgroup_mounts(MOUNTINFO)[3];
        assert_eq!(
            group_dir(m, "/sub/app"),
            PathBuf::from("/mnt/with space/app")
        );
        let m = &cgroup_mounts(MOUNTINFO)[1];
        assert_eq!(
            group_dir(m, "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
    }

    #[test]
    fn limit_descriptions() {
        assert_eq!(
            MemoryLimit::CgroupV1 { group: "/g".into() }.to_string(),
            "cgroup v1 memory.limit_in_bytes on /g and RLIMIT_DATA"
        );
        assert_eq!(
            MemoryLimit::RlimitOnly { reason: "r".into() }.to_string(),
            "RLIMIT_DATA only (no cgroup: r; tmpfs and page cache are not counted)"
        );
    }
}
