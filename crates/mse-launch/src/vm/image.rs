//! The guest image a VM launcher boots: `vmlinuz`, `initrd.img` and `image.json` in one
//! directory (written by `mse-node image build`). The launcher needs the kernel command line
//! template (with `{spec}` where the spec hash goes) and the digest of `image.json`, which is
//! the spec's `runtime.vm.image_sha256`.

use std::path::{Path, PathBuf};

use crate::Digest32;

/// The placeholder of the spec hash in the command line template.
pub const SPEC_PLACEHOLDER: &str = "{spec}";

/// Why an image directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file is missing or unreadable.
    #[error("guest image {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `image.json` is not what the launcher needs.
    #[error("guest image {path}: {why}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// A guest image directory, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    /// The image's kernel.
    pub kernel: PathBuf,
    /// The image's initrd.
    pub initrd: PathBuf,
    /// The kernel command line template (holds [`SPEC_PLACEHOLDER`] exactly once).
    pub cmdline_template: String,
    /// SHA-256 of `image.json`'s bytes.
    pub image_sha256: Digest32,
}

/// Finds the command line template in `image.json`: the string field `cmdline` or
/// `cmdline_template`, at the top level or under `kernel`.
fn template_of(doc: &serde_json::Value) -> Option<String> {
    let keys = ["cmdline_template", "cmdline"];
    for k in keys {
        if let Some(s) = doc.get(k).and_then(|v| v.as_str()) {
            return Some(s.to_owned());
        }
        if let Some(s) = doc
            .get("kernel")
            .and_then(|k2| k2.get(k))
            .and_then(|v| v.as_str())
        {
            return Some(s.to_owned());
        }
    }
    None
}

impl GuestImage {
    /// Reads `dir/image.json` and checks that the kernel and initrd are there.
    pub fn open(dir: &Path) -> Result<GuestImage, ImageError> {
        let manifest = dir.join("image.json");
        let bytes = std::fs::read(&manifest).map_err(|source| ImageError::Io {
            path: manifest.clone(),
            source,
        })?;
        let bad = |why: String| ImageError::Manifest {
            path: manifest.clone(),
            why,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let template = template_of(&doc).ok_or_else(|| bad("no cmdline template".into()))?;
        if template.matches(SPEC_PLACEHOLDER).count() != 1 {
            return Err(bad(format!(
                "the cmdline template must hold {SPEC_PLACEHOLDER} exactly once: {template:?}"
            )));
        }
        let kernel = dir.join("vmlinuz");
        let initrd = dir.join("initrd.img");
        for p in [&kernel, &initrd] {
            std::fs::metadata(p).map_err(|source| ImageError::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(GuestImage {
            kernel,
            initrd,
            cmdline_template: template,
            image_sha256: Digest32::of(&bytes),
        })
    }

    /// The kernel command line for a spec hash.
    pub fn cmdline(&self, spec_hash: &Digest32) -> String {
        self.cmdline_template
            .replace(SPEC_PLACEHOLDER, &spec_hash.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_an_image_and_fills_the_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), b"k").unwrap();
        std::fs::write(dir.path().join("initrd.img"), b"i").unwrap();
        let json = br#"{"cmdline":"console=ttyS0 quiet mse.spec={spec}"}"#;
        std::fs::write(dir.path().join("image.json"), json).unwrap();
        let img = GuestImage::open(dir.path()).unwrap();
        assert_eq!(img.image_sha256, Digest32::of(json));
        assert_eq!(
            img.cmdline(&Digest32([1; 32])),
            format!("console=ttyS0 quiet mse.spec={}", "01".repeat(32))
        );
        std::fs::write(dir.path().join("image.json"), br#"{"cmdline":"x"}"#).unwrap();
        assert_eq!(
            GuestImage::open(dir.path()).unwrap_err().to_string(),
            format!(
                "guest image {}: the cmdline template must hold {{spec}} exactly once: \"x\"",
                dir.path().join("image.json").display()
            )
        );
    }
}
