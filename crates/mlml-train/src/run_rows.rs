//! One split's rows of one kind as the loop reads them (feature vectors, an image array, or image
//! files), and their standardisation.

use burn::tensor::backend::Backend;
use mlml_data::LabelMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{bail, Result};

use crate::source::BatchIter;
use crate::{FeatureSet, ImageArray, ImageFiles, Pass, Source};

/// Rows of one kind (held once per split, so the size of the largest variant does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Rows {
    /// Feature vectors.
    Features(FeatureSet),
    /// Images held in memory.
    Array(ImageArray),
    /// Image files through the pipeline.
    Files(ImageFiles),
}

impl Source for Rows {
    fn labels(&self) -> &LabelMatrix {
        match self {
            Rows::Features(s) => s.labels(),
            Rows::Array(s) => s.labels(),
            Rows::Files(s) => s.labels(),
        }
    }

    fn input_size(&self) -> usize {
        match self {
            Rows::Features(s) => s.input_size(),
            Rows::Array(s) => s.input_size(),
            Rows::Files(s) => s.input_size(),
        }
    }

    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> crate::Result<BatchIter<'a, B>> {
        match self {
            Rows::Features(s) => s.batches::<B>(pass, batch_size, device),
            Rows::Array(s) => s.batches::<B>(pass, batch_size, device),
            Rows::Files(s) => s.batches::<B>(pass, batch_size, device),
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            Rows::Features(s) => s.fingerprint(),
            Rows::Array(s) => s.fingerprint(),
            Rows::Files(s) => s.fingerprint(),
        }
    }

    fn skipped(&self) -> Vec<String> {
        match self {
            Rows::Files(s) => s.skipped(),
            _ => Vec::new(),
        }
    }
}

impl Rows {
    pub(crate) fn select(&self, rows: &[usize]) -> Self {
        match self {
            Rows::Features(s) => Rows::Features(s.select(rows)),
            Rows::Array(s) => Rows::Array(s.select(rows)),
            Rows::Files(s) => Rows::Files(s.select(rows)),
        }
    }

    pub(crate) fn with_labels(self, labels: LabelMatrix) -> Result<Self> {
        Ok(match self {
            Rows::Features(s) => Rows::Features(s.with_labels(labels)?),
            Rows::Array(mut s) => {
                if labels.n_samples() != s.labels.n_samples() {
                    bail!(
                        "{} labels for {} rows",
                        labels.n_samples(),
                        s.labels.n_samples()
                    );
                }
                s.labels = labels;
                Rows::Array(s)
            }
            Rows::Files(s) => Rows::Files(s.with_labels(labels)?),
        })
    }

    /// What the rows are, in words (`feature vectors`, `an image array`, `image files`).
    pub fn kind(&self) -> &'static str {
        match self {
            Rows::Features(_) => "features",
            Rows::Array(_) => "images (array)",
            Rows::Files(_) => "image files",
        }
    }
}

/// The statistics a run standardises its inputs with, learned on its training rows and
/// stored in the run directory (`standardization.json`) for `predict`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Per-feature (or per-channel) means of the training rows.
    pub mean: Vec<f32>,
    /// Per-feature (or per-channel) standard deviations of the training rows.
    pub std: Vec<f32>,
}

impl Standardization {
    /// Standardises `rows` with these statistics (image arrays: at batch time).
    pub fn apply(&self, rows: &mut Rows) {
        match rows {
            Rows::Features(set) => set.standardize(&self.mean, &self.std),
            Rows::Array(array) => array.normalize = Some((self.mean.clone(), self.std.clone())),
            Rows::Files(_) => {}
        }
    }
}
