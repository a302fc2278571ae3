//! The label model: an `n_samples x n_classes` matrix of observed states.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The state of one (sample, class) entry.
///
/// Stored as `i8` in [`LabelMatrix`]: `1` observed positive, `-1` observed negative, `0` unobserved.
/// A full annotation has only positives and negatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// The class is present and annotated as such (`1`).
    Positive,
    /// The class is absent and annotated as such (`-1`).
    Negative,
    /// Nothing is known (`0`).
    Unobserved,
}

impl Label {
    /// The stored code: 1, -1 or 0.
    pub const fn code(self) -> i8 {
        match self {
            Label::Positive => POSITIVE,
            Label::Negative => NEGATIVE,
            Label::Unobserved => UNOBSERVED,
        }
    }

    /// The label for a stored code, `None` for any other value.
    pub const fn from_code(code: i8) -> Option<Self> {
        match code {
            POSITIVE => Some(Label::Positive),
            NEGATIVE => Some(Label::Negative),
            UNOBSERVED => Some(Label::Unobserved),
            _ => None,
        }
    }
}

/// Code of an observed positive.
pub const POSITIVE: i8 = 1;
/// Code of an observed negative.
pub const NEGATIVE: i8 = -1;
/// Code of an unobserved entry.
pub const UNOBSERVED: i8 = 0;

/// Row-major `n_samples x n_classes` matrix of label codes (1, -1, 0) with the class names
/// (columns) and sample ids (rows) beside it.
///
/// Invariant: every value is one of the three codes, and there are exactly `n_classes`
/// names and `n_samples` ids. The constructors check it; the fields are private so that it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatrix {
    classes: Vec<String>,
    sample_ids: Vec<String>,
    values: Vec<i8>,
}

impl LabelMatrix {
    /// Builds a matrix from row-major codes.
    ///
    /// # Errors
    /// When `values.len() != sample_ids.len() * classes.len()`, a value is not 1, -1 or 0, or
    /// there is no class.
    pub fn new(classes: Vec<String>, sample_ids: Vec<String>, values: Vec<i8>) -> Result<Self> {
        if classes.is_empty() {
            return Err(DataError::Shape(
                "a label matrix needs at least one class".into(),
            ));
        }
        let expected = sample_ids.len() * classes.len();
        if values.len() != expected {
            return Err(DataError::Shape(format!(
                "{} values for {} samples x {} classes (expected {expected})",
                values.len(),
                sample_ids.len(),
                classes.len()
            )));
        }
        if let Some(at) = values.iter().position(|v| Label::from_code(*v).is_none()) {
            let (row, col) = (at / classes.len(), at % classes.len());
            return Err(DataError::Shape(format!(
                "value {} at sample {row} ('{}'), class {col} ('{}') is not 1, -1 or 0",
                values[at], sample_ids[row], classes[col]
            )));
        }
        Ok(Self {
            classes,
            sample_ids,
            values,
        })
    }

    /// A matrix of the given shape with every entry unobserved.
    ///
    /// # Errors
    /// When there is no class.
    pub fn unobserved(classes: Vec<String>, sample_ids: Vec<String>) -> Result<Self> {
        let values = vec![UNOBSERVED; classes.len() * sample_ids.len()];
        Self::new(classes, sample_ids, values)
    }

    /// Number of rows.
    pub fn n_samples(&self) -> usize {
        self.sample_ids.len()
    }

    /// Number of columns.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Class names, in column order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Sample ids, in row order.
    pub fn sample_ids(&self) -> &[String] {
        &self.sample_ids
    }

    /// All codes, row-major.
    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// The codes of one sample.
    ///
    /// # Panics
    /// When `sample >= n_samples`.
    pub fn row(&self, sample: usize) -> &[i8] {
        let c = self.n_classes();
        &self.values[sample * c..(sample + 1) * c]
    }

