use std::fmt;
use std::path::PathBuf;

/// A configuration error: where (file, line) and what.
#[derive(Debug, thiserror::Error)]
pub struct ConfError {
    /// The file at fault, as the user named it (the toml, or the file it points to).
    pub file: PathBuf,
    /// 1-based line, when the error is tied to a place in the file.
    pub line: Option<usize>,
    /// What is wrong and what was expected, naming the field; never a secret value.
    pub message: String,
    /// The underlying error (I/O, secrets, certificate), kept for the cause chain.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConfError {
    pub(crate) fn at(
        file: &std::path::Path,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            message: message.into(),
            source: None,
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Something suspicious that does not stop loading (e.g. an unknown field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfWarning {
    /// The file the warning is about.
    pub file: PathBuf,
    /// 1-based line, when the warning is tied to a place in the file.
    pub line: Option<usize>,
    /// What was found, e.g. an unknown field's name.
    pub message: String,
}

impl fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": warning: {}", self.message)
    }
}
