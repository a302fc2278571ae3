//! A dataset: image paths beside a [`LabelMatrix`], with its split and its history.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::labels::LabelMatrix;

/// One step that made a label set: an import, a generator run. Written to the JSON sidecar so a
/// shared set says how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceStep {
    /// `import`, `drop`, `single-positive`.
    pub step: String,
    /// Parameters as given (format, ratio, seed, generator...).
    pub params: serde_json::Value,
    /// What the step reported (counts before and after).
    #[serde(default)]
    pub report: serde_json::Value,
}

/// Images and their labels.
///
/// `image_paths[i]` is the image of row `i` of `labels`, relative to an image root the user
/// gives at training time.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Image path of each sample, relative to the image root.
    pub image_paths: Vec<PathBuf>,
    /// Labels; its sample ids usually equal the image paths.
    pub labels: LabelMatrix,
    /// Which split this is (`train`, `val`, `test`), when the source says.
    pub split: Option<String>,
    /// How the set was made, oldest step first.
    pub provenance: Vec<ProvenanceStep>,
}

impl Dataset {
    /// Builds a dataset whose sample ids are the image paths.
    ///
    /// # Errors
    /// When `values` does not fit the shape, or holds codes other than 1, -1, 0.
    pub fn from_paths(
        image_paths: Vec<PathBuf>,
        classes: Vec<String>,
        values: Vec<i8>,
        split: Option<String>,
    ) -> Result<Self> {
        let ids = image_paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let labels = LabelMatrix::new(classes, ids, values)?;
        Ok(Self {
            image_paths,
            labels,
            split,
            provenance: Vec::new(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.image_paths.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.image_paths.is_empty()
    }

    /// The same images with other labels (same shape), and one more provenance step.
    ///
    /// # Errors
    /// When the shapes differ.
    pub fn with_labels(&self, labels: LabelMatrix, step: ProvenanceStep) -> Result<Self> {
        if labels.n_samples() != self.len() || labels.classes() != self.labels.classes() {
            return Err(DataError::Shape(format!(
                "new labels are {} x {}, the dataset is {} x {}",
                labels.n_samples(),
                labels.n_classes(),
                self.len(),
                self.labels.n_classes()
            )));
        }
        let mut provenance = self.provenance.clone();
        provenance.push(step);
        Ok(Self {
            image_paths: self.image_paths.clone(),
            labels,
            split: self.split.clone(),
            provenance,
        })
    }

    /// Keeps the samples for which `keep(index)` is true.
    pub fn retain_samples(&mut self, keep: impl Fn(usize) -> bool) {
        self.labels.retain_rows(&keep);
        let mut i = 0;
        self.image_paths.retain(|_| {
            let k = keep(i);
            i += 1;
            k
        });
    }
}
