//! The guest's root filesystem as an in-memory tree, filled from .deb data archives, and written
//! as a reproducible initramfs: cpio "newc", entries sorted by path, every mtime 0, uid/gid 0,
//! inode numbers 1, 2, 3… in that order, nlink 1 (so the kernel sees no hard links).

use std::collections::BTreeMap;
use std::io::Read;

use super::ImageError;

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
    /// A character device (major, minor).
    CharDev(u32, u32),
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Which package (or "mse") put it there, for conflict messages.
    pub origin: String,
}

/// Paths (relative, no leading `/`) that are never copied into the guest: documentation, manual
/// pages, translations and packaging metadata nobody reads in a VM.
const EXCLUDED: &[&str] = &[
    "usr/share/doc",
    "usr/share/doc-base",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/bash-completion",
    "usr/share/zsh",
    "usr/share/gdb",
    // glibc's iconv modules (8 MB): CPython has its own codecs and nothing in the guest calls iconv.
    "usr/lib/x86_64-linux-gnu/gconv",
];

/// Top-level directories that Debian's merged-/usr layout turns into symlinks into /usr.
pub const MERGED_USR: &[&str] = &["bin", "sbin", "lib", "lib64"];

/// The root filesystem, sorted by path.
#[derive(Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// Adds an entry (and any missing parent directory, mode 0755). The same directory twice is
    /// fine (the first mode wins), the same file or symlink twice too when identical; anything
    /// else is a conflict naming both origins.
    pub fn insert(&mut self, path: &str, node: Node) -> Result<(), ImageError> {
        for (i, _) in path.match_indices('/') {
            let dir = Node {
                kind: Kind::Dir,
                mode: 0o755,
                origin: node.origin.clone(),
            };
            self.insert_one(path[..i].to_string(), dir)?;
        }
        self.insert_one(path.to_string(), node)
    }

    fn insert_one(&mut self, path: String, node: Node) -> Result<(), ImageError> {
        match self.nodes.get(&path) {
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(old) if old.kind == Kind::Dir && node.kind == Kind::Dir => Ok(()),
            Some(old) if old.kind == node.kind && old.mode == node.mode => Ok(()),
            Some(old) => Err(ImageError::Conflict {
                path: format!("/{path}"),
                first: old.origin.clone(),
                second: node.origin,
            }),
        }
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every entry, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Adds the data archive of one .deb (`data.tar`, `.xz` or uncompressed), relocating
    /// `/bin`, `/sbin`, `/lib`, `/lib64` into `/usr` and skipping [`EXCLUDED`] paths.
    pub fn add_deb(&mut self, package: &str, deb: &[u8]) -> Result<(), ImageError> {
        for e in read_deb(package, deb)? {
            let path = merge_usr(&e.path);
            if EXCLUDED
                .iter()
                .any(|x| path == *x || path.starts_with(&format!("{x}/")))
            {
                continue;
            }
            let kind = match e.kind {
                DebKind::HardLink(target) => {
                    let target = merge_usr(&target);
                    match self.nodes.get(&target) {
                        Some(n) => n.kind.clone(),
                        None => {
                            return Err(ImageError::Deb {
                                package: package.into(),
                                msg: format!("hard link /{path} to missing /{target}"),
                            });
                        }
                    }
                }
                DebKind::Plain(k) => k,
            };
            self.insert(
                &path,
                Node {
                    kind,
                    mode: e.mode,
                    origin: package.into(),
                },
            )?;
        }
        Ok(())
    }

    /// The cpio "newc" archive of the tree (uncompressed).
    pub fn to_cpio(&self) -> Result<Vec<u8>, ImageError> {
        let mut out: Vec<u8> = Vec::new();
        let io = |e: std::io::Error| ImageError::Io {
            path: "initrd.img".into(),
            source: e,
        };
        for (i, (path, node)) in self.nodes.iter().enumerate() {
            let ino = u32::try_from(i + 1).expect("fewer than 2^32 entries");
            let (ftype, data, rdev): (u32, &[u8], (u32, u32)) = match &node.kind {
                Kind::Dir => (0o040000, &[], (0, 0)),
                Kind::File(d) => (0o100000, d, (0, 0)),
                Kind::Symlink(t) => (0o120000, t.as_bytes(), (0, 0)),
                Kind::CharDev(ma, mi) => (0o020000, &[], (*ma, *mi)),
            };
            let size = u32::try_from(data.len()).map_err(|_| ImageError::Deb {
                package: node.origin.clone(),
                msg: format!("/{path} is larger than 4 GiB"),
            })?;
            let builder = cpio::newc::Builder::new(path)
                .ino(ino)
                .mode(ftype | (node.mode & 0o7777))
                .uid(0)
                .gid(0)
                .nlink(1)
                .mtime(0)
                .rdev_major(rdev.0)
                .rdev_minor(rdev.1);
            let mut w = builder.write(&mut out, size);
            std::io::Write::write_all(&mut w, data).map_err(io)?;
            w.finish().map_err(io)?;
        }
        cpio::newc::trailer(&mut out).map_err(io)?;
        Ok(out)
    }
}

