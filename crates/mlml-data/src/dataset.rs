//! A dataset: image paths beside a [`LabelMatrix`], with its split and its history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::labels::{LabelMatrix, POSITIVE};

/// The provenance step `review::apply` records.
pub(crate) const REVIEW_STEP: &str = "review-apply";

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

impl Dataset {
    /// The labels of a training set (`full`, whose row `r` is the image `images[r]`) as this
    /// set observes them, row by row: Cole et al.'s protocol of training on a released
    /// observed-label file, such as a Hill / SPLC list imported with `mlml-data import`.
    /// This set's image paths are read under `root`, `source` names it in errors.
    ///
    /// The two must list the same images, each once, and the same classes (in any order), and
    /// an observed positive must be a positive of the full labels: anything else means they
    /// describe different data. A set that `review apply` added accepted suggestions to (its
    /// provenance says so) may observe positives the training file lacks.
    ///
    /// # Errors
    /// A class of one missing from the other, an image listed twice here, a training image
    /// without a line here or the other way round, or a positive here that the full labels do
    /// not have; each names the image, class or row.
    pub fn observed_labels_of(
        &self,
        source: &Path,
        full: &LabelMatrix,
        images: &[PathBuf],
        root: &Path,
    ) -> Result<LabelMatrix> {
        let own: Vec<PathBuf> = self.image_paths.iter().map(|p| root.join(p)).collect();
        self.observed_by_key(source, full, &own, images, Some(root))
    }

    /// [`Dataset::observed_labels_of`] for rows without image files (feature vectors, image
    /// arrays): the rows are matched by their sample ids, which the training file and a set a
    /// run wrote (`observed-labels.npy`) share.
    ///
    /// # Errors
    /// As [`Dataset::observed_labels_of`].
    pub fn observed_labels_by_id(&self, source: &Path, full: &LabelMatrix) -> Result<LabelMatrix> {
        let own: Vec<PathBuf> = self.labels.sample_ids().iter().map(PathBuf::from).collect();
        let wanted: Vec<PathBuf> = full.sample_ids().iter().map(PathBuf::from).collect();
        self.observed_by_key(source, full, &own, &wanted, None)
    }

    /// The matching of the two: `own[i]` keys this set's row `i`, `wanted[r]` the training row
    /// `r`; keys are shown without `root`.
    fn observed_by_key(
        &self,
        source: &Path,
        full: &LabelMatrix,
        own: &[PathBuf],
        images: &[PathBuf],
        root: Option<&Path>,
    ) -> Result<LabelMatrix> {
        let root = root.unwrap_or(Path::new(""));
        // Accepted suggestions are a reviewer's decisions, which the training file's labels
        // need not hold: only a set no review added to must observe a subset of them.
        let reviewed = self.provenance.iter().any(|p| p.step == REVIEW_STEP);
        let invalid = |message: String| DataError::Invalid {
            path: source.to_path_buf(),
            message,
        };
        let columns = full
            .classes()
            .iter()
            .map(|name| {
                self.labels
                    .class_index(name)
                    .ok_or_else(|| invalid(format!("no class '{name}' (the training set has it)")))
            })
            .collect::<Result<Vec<usize>>>()?;
        if self.labels.n_classes() != full.n_classes() {
            let extra: Vec<&str> = self
                .labels
                .classes()
                .iter()
                .filter(|c| full.class_index(c).is_none())
                .map(String::as_str)
                .collect();
            return Err(invalid(format!(
                "classes {} are not in the training set",
                extra.join(", ")
            )));
        }
        let mut by_path: HashMap<&Path, usize> = HashMap::with_capacity(self.len());
        for (i, key) in own.iter().enumerate() {
            if by_path.insert(key.as_path(), i).is_some() {
                return Err(invalid(format!(
                    "image {} is listed twice",
                    key.strip_prefix(root).unwrap_or(key).display()
                )));
            }
        }
        let mut values = Vec::with_capacity(full.values().len());
        for (row, file) in images.iter().enumerate() {
            let Some(&i) = by_path.get(file.as_path()) else {
                return Err(invalid(format!(
                    "no line for {} (row {} of the training set)",
                    file.strip_prefix(root).unwrap_or(file).display(),
                    row + 1
                )));
            };
            let observed = self.labels.row(i);
            for (class, &column) in columns.iter().enumerate() {
                let value = observed[column];
                if value == POSITIVE && full.row(row)[class] != POSITIVE && !reviewed {
                    return Err(invalid(format!(
                        "{} is positive for '{}', which the training set does not label \
                         positive: the two files describe different labels",
                        self.image_paths[i].display(),
                        full.classes()[class]
                    )));
                }
                values.push(value);
            }
        }
        if self.len() != images.len() {
            return Err(invalid(format!(
                "{} images, the training set {}; an observed set must list the training \
                 images, each once",
                self.len(),
                images.len()
            )));
        }
        LabelMatrix::new(full.classes().to_vec(), full.sample_ids().to_vec(), values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str], classes: &[&str], values: Vec<i8>) -> Dataset {
        Dataset::from_paths(
            paths.iter().map(PathBuf::from).collect(),
            classes.iter().map(|c| c.to_string()).collect(),
            values,
            None,
        )
        .unwrap()
    }

