//! Everything at once, with a per-class table for reports.

use mlml_data::LabelMatrix;
use serde::{Deserialize, Serialize};

use crate::ap::{mean_average_precision, MapOptions, MapReport};
use crate::error::Result;
use crate::prf::{precision_recall_f1, PredictionRule, PrfReport};

/// One row of the per-class table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// Class name.
    pub name: String,
    /// AP in percent.
    pub ap: f64,
    /// Positives among the evaluated samples.
    pub positives: usize,
    /// Precision in percent at the threshold.
    pub precision: f64,
    /// Recall in percent at the threshold.
    pub recall: f64,
}

/// mAP, thresholded and top-k metrics, and the per-class table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// mAP and per-class AP.
    pub map: MapReport,
    /// At the threshold.
    pub threshold: PrfReport,
    /// For the top k (k = 3, or fewer classes).
    pub top_k: PrfReport,
    /// Per class.
    pub classes: Vec<ClassRow>,
}

/// mAP (with `options`), P/R/F1 at `selection`, and top-3 P/R/F1.
///
/// # Errors
/// As the metrics it runs.
pub fn evaluate(
    scores: &[f32],
    labels: &LabelMatrix,
    options: MapOptions,
    selection: PredictionRule,
) -> Result<Evaluation> {
    let map = mean_average_precision(scores, labels, options)?;
    let threshold = precision_recall_f1(scores, labels, selection)?;
    let top_k = precision_recall_f1(
        scores,
        labels,
        PredictionRule::TopK(3.min(labels.n_classes())),
    )?;
    let classes = labels
        .classes()
        .iter()
        .zip(map.per_class.iter().zip(&threshold.per_class))
        .map(|(name, (ap, prf))| ClassRow {
            name: name.clone(),
            ap: 100.0 * ap.ap,
            positives: ap.positives,
            precision: prf.precision,
            recall: prf.recall,
        })
        .collect();
    Ok(Evaluation {
        map,
        threshold,
        top_k,
        classes,
    })
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "mAP {:.2} ({:?}{})",
            self.map.map,
            self.map.options.definition,
            if self.map.skipped_empty {
                ", empty classes skipped"
            } else {
                ""
            }
        )?;
        for (name, r) in [("threshold", &self.threshold), ("top-3", &self.top_k)] {
            writeln!(
                f,
                "{name:<9}  CP {:.2}  CR {:.2}  CF1 {:.2}  OP {:.2}  OR {:.2}  OF1 {:.2}  (mean class F1 {:.2})",
                r.cp, r.cr, r.cf1, r.op, r.or, r.of1, r.mean_class_f1
            )?;
        }
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$} {:>7} {:>9} {:>9} {:>7}",
            "class", "AP", "positives", "precision", "recall"
        )?;
        for c in &self.classes {
            writeln!(
                f,
                "{:<width$} {:>7.2} {:>9} {:>9.2} {:>7.2}",
                c.name, c.ap, c.positives, c.precision, c.recall
            )?;
        }
        Ok(())
    }
}
