//! Errors of `mlml-metrics`.

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// The scores do not fit the labels' shape.
    #[error("scores hold {scores} values, labels are {n_samples} samples x {n_classes} classes (expected {})", n_samples * n_classes)]
    ShapeMismatch {
        /// Length of the scores slice.
        scores: usize,
        /// Rows of the labels.
        n_samples: usize,
        /// Columns of the labels.
        n_classes: usize,
    },
    /// A score is NaN.
    #[error("score at sample {sample}, class {class} is NaN")]
    NanScore {
        /// Row.
        sample: usize,
        /// Column.
        class: usize,
    },
    /// Nothing to evaluate.
    #[error("no sample to evaluate")]
    Empty,
    /// A parameter is out of range.
    #[error("{0}")]
    InvalidParameter(String),
}

/// `Result` with [`MetricsError`].
pub type Result<T> = std::result::Result<T, MetricsError>;