    /// The training set: a.jpg (cat, dog), b.jpg (dog), under `/data`.
    fn training() -> (LabelMatrix, Vec<PathBuf>) {
        let full = set(&["a.jpg", "b.jpg"], &["cat", "dog"], vec![1, 1, -1, 1]);
        let paths = full
            .image_paths
            .iter()
            .map(|p| Path::new("/data").join(p))
            .collect();
        (full.labels, paths)
    }

    fn observe(observed: &Dataset) -> Result<LabelMatrix> {
        let (full, paths) = training();
        observed.observed_labels_of(Path::new("obs.tsv"), &full, &paths, Path::new("/data"))
    }

    #[test]
    fn rows_and_classes_are_matched_by_name_in_any_order() {
        // Lines in another order, classes in another order.
        let observed = set(&["b.jpg", "a.jpg"], &["dog", "cat"], vec![1, 0, 0, 1]);
        let labels = observe(&observed).unwrap();
        assert_eq!(labels.classes(), ["cat", "dog"]);
        assert_eq!(labels.row(0), [1, 0]);
        assert_eq!(labels.row(1), [0, 1]);
    }

    #[test]
    fn sets_that_describe_other_data_are_refused_with_the_reason() {
        let cases = [
            (
                set(&["a.jpg", "b.jpg"], &["cat", "owl"], vec![1, 0, 0, 0]),
                "no class 'dog'",
            ),
            (
                set(&["a.jpg", "c.jpg"], &["cat", "dog"], vec![1, 0, 0, 1]),
                "no line for b.jpg (row 2",
            ),
            (
                set(&["a.jpg", "a.jpg"], &["cat", "dog"], vec![1, 0, 0, 1]),
                "a.jpg is listed twice",
            ),
            (
                set(&["a.jpg", "b.jpg"], &["cat", "dog"], vec![1, 0, 1, 0]),
                "b.jpg is positive for 'cat'",
            ),
            (
                set(
                    &["a.jpg", "b.jpg", "c.jpg"],
                    &["cat", "dog"],
                    vec![1, 0, 0, 1, 0, 0],
                ),
                "3 images, the training set 2",
            ),
        ];
        for (observed, reason) in cases {
            let message = observe(&observed).unwrap_err().to_string();
            assert!(message.starts_with("obs.tsv: "), "{message}");
            assert!(message.contains(reason), "{message} (expected {reason})");
        }
    }

    /// A reviewed set may observe a positive the training file lacks (an accepted suggestion
    /// the reviewer judged right); the same set without the review step is refused.
    #[test]
    fn a_reviewed_set_may_add_positives_the_file_lacks() {
        let mut observed = set(&["a.jpg", "b.jpg"], &["cat", "dog"], vec![1, 0, 1, 1]);
        assert!(observe(&observed).is_err());
        observed.provenance.push(ProvenanceStep {
            step: REVIEW_STEP.into(),
            params: serde_json::Value::Null,
            report: serde_json::Value::Null,
        });
        assert_eq!(observe(&observed).unwrap().row(1), [1, 1]);
        // Matched by sample id (feature and array rows), the same.
        let by_id = observed
            .observed_labels_by_id(Path::new("obs.tsv"), &training().0)
            .unwrap();
        assert_eq!(by_id.row(1), [1, 1]);
    }
}
