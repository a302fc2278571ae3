//! One split's rows of one kind as the loop reads them (feature vectors, an image array, or image
//! files), and their standardisation.

use burn::tensor::backend::Backend;
use mlml_data::LabelMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{bail, Result};

use crate::source::BatchIter;
use crate::{FeatureSet, ImageArray, ImageFiles, Pass, Source};

/// Any of the three sources, the one a split's rows come in (held once per split, so the size of
/// the largest variant does not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnySource {
    /// Feature vectors.
    Features(FeatureSet),
    /// Images held in memory.
    Array(ImageArray),
    /// Image files through the pipeline.
    Files(ImageFiles),
}

impl Source for AnySource {
    fn labels(&self) -> &LabelMatrix {
        match self {
            AnySource::Features(s) => s.labels(),
            AnySource::Array(s) => s.labels(),
            AnySource::Files(s) => s.labels(),
        }
    }

    fn input_size(&self) -> usize {
        match self {
            AnySource::Features(s) => s.input_size(),
            AnySource::Array(s) => s.input_size(),
            AnySource::Files(s) => s.input_size(),
        }
    }

    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> crate::Result<BatchIter<'a, B>> {
        match self {
            AnySource::Features(s) => s.batches::<B>(pass, batch_size, device),
            AnySource::Array(s) => s.batches::<B>(pass, batch_size, device),
            AnySource::Files(s) => s.batches::<B>(pass, batch_size, device),
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            AnySource::Features(s) => s.fingerprint(),
            AnySource::Array(s) => s.fingerprint(),
            AnySource::Files(s) => s.fingerprint(),
        }
    }

    fn skipped(&self) -> Vec<String> {
        match self {
            AnySource::Files(s) => s.skipped(),
            _ => Vec::new(),
        }
    }
}

impl AnySource {
    pub(crate) fn select(&self, rows: &[usize]) -> Self {
        match self {
            AnySource::Features(s) => AnySource::Features(s.select(rows)),
            AnySource::Array(s) => AnySource::Array(s.select(rows)),
            AnySource::Files(s) => AnySource::Files(s.select(rows)),
        }
    }

    pub(crate) fn with_labels(self, labels: LabelMatrix) -> Result<Self> {
        Ok(match self {
            AnySource::Features(s) => AnySource::Features(s.with_labels(labels)?),
            AnySource::Array(mut s) => {
                if labels.n_samples() != s.labels.n_samples() {
                    bail!(
                        "{} labels for {} rows",
                        labels.n_samples(),
                        s.labels.n_samples()
                    );
                }
                s.labels = labels;
                AnySource::Array(s)
            }
            AnySource::Files(s) => AnySource::Files(s.with_labels(labels)?),
        })
    }

    /// What the rows are, in words (`feature vectors`, `an image array`, `image files`).
    pub fn kind(&self) -> &'static str {
        match self {
            AnySource::Features(_) => "features",
            AnySource::Array(_) => "images (array)",
            AnySource::Files(_) => "image files",
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
    pub fn apply(&self, rows: &mut AnySource) {
        match rows {
            AnySource::Features(set) => set.standardize(&self.mean, &self.std),
            AnySource::Array(array) => {
                array.normalize = Some((self.mean.clone(), self.std.clone()))
            }
            AnySource::Files(_) => {}
        }
    }
}
