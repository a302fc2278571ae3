//! Summaries of a label set.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::generate::class_positives;
use crate::labels::{LabelCounts, NEGATIVE, POSITIVE};

/// Per-class counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassStats {
    /// Class name.
    pub name: String,
    /// Observed positives.
    pub positives: usize,
    /// Observed negatives.
    pub negatives: usize,
    /// Unobserved entries.
    pub unobserved: usize,
}

/// What `mlml-data stats` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Samples.
    pub samples: usize,
    /// Classes.
    pub classes: usize,
    /// Split, if known.
    pub split: Option<String>,
    /// Entry counts.
    pub counts: LabelCounts,
    /// Mean observed positives per image.
    pub positives_per_image: f64,
    /// Images with exactly k positives, for k = 0, 1, 2, ... (the last bucket holds the maximum).
    pub positives_histogram: Vec<usize>,
    /// Images with no observed positive.
    pub images_without_positive: usize,
    /// Per class.
    pub per_class: Vec<ClassStats>,
    /// The provenance steps' names, oldest first.
    pub made_by: Vec<String>,
}

/// Computes the summary of a dataset.
pub fn stats(dataset: &Dataset) -> Stats {
    let labels = &dataset.labels;
    let c = labels.n_classes();
    let mut negatives = vec![0usize; c];
    let mut histogram = Vec::new();
    for row in labels.rows() {
        let k = row.iter().filter(|v| **v == POSITIVE).count();
        if histogram.len() <= k {
            histogram.resize(k + 1, 0);
        }
        histogram[k] += 1;
        for (n, v) in negatives.iter_mut().zip(row) {
            *n += usize::from(*v == NEGATIVE);
        }
    }
    let positives = class_positives(labels);
    let per_class = labels
        .classes()
        .iter()
        .zip(positives.iter().zip(&negatives))
        .map(|(name, (&p, &n))| ClassStats {
            name: name.clone(),
            positives: p,
            negatives: n,
            unobserved: labels.n_samples() - p - n,
        })
        .collect();
    let counts = labels.counts();
    Stats {
        samples: labels.n_samples(),
        classes: c,
        split: dataset.split.clone(),
        counts,
        positives_per_image: if labels.n_samples() == 0 {
            0.0
        } else {
            counts.positives as f64 / labels.n_samples() as f64
        },
        images_without_positive: histogram.first().copied().unwrap_or(0),
        positives_histogram: histogram,
        per_class,
        made_by: dataset.provenance.iter().map(|p| p.step.clone()).collect(),
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "samples            {}", self.samples)?;
        writeln!(f, "classes            {}", self.classes)?;
        if let Some(split) = &self.split {
            writeln!(f, "split              {split}")?;
        }
        if !self.made_by.is_empty() {
            writeln!(f, "made by            {}", self.made_by.join(" -> "))?;
        }
        writeln!(f, "positives          {}", self.counts.positives)?;
        writeln!(f, "observed negatives {}", self.counts.negatives)?;
        writeln!(f, "unobserved         {}", self.counts.unobserved)?;
        writeln!(f, "positives/image    {:.3}", self.positives_per_image)?;
        writeln!(f, "images without any {}", self.images_without_positive)?;
        let histogram: Vec<String> = self
            .positives_histogram
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        writeln!(f, "positives per image (k:images) {}", histogram.join(" "))?;
        let width = self
            .per_class
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$} {:>9} {:>9} {:>10}",
            "class", "positive", "negative", "unobserved"
        )?;
        for c in &self.per_class {
            writeln!(
                f,
                "{:<width$} {:>9} {:>9} {:>10}",
                c.name, c.positives, c.negatives, c.unobserved
            )?;
        }
        Ok(())
    }
}
