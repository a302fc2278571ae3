//! The one error type of `mlml-data`: every message says where (file, line, field) and what.

use std::path::{Path, PathBuf};

/// Errors from reading, generating or writing label sets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written. The I/O error is part of the message and
    /// deliberately not a `source()`, so that a printed chain (`anyhow`'s `{:#}`) says it once.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file's content is malformed; `location` is a line, a position or a record.
    #[error("{path}:{location}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where in the file: `line 12`, `line 3, column 7`, `record 5`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A file is well-formed but inconsistent as a whole (counts that disagree, nothing in it).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A parameter is outside its valid range.
    #[error("parameter `{name}` must be {expected}, got {value}")]
    OutOfRange {
        /// The parameter's name as a user writes it.
        name: &'static str,
        /// The valid range in words.
        expected: &'static str,
        /// The value given.
        value: String,
    },
    /// Parameters contradict one another or the input.
    #[error("{0}")]
    Usage(String),
    /// A label matrix that cannot be built as asked (shape, values).
    #[error("{0}")]
    Shape(String),
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn parse(
        path: &Path,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            location: location.into(),
            message: message.into(),
        }
    }

    pub(crate) fn at_line(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self::parse(path, format!("line {line}"), message)
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Reads a whole UTF-8 text file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_file(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        DataError::parse(path, format!("byte {offset}"), "not valid UTF-8")
    })
}
