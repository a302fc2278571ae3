//! Errors of `mlml-models`.

use std::path::PathBuf;

/// A model could not be built, loaded or fed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A weight file that could not be read (missing, truncated, not a state dict).
    #[error("{path}: cannot read weights: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// A weight file that does not fit the architecture.
    #[error("{path}: weights do not fit the model:\n{details}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Missing, unexpected and mis-shaped keys, one per line.
        details: String,
    },
    /// An image that could not be decoded.
    #[error("{path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A configuration that cannot be built.
    #[error("{0}")]
    Config(String),
}

/// `Result` with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
