//! How an elementwise loss becomes a scalar.

use burn::tensor::Tensor;
use mlml_ops::SigmoidBackend;
use serde::{Deserialize, Serialize};

/// Sum or mean over all `batch x n_classes` entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Sum of all entries (the ASL / Hill / SPLC line).
    #[default]
    Sum,
    /// Mean over all entries (the single-positive line).
    Mean,
}

impl Reduction {
    /// Reduces a `[batch, n_classes]` matrix.
    pub fn apply<B: SigmoidBackend>(self, matrix: Tensor<B, 2>) -> Tensor<B, 1> {
        match self {
            Reduction::Sum => matrix.sum(),
            Reduction::Mean => matrix.mean(),
        }
    }
}
