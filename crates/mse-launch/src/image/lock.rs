//! The recipe (`image/packages`: what the guest is made of, by Debian package name) and the lock
//! (`image/lock`: the exact versions and .deb SHA-256 digests a build used).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ImageError;
use crate::Digest32;

/// One Debian package pinned by the lock: name, exact version, SHA-256 of its .deb.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Debian package name.
    pub name: String,
    /// Exact Debian version (with epoch, if any).
    pub version: String,
    /// SHA-256 of the .deb file, lowercase hex.
    pub sha256: String,
}

/// `image/packages`: one kernel metapackage (`kernel NAME/SUITE`) and the userland root packages,
/// whose full dependency closure apt resolves. `#` starts a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The kernel metapackage as apt reads it, e.g. `linux-image-cloud-amd64/bookworm-backports`:
    /// it names the one kernel package taken (without its own dependencies: the guest has no
    /// initramfs-tools, it only needs vmlinuz and a few modules).
    pub kernel: String,
    /// Userland root packages (their dependency closure goes into the initramfs).
    pub roots: Vec<String>,
    /// SHA-256 of the recipe file's bytes, recorded in the lock's header: a lock written for
    /// another recipe is stale.
    pub sha256: String,
}

impl Recipe {
    /// Reads and parses a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, ImageError> {
        let bytes = std::fs::read(path).map_err(|e| ImageError::io(path, e))?;
        Recipe::parse(path, &bytes)
    }

    /// Parses recipe bytes (`path` only names the file in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Recipe, ImageError> {
        let bad = |line: usize, msg: String| ImageError::Recipe {
            path: path.display().to_string(),
            line,
            msg,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, "not UTF-8".into()))?;
        let mut kernel = None;
        let mut roots = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["kernel", name] => {
                    if kernel.replace(name.to_string()).is_some() {
                        return Err(bad(i + 1, "a second `kernel` line".into()));
                    }
                }
                [name] if valid_name(name) => roots.push(name.to_string()),
                _ => {
                    return Err(bad(
                        i + 1,
                        format!("expected a package name or `kernel NAME/SUITE`, got {line:?}"),
                    ));
                }
            }
        }
        let kernel = kernel.ok_or_else(|| bad(0, "no `kernel NAME/SUITE` line".into()))?;
        if roots.is_empty() {
            return Err(bad(0, "no package listed".into()));
        }
        roots.sort();
        roots.dedup();
        Ok(Recipe {
            kernel,
            roots,
            sha256: Digest32::of(bytes).to_hex(),
        })
    }
}

fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// `image/lock`: a header line `# recipe-sha256 HEX` then `NAME VERSION SHA256` lines sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// SHA-256 of the recipe the lock was resolved from.
    pub recipe_sha256: String,
    /// Every package of the image (kernel included), sorted by name.
    pub packages: Vec<LockedPackage>,
}

const HEADER: &str = "# recipe-sha256 ";

impl Lock {
    /// Parses lock bytes (`path` only names the file in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Lock, ImageError> {
        let bad = |line: usize, msg: String| ImageError::Lock {
            path: path.display().to_string(),
            line,
            msg,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, "not UTF-8".into()))?;
        let mut recipe_sha256 = None;
        let mut packages: Vec<LockedPackage> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(hex) = line.strip_prefix(HEADER) {
                recipe_sha256 = Some(hex.trim().to_string());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let [name, version, sha256] = words.as_slice() else {
                return Err(bad(
                    i + 1,
                    format!("expected NAME VERSION SHA256, got {line:?}"),
                ));
            };
            if !is_sha256_hex(sha256) {
                return Err(bad(
                    i + 1,
                    format!("{sha256:?} is not a SHA-256 in lowercase hex"),
                ));
            }
            let pkg = LockedPackage {
                name: name.to_string(),
                version: version.to_string(),
                sha256: sha256.to_string(),
            };
            if let Some(prev) = packages.last() {
                if prev.name >= pkg.name {
                    return Err(bad(
                        i + 1,
                        format!("{} is not sorted after {}", pkg.name, prev.name),
                    ));
                }
            }
            packages.push(pkg);
        }
        let recipe_sha256 =
            recipe_sha256.ok_or_else(|| bad(0, format!("no `{}HEX` header", HEADER.trim())))?;
        if packages.is_empty() {
            return Err(bad(0, "no package".into()));
        }
        Ok(Lock {
            recipe_sha256,
            packages,
        })
    }

    /// The lock file's bytes (the one form it is written in).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str("# The guest image's Debian packages (mse-node image build): NAME VERSION SHA256-of-.deb.\n");
        out.push_str("# Written by `mse-node image build --update-lock`; do not edit by hand.\n");
        let _ = writeln!(out, "{HEADER}{}", self.recipe_sha256);
        for p in &self.packages {
            let _ = writeln!(out, "{} {} {}", p.name, p.version, p.sha256);
        }
        out.into_bytes()
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn recipe_parses_kernel_and_sorted_roots() {
        let r = Recipe::parse(
            Path::new("p"),
            b"# c\nkernel linux-image-cloud-amd64/bookworm-backports\nzlib1g\nlibc6 # why\n\nlibc6\n",
        )
        .unwrap();
        assert_eq!(r.kernel, "linux-image-cloud-amd64/bookworm-backports");
        assert_eq!(r.roots, ["libc6", "zlib1g"]);
        assert_eq!(r.sha256.len(), 64);
    }

    #[test]
    fn recipe_errors_name_file_and_line() {
        let e =
            Recipe::parse(Path::new("image/packages"), b"kernel k/s\nlibc6 extra\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "image/packages:2: expected a package name or `kernel NAME/SUITE`, got \"libc6 extra\""
        );
        let e = Recipe::parse(Path::new("p"), b"libc6\n").unwrap_err();
        assert_eq!(e.to_string(), "p:0: no `kernel NAME/SUITE` line");
    }

    #[test]
    fn lock_round_trips_and_checks_order() {
        let lock = Lock {
            recipe_sha256: SHA_A.into(),
            packages: vec![
                LockedPackage {
                    name: "a".into(),
                    version: "1:2.0-1".into(),
                    sha256: SHA_A.into(),
                },
                LockedPackage {
                    name: "b".into(),
                    version: "3~bpo12+1".into(),
                    sha256: SHA_B.into(),
                },
            ],
        };
        let bytes = lock.to_bytes();
        assert_eq!(Lock::parse(Path::new("l"), &bytes).unwrap(), lock);
        let swapped = format!("{HEADER}{SHA_A}\nb 1 {SHA_B}\na 1 {SHA_A}\n");
        assert_eq!(
            Lock::parse(Path::new("image/lock"), swapped.as_bytes())
                .unwrap_err()
                .to_string(),
            "image/lock:3: a is not sorted after b"
        );
        let bad_sha = format!("{HEADER}{SHA_A}\na 1 ABC\n");
        assert_eq!(
            Lock::parse(Path::new("l"), bad_sha.as_bytes())
                .unwrap_err()
                .to_string(),
            "l:2: \"ABC\" is not a SHA-256 in lowercase hex"
        );
    }
}
