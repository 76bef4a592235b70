//! Configuration errors that name the file, the key and what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file that was read.
    pub file: PathBuf,
    /// Key path of the offending value (`camera[1].fps`), empty when the file as a whole is bad.
    pub key: String,
    /// 1-based line and column, where the TOML parser gives them.
    pub location: Option<(usize, usize)>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    pub(super) fn io(file: &Path, error: &std::io::Error) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            location: None,
            message: format!("cannot read the file: {error}"),
        }
    }

    /// An error about the value at `key`.
    pub fn value(file: &Path, key: &str, message: String) -> ConfigError {
        ConfigError { file: file.to_path_buf(), key: key.to_string(), location: None, message }
    }

    pub(super) fn parse(file: &Path, text: &str, error: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
        let key = error.path().to_string();
        let inner = error.into_inner();
        let location = inner.span().map(|span| line_col(text, span.start));
        ConfigError {
            file: file.to_path_buf(),
            key: if key == "." { String::new() } else { key },
            location,
            message: inner.message().trim().to_string(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
