//! Average precision per class and mAP, in the two definitions the literature reports.

use std::ops::Range;

use mlml_data::{LabelMatrix, NEGATIVE, POSITIVE};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::scores::{checked, descending_bits, ScoreMatrix};

/// Which AP the mAP averages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApDefinition {
    /// ASL / Hill / SPLC (`helper_functions.average_precision`): rank the scores in descending
    /// order and average precision@i over the ranks i of the positives,
    /// `AP = sum_{i: positive} hits_i / i / (P + 1e-8)`. A class with no positive gives 0.
    ///
    /// Ties: the reference orders tied scores by NumPy's unstable quicksort; we order them by
    /// **descending sample index**, which is what NumPy gives for up to 16 samples and is
    /// deterministic everywhere.
    #[default]
    Ranked,
    /// `sklearn.metrics.average_precision_score` (the single-positive line, Cole et al.): step-wise
    /// precision-recall, `AP = sum_k (R_k - R_{k-1}) P_k` over distinct thresholds, tied scores
    /// forming one threshold. A class with no positive gives 0 (Cole's explicit rule; recent
    /// sklearn warns and gives 0 as well).
    Sklearn,
}

/// Options of [`mean_average_precision`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOptions {
    /// AP definition.
    pub definition: ApDefinition,
    /// Leave classes with no positive out of the mean (both references keep them, as zeros).
    pub skip_empty: bool,
}

/// AP of one class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    /// Average precision in [0, 1] (0 for a class with no positive).
    pub ap: f64,
    /// Positives of the class among the evaluated samples.
    pub positives: usize,
    /// Observed negatives of the class.
    pub negatives: usize,
    /// Unobserved ground-truth entries left out of the ranking.
    pub unobserved: usize,
}

/// mAP and its parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapReport {
    /// Mean AP in percent over the classes averaged.
    pub map: f64,
    /// Per class, in column order.
    pub per_class: Vec<ClassAp>,
    /// Classes with no positive.
    pub empty_classes: usize,
    /// Whether they were left out of the mean.
    pub skipped_empty: bool,
    /// Unobserved ground-truth entries left out, over all classes.
    pub unobserved_left_out: usize,
    /// The options used.
    pub options: MapOptions,
}

/// Per-class AP and mAP of `scores` (row-major `[n_samples, n_classes]`) against `labels`.
///
/// Only observed ground truth counts: 1 is a positive, -1 a negative, and 0 (unobserved) entries
/// are left out of their class's ranking and counted in the report.
///
/// # Errors
/// When the shapes differ, there is no sample, or a score is NaN.
pub fn mean_average_precision(
    scores: &[f32],
    labels: &LabelMatrix,
    options: MapOptions,
) -> Result<MapReport> {
    let matrix = checked(scores, labels)?;
    let c = labels.n_classes();
    let groups: Vec<Vec<ClassAp>> = (0..c)
        .step_by(CLASS_GROUP)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map_init(Workspace::default, |workspace, start| {
            let classes = start..(start + CLASS_GROUP).min(c);
            workspace.gather(&matrix, labels, classes.clone());
            classes
                .map(|class| {
                    workspace.class_ap(class - start, matrix.n_samples, options.definition)
                })
                .collect()
        })
        .collect();
    let per_class: Vec<ClassAp> = groups.concat();
    let empty_classes = per_class.iter().filter(|c| c.positives == 0).count();
    let averaged: Vec<f64> = per_class
        .iter()
        .filter(|c| !(options.skip_empty && c.positives == 0))
        .map(|c| c.ap)
        .collect();
    let map = if averaged.is_empty() {
        0.0
    } else {
        100.0 * averaged.iter().sum::<f64>() / averaged.len() as f64
    };
    Ok(MapReport {
        map,
        empty_classes,
        skipped_empty: options.skip_empty,
        unobserved_left_out: per_class.iter().map(|c| c.unobserved).sum(),
        per_class,
        options,
    })
}

/// Classes gathered in one pass over the rows (8 adjacent scores and labels per row); 8-class
/// groups also share COCO's 80 classes evenly between 2 cores, where 16 left one idle.
const CLASS_GROUP: usize = 8;

/// One thread's buffers, reused from class group to class group: no allocation per class once
/// they have grown.
#[derive(Default)]
struct Workspace {
    /// Per class of the group, `n_samples` slots of which the first `observed[k]` hold the
    /// observed entries as `descending score bits << 32 | is_positive`, last sample first.
    columns: Vec<Vec<u64>>,
    observed: [usize; CLASS_GROUP],
    positives: [usize; CLASS_GROUP],
    scratch: Vec<u64>,
    histogram: Vec<u32>,
    terms: Vec<f64>,
}

impl Workspace {
    /// Reads the observed entries of `classes` (at most [`CLASS_GROUP`]) from every row, last
    /// row first, without a branch per entry.
    fn gather(&mut self, scores: &ScoreMatrix<'_>, labels: &LabelMatrix, classes: Range<usize>) {
        let (n, width) = (scores.n_samples, classes.len());
        self.columns.resize_with(width, Vec::new);
        let mut slots: Vec<&mut [u64]> = self.columns[..width]
            .iter_mut()
            .map(|column| {
                column.resize(n, 0);
                &mut column[..]
            })
            .collect();
        let (mut observed, mut positives) = ([0usize; CLASS_GROUP], [0usize; CLASS_GROUP]);
        let values = labels.values();
        let c = labels.n_classes();
        for sample in (0..n).rev() {
            let row = sample * c;
            let score_row = &scores.row(sample)[classes.clone()];
            let label_row = &values[row + classes.start..row + classes.end];
            for k in 0..width {
                let label = label_row[k];
                let positive = label == POSITIVE;
                // Written always, kept only when observed: the slot is overwritten otherwise.
                // `observed[k]` counts at most the rows read before this one, so it is < n.
                slots[k][observed[k]] =
                    (u64::from(descending_bits(score_row[k])) << 32) | u64::from(positive);
                observed[k] += usize::from(positive || label == NEGATIVE);
                positives[k] += usize::from(positive);
            }
        }
        self.observed = observed;
        self.positives = positives;
    }