/// `lib/x` → `usr/lib/x` (Debian's merged /usr); other paths unchanged.
pub fn merge_usr(path: &str) -> String {
    let top = path.split('/').next().unwrap_or("");
    if MERGED_USR.contains(&top) {
        format!("usr/{path}")
    } else {
        path.to_string()
    }
}

/// One entry of a .deb's data archive.
pub struct DebEntry {
    /// Relative path without `./` or a trailing `/`.
    pub path: String,
    /// What it is.
    pub kind: DebKind,
    /// Permission bits.
    pub mode: u32,
}

/// A data archive entry's kind.
pub enum DebKind {
    /// Directory, file or symlink.
    Plain(Kind),
    /// A hard link to an earlier entry (relative path).
    HardLink(String),
}

/// Reads every entry of a .deb's data archive.
pub fn read_deb(package: &str, deb: &[u8]) -> Result<Vec<DebEntry>, ImageError> {
    let err = |msg: String| ImageError::Deb {
        package: package.into(),
        msg,
    };
    let entries = deb_tar(deb, "data", &err, |mut tar| {
        let mut out = Vec::new();
        for entry in tar
            .entries()
            .map_err(|e| err(format!("data archive: {e}")))?
        {
            let mut entry = entry.map_err(|e| err(format!("data archive: {e}")))?;
            let raw = entry
                .path()
                .map_err(|e| err(format!("data archive path: {e}")))?
                .to_string_lossy()
                .into_owned();
            let path = normalise(&raw);
            if path.is_empty() {
                continue;
            }
            if path.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(err(format!("unsafe path {raw:?}")));
            }
            let mode = entry.header().mode().map_err(|e| err(e.to_string()))? & 0o7777;
            let etype = entry.header().entry_type();
            let link = || -> Result<String, ImageError> {
                Ok(entry
                    .link_name()
                    .map_err(|e| err(e.to_string()))?
                    .ok_or_else(|| err(format!("link {raw:?} without target")))?
                    .to_string_lossy()
                    .into_owned())
            };
            let kind = if etype.is_dir() {
                DebKind::Plain(Kind::Dir)
            } else if etype.is_symlink() {
                DebKind::Plain(Kind::Symlink(link()?))
            } else if etype.is_hard_link() {
                DebKind::HardLink(normalise(&link()?))
            } else if etype.is_file() {
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| err(format!("{raw}: {e}")))?;
                DebKind::Plain(Kind::File(data))
            } else {
                return Err(err(format!("{raw}: unsupported entry type {etype:?}")));
            };
            out.push(DebEntry { path, kind, mode });
        }
        Ok(out)
    })?;
    entries.ok_or_else(|| err("no data.tar member".into()))
}

/// The `Package` and `Version` fields of a .deb's control file.
pub fn deb_identity(package: &str, deb: &[u8]) -> Result<(String, String), ImageError> {
    let err = |msg: String| ImageError::Deb {
        package: package.into(),
        msg,
    };
    let identity = deb_tar(deb, "control", &err, |mut tar| {
        for entry in tar
            .entries()
            .map_err(|e| err(format!("control archive: {e}")))?
        {
            let mut entry = entry.map_err(|e| err(format!("control archive: {e}")))?;
            let path = entry.path().map_err(|e| err(e.to_string()))?;
            if normalise(&path.to_string_lossy()) != "control" {
                continue;
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| err(format!("control: {e}")))?;
            let field = |f: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(f))
                    .map(|v| v.trim().to_string())
            };
            return match (field("Package:"), field("Version:")) {
                (Some(n), Some(v)) => Ok(Some((n, v))),
                _ => Err(err("control file without Package or Version".into())),
            };
        }
        Ok(None)
    })?;
    identity
        .flatten()
        .ok_or_else(|| err("no control file".into()))
}

