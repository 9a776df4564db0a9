//! `.mseignore`: which files of the code directory go into the package, with real gitignore
//! semantics (negation, anchored patterns, `dir/`), matched by the `ignore` crate.
//!
//! Hidden paths (a component starting with `.`) are left out unless a negated pattern names
//! them, as the original left every hidden path out of its package.

use std::fs;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Name of the ignore file, read at the root of the code directory.
pub const MSEIGNORE_FILE: &str = ".mseignore";

/// The default `.mseignore`, as the original scaffolded it.
pub const DEFAULT_MSEIGNORE: &str = "\
mse.toml
secrets.json
secrets_to_seal.json
.mseignore
__pycache__
*.py[cod]
.git*
.vscode/
.idea/
*.egg-info/
*.egg
.venv
.env
";

/// A file's identity whatever path (or symlink) reaches it.
type FileId = (u64, u64);

fn file_id(meta: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Deepest directory nesting walked; also what stops a loop of directory symlinks.
const MAX_DEPTH: usize = 64;

/// A file to package: its path relative to the code directory (with `/`) and on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFile {
    /// Path inside the package: relative to the code directory, `/`-separated, UTF-8.
    pub rel: String,
    /// Path on disk to read the content from (may be reached through an in-tree symlink).
    pub abs: PathBuf,
}

/// Why the code directory cannot be packaged.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// A bad pattern in `.mseignore`.
    #[error("{}: {message}", path.display())]
    Pattern {
        /// The `.mseignore` file.
        path: PathBuf,
        /// The matcher's description of the bad pattern.
        message: String,
    },
    /// A file or directory could not be read or inspected.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A name that is not UTF-8 (package paths are UTF-8 strings).
    #[error("{}: path is not valid UTF-8", path.display())]
    NonUtf8 {
        /// The offending path.
        path: PathBuf,
    },
    /// A symbolic link whose target is outside the code directory.
    #[error("{}: symbolic link to {} leaves the code directory", path.display(), target.display())]
    SymlinkOutside {
        /// The link.
        path: PathBuf,
        /// Its resolved target.
        target: PathBuf,
    },
    /// Neither a regular file nor a directory (socket, FIFO, device).
    #[error("{}: only regular files and directories can be packaged", path.display())]
    Special {
        /// The offending path.
        path: PathBuf,
    },
    /// A directory symlink pointing to one of its own ancestors.
    #[error("{}: symbolic link to its own ancestor {} (a loop)", path.display(), target.display())]
    SymlinkLoop {
        /// The link.
        path: PathBuf,
        /// The ancestor it resolves to.
        target: PathBuf,
    },
    /// More than `MAX_DEPTH` (64) nested directories.
    #[error("{}: nested deeper than {MAX_DEPTH} directories (a symbolic link loop?)", path.display())]
    TooDeep {
        /// The directory past the limit.
        path: PathBuf,
    },
}

/// Lists the files to package, sorted by relative path. Files in `always_exclude` (the
/// configuration, secrets and TLS key) are never listed, whatever `.mseignore` says.
pub fn collect_code_files(
    code_dir: &Path,
    always_exclude: &[PathBuf],
) -> Result<Vec<CodeFile>, IgnoreError> {
    let root = fs::canonicalize(code_dir).map_err(|source| IgnoreError::Io {
        path: code_dir.to_path_buf(),
        source,
    })?;
    let matcher = load_matcher(&root)?;
    let excluded: Vec<FileId> = always_exclude
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| file_id(&m))
        .collect();
    let mut out = Vec::new();
    walk(&root, &root, "", 0, &matcher, &excluded, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn load_matcher(root: &Path) -> Result<Gitignore, IgnoreError> {
    let mut builder = GitignoreBuilder::new(root);
    let file = root.join(MSEIGNORE_FILE);
    if file.is_file() {
        if let Some(err) = builder.add(&file) {
            return Err(IgnoreError::Pattern {
                path: file,
                message: err.to_string(),
            });
        }
    }
    builder.build().map_err(|e| IgnoreError::Pattern {
        path: file,
        message: e.to_string(),
    })
}

fn walk(
    root: &Path,
    dir: &Path,
    rel_dir: &str,
    depth: usize,
    matcher: &Gitignore,
    excluded: &[FileId],
    out: &mut Vec<CodeFile>,
) -> Result<(), IgnoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IgnoreError::Io { path, source }
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| IgnoreError::NonUtf8 { path: path.clone() })?;
        let rel = if rel_dir.is_empty() {
            name.clone()
        } else {
            format!("{rel_dir}/{name}")
        };
        let meta = fs::metadata(&path).map_err(io(&path))?;
        let is_dir = meta.is_dir();
        match matcher.matched(&path, is_dir) {
            Match::Ignore(_) => continue,
            Match::None if name.starts_with('.') => continue,
            _ => {}
        }
        if entry.file_type().map_err(io(&path))?.is_symlink() {
            let target = fs::canonicalize(&path).map_err(io(&path))?;
            if !target.starts_with(root) {
                return Err(IgnoreError::SymlinkOutside { path, target });
            }
            let here = fs::canonicalize(dir).map_err(io(dir))?;
            if is_dir && here.starts_with(&target) {
                return Err(IgnoreError::SymlinkLoop { path, target });
            }
        }
        if is_dir {
            if depth >= MAX_DEPTH {
                return Err(IgnoreError::TooDeep { path });
            }
            walk(root, &path, &rel, depth + 1, matcher, excluded, out)?;
        } else if meta.is_file() {
            if !excluded.contains(&file_id(&meta)) {
                out.push(CodeFile { rel, abs: path });
            }
        } else {
            return Err(IgnoreError::Special { path });
        }
    }
    Ok(())
}
