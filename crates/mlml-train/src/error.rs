//! Errors of `mlml-train`.

use std::path::PathBuf;

/// A run could not start, go on or be resumed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or writing data or a run directory's files.
    #[error(transparent)]
    Data(#[from] mlml_data::DataError),
    /// Building or driving the loss.
    #[error(transparent)]
    Loss(#[from] mlml_losses::LossError),
    /// Building a model or reading its weights.
    #[error(transparent)]
    Model(#[from] mlml_models::ModelError),
    /// Computing the validation metrics.
    #[error(transparent)]
    Metrics(#[from] mlml_metrics::MetricsError),
    /// A checkpoint that cannot be written or read.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The loss became NaN or infinite; the last good checkpoint stays.
    #[error("the loss is {value} at epoch {epoch}, batch {batch}; stopping (the last good checkpoint, if any, is kept); lower the learning rate")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The value.
        value: f32,
    },
    /// Inputs or settings that do not fit together.
    #[error("{0}")]
    Config(String),

    /// A data-parallel operation across devices failed, most often because another device's
    /// peer stopped with an error of its own (the one reported).
    #[error("across devices, {0}")]
    Collective(String),
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// Returns early with a [`TrainError::Config`] of the formatted message (anyhow's `bail!`, for a
/// library).
macro_rules! bail {
    ($($message:tt)*) => {
        return Err($crate::error::TrainError::Config(format!($($message)*)))
    };
}
pub(crate) use bail;

/// A failure with what was being done prefixed (anyhow's `Context`, for a library): the
/// message becomes `"{context}: {error}"`.
pub(crate) trait Context<T> {
    /// With a fixed context.
    fn context<C: std::fmt::Display>(self, context: C) -> Result<T>;
    /// With a context built only on failure.
    fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, context: F) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context<C: std::fmt::Display>(self, context: C) -> Result<T> {
        self.map_err(|e| TrainError::Config(format!("{context}: {e}")))
    }

    fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, context: F) -> Result<T> {
        self.map_err(|e| TrainError::Config(format!("{}: {e}", context())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C: std::fmt::Display>(self, context: C) -> Result<T> {
        self.ok_or_else(|| TrainError::Config(context.to_string()))
    }

    fn with_context<C: std::fmt::Display, F: FnOnce() -> C>(self, context: F) -> Result<T> {
        self.ok_or_else(|| TrainError::Config(context().to_string()))
    }
}
