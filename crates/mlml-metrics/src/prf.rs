//! Precision, recall and F1 of hard predictions: per class (CP, CR, CF1) and overall (OP, OR,
//! OF1), at a threshold or for the top k classes of each sample.

use mlml_data::{LabelMatrix, NEGATIVE, POSITIVE};
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::scores::{checked, sort_key, ScoreMatrix};

/// How scores become predictions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictionRule {
    /// Predict a class when its score is above the threshold; `strict` uses `>` (the Hill/SPLC
    /// `validate.py` rule), otherwise `>=`.
    Threshold {
        /// The threshold, on whatever scale the scores are (0.5 on probabilities).
        value: f32,
        /// `>` rather than `>=`.
        strict: bool,
    },
    /// Predict the `k` highest-scoring classes of each sample (ties: higher class index first,
    /// NumPy's order for up to 16 classes).
    TopK(usize),
}

impl Default for PredictionRule {
    /// `score > 0.5`, the Hill/SPLC validation rule.
    fn default() -> Self {
        PredictionRule::Threshold {
            value: 0.5,
            strict: true,
        }
    }
}

/// Counts and rates of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassPrf {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub fn_: usize,
    /// Precision in percent, `100 tp / (tp + fp)`, 0 when `tp == 0` (the reference rule).
    pub precision: f64,
    /// Recall in percent, `100 tp / (tp + fn)`, 0 when `tp == 0`.
    pub recall: f64,
    /// F1 in percent, 0 when `tp == 0`.
    pub f1: f64,
}

/// Per-class and overall precision, recall and F1, all in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrfReport {
    /// Mean per-class precision.
    pub cp: f64,
    /// Mean per-class recall.
    pub cr: f64,
    /// `2 CP CR / (CP + CR)`: the CF1 most papers define (ML-GCN and after).
    pub cf1: f64,
    /// Mean of the per-class F1: what the Hill/SPLC validation code prints under the name "CF1".
    /// Not the same number as [`PrfReport::cf1`].
    pub mean_class_f1: f64,
    /// Overall (micro) precision.
    pub op: f64,
    /// Overall recall.
    pub or: f64,
    /// `2 OP OR / (OP + OR)`.
    pub of1: f64,
    /// Per class, in column order.
    pub per_class: Vec<ClassPrf>,
    /// Unobserved ground-truth entries left out of the counts.
    pub unobserved_left_out: usize,
    /// How the predictions were made.
    pub selection: PredictionRule,
}

fn check_k(k: usize, n_classes: usize) -> Result<()> {
    if k == 0 || k > n_classes {
        return Err(MetricsError::InvalidParameter(format!(
            "top-k needs 1 <= k <= {n_classes} classes, got k = {k}"
        )));
    }
    Ok(())
}

fn harmonic(a: f64, b: f64) -> f64 {
    if a + b > 0.0 {
        2.0 * a * b / (a + b)
    } else {
        0.0
    }
}

fn rate(num: usize, den: usize) -> f64 {
    if num == 0 {
        0.0
    } else {
        100.0 * num as f64 / den as f64
    }
}

