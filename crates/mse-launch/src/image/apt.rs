//! A private apt (own configuration, lists and an empty dpkg status under the cache directory) that
//! resolves and downloads the guest's Debian packages by name. The host's apt sources are only
//! read, to learn which Debian mirror this machine uses; the bookworm-backports suite (the guest's
//! kernel) is added in the private configuration, never in the host's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ImageError;
use super::lock::{LockedPackage, is_sha256_hex};

/// The Debian release the guest is made from.
pub const RELEASE: &str = "bookworm";

/// The private apt of one cache directory.
pub struct Apt {
    root: PathBuf,
    conf: PathBuf,
    configured: bool,
    updated: bool,
}

/// Where one package version downloads from, with the SHA-256 the signed archive index gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUri {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// SHA-256 from the archive's (signed) index.
    pub sha256: String,
    /// File name apt downloads it as.
    pub filename: String,
}

impl Apt {
    /// The private apt of `cache/apt`. Nothing is written or run until apt is needed (a build
    /// whose every .deb is cached never runs apt).
    pub fn new(cache: &Path) -> Apt {
        let root = cache.join("apt");
        Apt {
            conf: root.join("apt.conf"),
            root,
            configured: false,
            updated: false,
        }
    }

    /// Writes the private configuration (idempotent).
    fn configure(&mut self) -> Result<(), ImageError> {
        if self.configured {
            return Ok(());
        }
        let root = &self.root;
        for d in [
            "etc/apt/sources.list.d",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| ImageError::io(&p, e))?;
        }
        let status = root.join("var/lib/dpkg/status");
        write_if_changed(&status, b"")?;
        let (main, security) = host_debian_uris()?;
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let sources = format!(
            "deb [signed-by={keyring}] {main} {RELEASE} main\n\
             deb [signed-by={keyring}] {main} {RELEASE}-updates main\n\
             deb [signed-by={keyring}] {security} {RELEASE}-security main\n\
             deb [signed-by={keyring}] {main} {RELEASE}-backports main\n"
        );
        write_if_changed(&root.join("etc/apt/sources.list"), sources.as_bytes())?;
        let r = root.display();
        let conf_text = format!(
            "Dir \"{r}/\";\n\
             Dir::State::status \"{r}/var/lib/dpkg/status\";\n\
             Dir::Etc::SourceParts \"{r}/etc/apt/sources.list.d\";\n\
             Dir::Etc::Parts \"{r}/etc/apt/apt.conf.d\";\n\
             Dir::Etc::PreferencesParts \"{r}/etc/apt/preferences.d\";\n\
             APT::Architecture \"amd64\";\n\
             APT::Architectures {{ \"amd64\"; }};\n\
             APT::Install-Recommends \"false\";\n\
             APT::Install-Suggests \"false\";\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::Retries \"3\";\n"
        );
        write_if_changed(&self.conf, conf_text.as_bytes())?;
        self.configured = true;
        Ok(())
    }

    fn run(&mut self, prog: &str, args: &[&str], dir: Option<&Path>) -> Result<String, ImageError> {
        self.configure()?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .env("APT_CONFIG", &self.conf)
            .env("LC_ALL", "C");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let shown = format!("{prog} {}", args.join(" "));
        let out = cmd.output().map_err(|e| ImageError::Apt {
            cmd: shown.clone(),
            msg: e.to_string(),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let msg = stderr
                .lines()
                .filter(|l| l.starts_with("E:"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ImageError::Apt {
                cmd: shown,
                msg: if msg.is_empty() {
                    format!("{} ({})", stderr.trim(), out.status)
                } else {
                    msg
                },
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `apt-get update` of the private lists (once per build).
    pub fn update(&mut self) -> Result<(), ImageError> {
        if !self.updated {
            self.run("apt-get", &["update", "-qq"], None)?;
            self.updated = true;
        }
        Ok(())
    }

    /// The exact kernel package (name, version) a kernel metapackage (`NAME/SUITE`) depends on.
    pub fn kernel_package(&mut self, meta: &str) -> Result<(String, String), ImageError> {
        let out = self.run("apt-cache", &["show", "--no-all-versions", meta], None)?;
        let depends = out
            .lines()
            .find_map(|l| l.strip_prefix("Depends: "))
            .ok_or_else(|| ImageError::Kernel(format!("{meta} has no Depends")))?;
        // "linux-image-6.12.95+deb12-cloud-amd64 (= 6.12.95-1~bpo12+1)[, ...]"
        let first = depends.split(',').next().unwrap_or("").trim();
        let (name, rest) = first
            .split_once(" (= ")
            .ok_or_else(|| ImageError::Kernel(format!("{meta}: unexpected Depends {first:?}")))?;
        let version = rest.trim_end_matches(')');
        if !name.starts_with("linux-image-") {
            return Err(ImageError::Kernel(format!(
                "{meta} depends on {name}, not a linux-image-* package"
            )));
        }
        Ok((name.to_string(), version.to_string()))
    }

    /// The full dependency closure of `roots` (name, version), as apt resolves it onto an empty
    /// system, sorted by name.
    pub fn resolve(&mut self, roots: &[String]) -> Result<Vec<(String, String)>, ImageError> {
        let mut args = vec!["install", "-s", "-qq"];
        args.extend(roots.iter().map(String::as_str));
        let out = self.run("apt-get", &args, None)?;
        let mut set = BTreeSet::new();
        for line in out.lines() {
            // "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])"
            if let Some(rest) = line.strip_prefix("Inst ") {
                let mut it = rest.splitn(2, " (");
                let name = it.next().unwrap_or("");
                let version = it
                    .next()
                    .and_then(|v| v.split_whitespace().next())
                    .unwrap_or("");
                if name.is_empty() || version.is_empty() {
                    return Err(ImageError::Apt {
                        cmd: "apt-get install -s".into(),
                        msg: format!("unexpected line {line:?}"),
                    });
                }
                set.insert((name.to_string(), version.to_string()));
            }
        }
        Ok(set.into_iter().collect())
    }

    /// Download locations and index SHA-256 of exact versions. A version the archive no longer
    /// has fails with [`ImageError::Apt`] (apt's "Version … was not found").
    pub fn uris(&mut self, pkgs: &[(String, String)]) -> Result<Vec<PackageUri>, ImageError> {
        let specs: Vec<String> = pkgs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut args = vec!["download", "--print-uris", "-qq"];
        args.extend(specs.iter().map(String::as_str));
        let out = self.run("apt-get", &args, None)?;
        let mut uris = Vec::new();
        for line in out.lines().filter(|l| l.starts_with('\'')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let bad = || ImageError::Apt {
                cmd: "apt-get download --print-uris".into(),
                msg: format!("unexpected line {line:?}"),
            };
            let [_, filename, _, hash] = words.as_slice() else {
                return Err(bad());
            };
            let sha256 = hash.strip_prefix("SHA256:").ok_or_else(bad)?;
            let (name, version) = name_version(filename).ok_or_else(bad)?;
            if !is_sha256_hex(sha256) {
                return Err(bad());
            }
            uris.push(PackageUri {
                name,
                version,
                sha256: sha256.to_string(),
                filename: filename.to_string(),
            });
        }
        for (n, v) in pkgs {
            if !uris.iter().any(|u| &u.name == n && &u.version == v) {
                return Err(ImageError::Apt {
                    cmd: "apt-get download --print-uris".into(),
                    msg: format!("no download location for {n} {v}"),
                });
            }
        }
        Ok(uris)
    }

    /// Downloads exact versions into `dir` (apt checks them against the signed index).
    pub fn download(&mut self, pkgs: &[LockedPackage], dir: &Path) -> Result<(), ImageError> {
        let specs: Vec<String> = pkgs
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        let mut args = vec!["download", "-qq"];
        args.extend(specs.iter().map(String::as_str));
        self.run("apt-get", &args, Some(dir)).map(|_| ())
    }

    /// The private apt root (for messages).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `name_version_arch.deb` (version URL-escaped, e.g. `1%3a1.2`) → (name, version).
fn name_version(filename: &str) -> Option<(String, String)> {
    let stem = filename.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let name = parts.next()?;
    let version = parts.next()?;
    parts.next()?;
    Some((name.to_string(), unescape(version)?))
}

fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The host's Debian archive and security archive URIs, from its own apt configuration
/// (`apt-get indextargets`), so the build uses whatever mirror this machine is set up with.
/// `MSE_IMAGE_DEBIAN_URI` / `MSE_IMAGE_DEBIAN_SECURITY_URI` override them.
fn host_debian_uris() -> Result<(String, String), ImageError> {
    let env_main = std::env::var("MSE_IMAGE_DEBIAN_URI").ok();
    let env_sec = std::env::var("MSE_IMAGE_DEBIAN_SECURITY_URI").ok();
    if let (Some(m), Some(s)) = (&env_main, &env_sec) {
        return Ok((m.clone(), s.clone()));
    }
    let out = Command::new("apt-get")
        .args(["indextargets", "--format", "$(REPO_URI) $(CODENAME)"])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| ImageError::Apt {
            cmd: "apt-get indextargets".into(),
            msg: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut main = None;
    let mut security = None;
    for line in text.lines() {
        let Some((uri, codename)) = line.split_once(' ') else {
            continue;
        };
        if codename == format!("{RELEASE}-security") {
            security.get_or_insert_with(|| uri.to_string());
        } else if codename == RELEASE || codename == format!("{RELEASE}-updates") {
            main.get_or_insert_with(|| uri.to_string());
        }
    }
    match (env_main.or(main), env_sec.or(security)) {
        (Some(m), Some(s)) => Ok((m, s)),
        _ => Err(ImageError::Apt {
            cmd: "apt-get indextargets".into(),
            msg: format!(
                "the host's apt sources have no Debian {RELEASE} and {RELEASE}-security archive; \
                 set MSE_IMAGE_DEBIAN_URI and MSE_IMAGE_DEBIAN_SECURITY_URI"
            ),
        }),
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| ImageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_file_names_give_name_and_version() {
        assert_eq!(
            name_version("zlib1g_1%3a1.2.13.dfsg-1+deb12u1_amd64.deb"),
            Some(("zlib1g".into(), "1:1.2.13.dfsg-1+deb12u1".into()))
        );
        assert_eq!(
            name_version("linux-image-6.12.95+deb12-cloud-amd64_6.12.95-1~bpo12+1_amd64.deb"),
            Some((
                "linux-image-6.12.95+deb12-cloud-amd64".into(),
                "6.12.95-1~bpo12+1".into()
            ))
        );
        assert_eq!(name_version("nover.deb"), None);
        assert_eq!(name_version("a_1%zz_amd64.deb"), None);
    }
}
