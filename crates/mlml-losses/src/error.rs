//! Errors of `mlml-losses`.

/// A loss could not be built or its state restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A hyperparameter is out of its valid range.
    #[error("{loss}: `{name}` must be {expected}, got {value}")]
    OutOfRange {
        /// Registry name of the loss.
        loss: &'static str,
        /// Hyperparameter name.
        name: &'static str,
        /// The valid range in words.
        expected: &'static str,
        /// The value given.
        value: String,
    },
    /// A name that the registry does not know.
    #[error("unknown loss '{name}'; valid losses: {valid}")]
    UnknownLoss {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// Saved state that does not fit this loss.
    #[error("{loss}: cannot restore state: {message}")]
    State {
        /// Registry name of the loss.
        loss: &'static str,
        /// Why.
        message: String,
    },
    /// Logits, targets and rows that do not fit together.
    #[error("{loss}: {message}")]
    Shape {
        /// Registry name of the loss.
        loss: &'static str,
        /// Both shapes, in words.
        message: String,
    },
    /// An epoch outside the run (0, or past its last epoch).
    #[error("{message}")]
    Epoch {
        /// Why.
        message: String,
    },
    /// A preset name that the registry does not know.
    #[error("unknown preset '{name}'; valid presets: {valid}")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A hyperparameter value that could not be read.
    #[error("{loss}: {message}")]
    Config {
        /// Registry name of the loss.
        loss: &'static str,
        /// Why.
        message: String,
    },
}

/// `Result` with [`LossError`].
pub type Result<T> = std::result::Result<T, LossError>;

/// Checks `low <= value <= high` (inclusive), NaN rejected.
pub(crate) fn check_range(
    loss: &'static str,
    name: &'static str,
    value: f64,
    low: f64,
    high: f64,
    expected: &'static str,
) -> Result<()> {
    if value >= low && value <= high {
        Ok(())
    } else {
        Err(LossError::OutOfRange {
            loss,
            name,
            expected,
            value: value.to_string(),
        })
    }
}