/// Computes CP, CR, CF1, OP, OR, OF1 of `scores` (row-major `[n_samples, n_classes]`).
///
/// Unobserved ground-truth entries (0) count neither as hits nor as errors. Top-k selection
/// ranks all classes of a sample, observed or not.
///
/// # Errors
/// When shapes differ, there is no sample, a score is NaN, or `k` is 0 or above the class count.
pub fn precision_recall_f1(
    scores: &[f32],
    labels: &LabelMatrix,
    selection: PredictionRule,
) -> Result<PrfReport> {
    let matrix = checked(scores, labels)?;
    let c = labels.n_classes();
    if let PredictionRule::TopK(k) = selection {
        check_k(k, c)?;
    }
    let mut counts = vec![ClassPrf::default(); c];
    let mut predicted = vec![false; c];
    let mut keys = Vec::with_capacity(c);
    let mut unobserved = 0;
    for (sample, truth) in labels.rows().enumerate() {
        predict_row(&matrix, sample, selection, &mut predicted, &mut keys);
        for ((count, &p), &t) in counts.iter_mut().zip(&predicted).zip(truth) {
            match (p, t) {
                (true, POSITIVE) => count.tp += 1,
                (true, NEGATIVE) => count.fp += 1,
                (false, POSITIVE) => count.fn_ += 1,
                (_, NEGATIVE) => {}
                _ => unobserved += 1,
            }
        }
    }
    for count in &mut counts {
        count.precision = rate(count.tp, count.tp + count.fp);
        count.recall = rate(count.tp, count.tp + count.fn_);
        count.f1 = if count.tp == 0 {
            0.0
        } else {
            harmonic(count.precision, count.recall)
        };
    }
    let mean = |f: fn(&ClassPrf) -> f64| counts.iter().map(f).sum::<f64>() / c as f64;
    let (cp, cr, mean_class_f1) = (mean(|x| x.precision), mean(|x| x.recall), mean(|x| x.f1));
    let tp: usize = counts.iter().map(|x| x.tp).sum();
    let fp: usize = counts.iter().map(|x| x.fp).sum();
    let fn_: usize = counts.iter().map(|x| x.fn_).sum();
    let (op, or) = (rate(tp, tp + fp), rate(tp, tp + fn_));
    Ok(PrfReport {
        cp,
        cr,
        cf1: harmonic(cp, cr),
        mean_class_f1,
        op,
        or,
        of1: harmonic(op, or),
        per_class: counts,
        unobserved_left_out: unobserved,
        selection,
    })
}

fn predict_row(
    scores: &ScoreMatrix<'_>,
    sample: usize,
    selection: PredictionRule,
    predicted: &mut [bool],
    keys: &mut Vec<u64>,
) {
    let row = scores.row(sample);
    match selection {
        PredictionRule::Threshold { value, strict } => {
            for (p, s) in predicted.iter_mut().zip(row) {
                *p = if strict { *s > value } else { *s >= value };
            }
        }
        PredictionRule::TopK(k) => {
            predicted.fill(false);
            keys.clear();
            keys.extend(row.iter().enumerate().map(|(j, s)| sort_key(*s, j)));
            keys.select_nth_unstable(k - 1);
            for key in &keys[..k] {
                predicted[crate::scores::sample_of(*key)] = true;
            }
        }
    }
}

/// The single-positive line's per-sample top-k figures (Cole et al. `compute_metrics`), means
/// over samples, as fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    /// k.
    pub k: usize,
    /// Mean of `hits / k`.
    pub precision: f64,
    /// Mean of `hits / positives` (0 for a sample with no positive, which still counts).
    pub recall: f64,
    /// Fraction of samples with at least one hit in their top k.
    pub top_k: f64,
}

/// Precision@k, recall@k and top-k accuracy per sample, averaged, as Cole et al. compute them:
/// ties in the ranking put the higher class index first, and any label other than 1 is not a hit.
///
/// # Errors
/// As [`precision_recall_f1`].
pub fn at_k(scores: &[f32], labels: &LabelMatrix, k: usize) -> Result<AtK> {
    let matrix = checked(scores, labels)?;
    let c = labels.n_classes();
    check_k(k, c)?;
    let mut predicted = vec![false; c];
    let mut keys = Vec::with_capacity(c);
    let (mut precision, mut recall, mut any) = (0.0, 0.0, 0usize);
    for (sample, truth) in labels.rows().enumerate() {
        predict_row(
            &matrix,
            sample,
            PredictionRule::TopK(k),
            &mut predicted,
            &mut keys,
        );
        let positives = truth.iter().filter(|t| **t == POSITIVE).count();
        let hits = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p && **t == POSITIVE)
            .count();
        precision += hits as f64 / k as f64;
        if positives > 0 {
            recall += hits as f64 / positives as f64;
        }
        any += usize::from(hits > 0);
    }
    let n = labels.n_samples() as f64;
    Ok(AtK {
        k,
        precision: precision / n,
        recall: recall / n,
        top_k: any as f64 / n,
    })
}
