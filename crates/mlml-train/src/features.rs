//! Feature-vector datasets (the embedded scene and yeast sets, pre-extracted backbone
//! features): reading, splitting and standardising them. They train through [`crate::train`]
//! like images do.

use std::path::Path;

use mlml_data::formats::{npy, ZeroMeans};
use mlml_data::LabelMatrix;

use crate::error::{Result, TrainError};

/// Which of `labels`' rows `rows` names, and those rows' labels (in ascending order): what
/// every source's `select` starts from.
///
/// # Panics
/// When a row is out of range.
pub(crate) fn kept_rows(labels: &LabelMatrix, rows: &[usize]) -> (Vec<bool>, LabelMatrix) {
    let mut keep = vec![false; labels.n_samples()];
    for &r in rows {
        keep[r] = true;
    }
    let mut kept = labels.clone();
    kept.retain_rows(|i| keep[i]);
    (keep, kept)
}

/// Per-feature means and standard deviations (population) from the means of `x` and of
/// `x^2`; a constant feature gets a standard deviation of 1, so standardising leaves it at 0.
pub(crate) fn mean_and_std(mean: &[f64], mean_square: &[f64]) -> (Vec<f32>, Vec<f32>) {
    let std = mean_square
        .iter()
        .zip(mean)
        .map(|(s, m)| {
            let var = (s - m * m).max(0.0);
            if var > 0.0 {
                var.sqrt() as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

/// Feature vectors with their labels.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    /// Row-major `[n, dim]`.
    pub features: Vec<f32>,
    /// Features per row.
    pub dim: usize,
    /// Labels (1 / -1 / 0), one row per feature row.
    pub labels: LabelMatrix,
}

impl FeatureSet {
    /// Reads an f32-convertible `[n, d]` feature matrix and a `[n, C]` label matrix (`.npy`),
    /// with class names.
    ///
    /// # Errors
    /// Unreadable files, or shapes that disagree.
    pub fn from_npy(
        features: &Path,
        labels: &Path,
        classes: Vec<String>,
        zero_means: ZeroMeans,
    ) -> Result<Self> {
        let x = npy::read_f32(features)?;
        let y = npy::read_labels(labels, zero_means)?;
        if x.shape.len() != 2 || x.shape[0] != y.n_samples || y.n_classes != classes.len() {
            return Err(TrainError::Config(format!(
                "{}: features {:?} do not fit {}: labels {} x {} with {} class names",
                features.display(),
                x.shape,
                labels.display(),
                y.n_samples,
                y.n_classes,
                classes.len()
            )));
        }
        let ids = (0..y.n_samples).map(|i| format!("row{i}")).collect();
        Ok(Self {
            dim: x.shape[1],
            features: x.values,
            labels: LabelMatrix::new(classes, ids, y.values)?,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.n_samples()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `rows` (ascending), with their labels.
    ///
    /// # Panics
    /// When a row is out of range.
    pub fn select(&self, rows: &[usize]) -> Self {
        let (keep, labels) = kept_rows(&self.labels, rows);
        let features = (0..self.len())
            .filter(|&i| keep[i])
            .flat_map(|i| {
                self.features[i * self.dim..(i + 1) * self.dim]
                    .iter()
                    .copied()
            })
            .collect();
        Self {
            features,
            dim: self.dim,
            labels,
        }
    }

    /// The same features with other labels (a partial-label version of the same rows).
    ///
    /// # Errors
    /// Labels of another shape.
    pub fn with_labels(&self, labels: LabelMatrix) -> Result<Self> {
        if labels.n_samples() != self.len() || labels.n_classes() != self.labels.n_classes() {
            return Err(TrainError::Config(format!(
                "labels are {} x {}, the set is {} x {}",
                labels.n_samples(),
                labels.n_classes(),
                self.len(),
                self.labels.n_classes()
            )));
        }
        Ok(Self {
            labels,
            ..self.clone()
        })
    }

    /// Per-feature mean and standard deviation (population, as scikit-learn's scaler; a
    /// constant feature gets 1).
    pub fn standardization(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.len().max(1) as f64;
        let mut mean = vec![0.0f64; self.dim];
        let mut square = vec![0.0f64; self.dim];
        for row in self.features.chunks_exact(self.dim) {
            for (j, x) in row.iter().enumerate() {
                mean[j] += f64::from(*x);
                square[j] += f64::from(*x) * f64::from(*x);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|s| s / n).collect();
        let square: Vec<f64> = square.iter().map(|s| s / n).collect();
        mean_and_std(&mean, &square)
    }

    /// Standardises in place with given statistics (the training set's).
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) {
        for row in self.features.chunks_exact_mut(self.dim) {
            for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                *x = (*x - m) / s;
            }
        }
    }
}