    /// Rows, in order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, i8> {
        self.values.chunks_exact(self.n_classes())
    }

    /// One entry.
    ///
    /// # Panics
    /// When out of bounds.
    pub fn get(&self, sample: usize, class: usize) -> Label {
        assert!(
            class < self.n_classes(),
            "class {class} out of {}",
            self.n_classes()
        );
        Label::from_code(self.values[sample * self.n_classes() + class])
            .expect("LabelMatrix holds only valid codes")
    }

    /// Sets one entry.
    ///
    /// # Panics
    /// When out of bounds.
    pub fn set(&mut self, sample: usize, class: usize, label: Label) {
        assert!(
            class < self.n_classes(),
            "class {class} out of {}",
            self.n_classes()
        );
        let c = self.n_classes();
        self.values[sample * c + class] = label.code();
    }

    /// Index of a class by name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// Counts of each code over the whole matrix.
    pub fn counts(&self) -> LabelCounts {
        LabelCounts::of(&self.values)
    }

    /// Whether every entry is observed (only 1 and -1).
    pub fn is_fully_observed(&self) -> bool {
        !self.values.contains(&UNOBSERVED)
    }

    /// Keeps the rows for which `keep(row_index)` is true, in order.
    pub fn retain_rows(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let c = self.n_classes();
        let mut values = Vec::with_capacity(self.values.len());
        let mut ids = Vec::with_capacity(self.sample_ids.len());
        for (i, id) in std::mem::take(&mut self.sample_ids).into_iter().enumerate() {
            if keep(i) {
                values.extend_from_slice(&self.values[i * c..(i + 1) * c]);
                ids.push(id);
            }
        }
        self.values = values;
        self.sample_ids = ids;
    }

    /// Replaces the codes, keeping names and ids.
    pub(crate) fn with_values(&self, values: Vec<i8>) -> Self {
        debug_assert_eq!(values.len(), self.values.len());
        Self {
            classes: self.classes.clone(),
            sample_ids: self.sample_ids.clone(),
            values,
        }
    }
}

/// How many entries hold each code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCounts {
    /// Observed positives.
    pub positives: usize,
    /// Observed negatives.
    pub negatives: usize,
    /// Unobserved entries.
    pub unobserved: usize,
}

impl LabelCounts {
    /// Counts the codes of a slice.
    pub fn of(values: &[i8]) -> Self {
        let mut counts = Self::default();
        for v in values {
            match *v {
                POSITIVE => counts.positives += 1,
                NEGATIVE => counts.negatives += 1,
                _ => counts.unobserved += 1,
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn new_rejects_ragged_values_and_bad_codes() {
        let err = LabelMatrix::new(names("c", 3), names("s", 2), vec![1; 5]).unwrap_err();
        assert!(
            err.to_string()
                .contains("5 values for 2 samples x 3 classes"),
            "{err}"
        );
        let err = LabelMatrix::new(names("c", 2), names("s", 1), vec![1, 2]).unwrap_err();
        assert!(
            err.to_string()
                .contains("value 2 at sample 0 ('s0'), class 1 ('c1')"),
            "{err}"
        );
        assert!(LabelMatrix::new(vec![], vec![], vec![]).is_err());
    }

    #[test]
    fn retain_rows_keeps_ids_and_values_together() {
        let mut m =
            LabelMatrix::new(names("c", 2), names("s", 3), vec![1, -1, 0, 1, -1, -1]).unwrap();
        m.retain_rows(|i| i != 1);
        assert_eq!(m.sample_ids(), ["s0", "s2"]);
        assert_eq!(m.values(), [1, -1, -1, -1]);
        assert_eq!(m.get(1, 0), Label::Negative);
    }

    #[test]
    fn counts_add_up() {
        let m = LabelMatrix::new(names("c", 3), names("s", 2), vec![1, -1, 0, 1, 1, 0]).unwrap();
        let c = m.counts();
        assert_eq!((c.positives, c.negatives, c.unobserved), (3, 1, 2));
        assert!(!m.is_fully_observed());
    }
}