/// Runs `read` on the tar archive of the .deb's `{what}.tar` or `{what}.tar.xz` member
/// (`what`: `data` or `control`); `None` without such a member. `err` makes the package's errors.
fn deb_tar<T>(
    deb: &[u8],
    what: &str,
    err: &dyn Fn(String) -> ImageError,
    read: impl FnOnce(tar::Archive<Box<dyn Read + '_>>) -> Result<T, ImageError>,
) -> Result<Option<T>, ImageError> {
    let mut ar = ar::Archive::new(deb);
    while let Some(member) = ar.next_entry() {
        let mut member = member.map_err(|e| err(format!("not an ar archive: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        let Some(compression) = name.strip_prefix(what).and_then(|n| n.strip_prefix(".tar")) else {
            continue;
        };
        let reader: Box<dyn Read + '_> = match compression {
            ".xz" => Box::new(liblzma::read::XzDecoder::new(&mut member)),
            "" => Box::new(&mut member),
            _ => return Err(err(format!("unsupported {what} archive {name}"))),
        };
        return read(tar::Archive::new(reader)).map(Some);
    }
    Ok(None)
}

fn normalise(p: &str) -> String {
    let p = p.strip_prefix("./").unwrap_or(p);
    let p = p.strip_prefix('/').unwrap_or(p);
    p.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &[u8], origin: &str) -> Node {
        Node {
            kind: Kind::File(data.to_vec()),
            mode: 0o644,
            origin: origin.into(),
        }
    }

    #[test]
    fn cpio_is_sorted_with_parents_fixed_inodes_and_zero_times() {
        let mut t = Tree::default();
        t.insert("usr/lib/b", file(b"bb", "p")).unwrap();
        t.insert("etc/a", file(b"a", "p")).unwrap();
        let cpio = t.to_cpio().unwrap();
        let mut names = Vec::new();
        let mut rest: &[u8] = &cpio;
        loop {
            let r = cpio::newc::Reader::new(rest).unwrap();
            let e = r.entry().clone();
            if e.is_trailer() {
                break;
            }
            assert_eq!((e.mtime(), e.uid(), e.gid(), e.nlink()), (0, 0, 0, 1));
            names.push((e.ino(), e.name().to_string(), e.mode()));
            rest = r.finish().unwrap();
        }
        assert_eq!(
            names,
            [
                (1, "etc".to_string(), 0o40755),
                (2, "etc/a".to_string(), 0o100644),
                (3, "usr".to_string(), 0o40755),
                (4, "usr/lib".to_string(), 0o40755),
                (5, "usr/lib/b".to_string(), 0o100644),
            ]
        );
        // Insertion order does not matter.
        let mut u = Tree::default();
        u.insert("etc/a", file(b"a", "q")).unwrap();
        u.insert("usr/lib/b", file(b"bb", "q")).unwrap();
        assert_eq!(u.to_cpio().unwrap(), cpio);
    }

    #[test]
    fn conflicting_files_name_both_packages() {
        let mut t = Tree::default();
        t.insert("etc/a", file(b"a", "one")).unwrap();
        t.insert("etc/a", file(b"a", "two")).unwrap();
        let e = t.insert("etc/a", file(b"b", "three")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/a is in both one and three, differently"
        );
    }

    #[test]
    fn merged_usr_relocates_top_level_lib_and_bin() {
        assert_eq!(
            merge_usr("lib/x86_64-linux-gnu/libc.so.6"),
            "usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(merge_usr("lib64"), "usr/lib64");
        assert_eq!(merge_usr("sbin/mke2fs"), "usr/sbin/mke2fs");
        assert_eq!(merge_usr("etc/lib/x"), "etc/lib/x");
        assert_eq!(merge_usr("library"), "library");
    }
}