    /// The AP of gathered class `k`: its entries ranked by descending score, ties by
    /// descending sample index (the stable sort keeps the gathering order).
    fn class_ap(&mut self, k: usize, n_samples: usize, definition: ApDefinition) -> ClassAp {
        let (observed, positives) = (self.observed[k], self.positives[k]);
        let keys = &mut self.columns[k][..observed];
        radix_sort_by_high_half(keys, &mut self.scratch, &mut self.histogram);
        let is_positive = |key: &u64| key & 1 == 1;
        let ap = match definition {
            ApDefinition::Ranked => {
                ranked_ap_with(keys.iter().map(is_positive), positives, &mut self.terms)
            }
            ApDefinition::Sklearn => {
                let ranked = keys.iter().map(|k| ((k >> 32) as u32, is_positive(k)));
                sklearn_ap_sorted(ranked, positives)
            }
        };
        ClassAp {
            ap,
            positives,
            negatives: observed - positives,
            unobserved: n_samples - observed,
        }
    }
}

/// Stable LSD radix sort of `keys` by their upper 32 bits, in three passes of 11, 11 and 10
/// bits (one histogram pass for all three; a pass whose digit is the same for every key is
/// skipped). Equal upper halves keep their order.
fn radix_sort_by_high_half(keys: &mut [u64], scratch: &mut Vec<u64>, histogram: &mut Vec<u32>) {
    const PASSES: [(u32, usize); 3] = [(32, 0), (43, 2048), (54, 4096)];
    const MASK: u64 = 2047;
    let n = keys.len();
    if n < 2 {
        return;
    }
    histogram.clear();
    histogram.resize(3 * 2048, 0);
    for &key in keys.iter() {
        for (shift, offset) in PASSES {
            histogram[offset + ((key >> shift) & MASK) as usize] += 1;
        }
    }
    if scratch.len() < n {
        scratch.resize(n, 0);
    }
    let scratch = &mut scratch[..n];
    let mut in_scratch = false;
    for (shift, offset) in PASSES {
        let counts = &mut histogram[offset..offset + 2048];
        if counts.iter().any(|&count| count as usize == n) {
            continue;
        }
        let mut start = 0u32;
        for count in counts.iter_mut() {
            let here = *count;
            *count = start;
            start += here;
        }
        let (from, to): (&[u64], &mut [u64]) = if in_scratch {
            (scratch, keys)
        } else {
            (keys, scratch)
        };
        for &key in from {
            let slot = &mut counts[((key >> shift) & MASK) as usize];
            to[*slot as usize] = key;
            *slot += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        keys.copy_from_slice(scratch);
    }
}

/// The ranked AP of labels already in ranking order (best first): the ASL reference formula.
///
/// The reference builds `pp_i = hits_i / i` at positive ranks (0 elsewhere) and sums it with
/// `np.sum`, whose pairwise summation we replicate ([`numpy_sum`]) so that a given order gives
/// the reference value to the last bit.
pub fn ranked_ap_sorted(ranked_is_positive: impl Iterator<Item = bool>, positives: usize) -> f64 {
    let mut terms = Vec::new();
    ranked_ap_with(ranked_is_positive, positives, &mut terms)
}

fn ranked_ap_with(
    ranked_is_positive: impl Iterator<Item = bool>,
    positives: usize,
    terms: &mut Vec<f64>,
) -> f64 {
    terms.clear();
    let mut hits = 0usize;
    for (i, positive) in ranked_is_positive.enumerate() {
        hits += usize::from(positive);
        terms.push(if positive {
            hits as f64 / (i + 1) as f64
        } else {
            0.0
        });
    }
    numpy_sum(terms) / (positives as f64 + 1e-8)
}

/// `np.sum` of a contiguous float64 array, to the last bit: the reduction walks the array in
/// blocks of NumPy's ufunc buffer size (8192 elements), adding each block's pairwise sum to the
/// running total in order; within a block, pairwise summation with leaves of up to 128 elements
/// summed in eight interleaved accumulators (NumPy's `pairwise_sum`). Checked against NumPy
/// 1.24 on every length from 1 to 1,000 and on lengths across the block boundary.
pub fn numpy_sum(a: &[f64]) -> f64 {
    const BUFFER: usize = 8192;
    let mut blocks = a.chunks(BUFFER);
    let first = blocks.next().map_or(0.0, pairwise_sum);
    blocks.fold(first, |total, block| total + pairwise_sum(block))
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, x| acc + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// The sklearn AP of `(score key, is_positive)` pairs in descending score order; equal keys form
/// one threshold.
fn sklearn_ap_sorted(ranked: impl Iterator<Item = (u32, bool)>, positives: usize) -> f64 {
    if positives == 0 {
        return 0.0;
    }
    let (mut tp, mut seen) = (0usize, 0usize);
    let mut ap = 0.0f64;
    let mut last_recall = 0.0f64;
    let mut ranked = ranked.peekable();
    while let Some((score, positive)) = ranked.next() {
        seen += 1;
        tp += usize::from(positive);
        if ranked.peek().is_some_and(|(next, _)| *next == score) {
            continue;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / seen as f64);
        last_recall = recall;
    }
    ap
}
