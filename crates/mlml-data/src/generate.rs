//! Partial-label generators: drop positives (over the whole set, or per image by the Hill /
//! SPLC release's rule), keep one positive, observe some negatives.
//!
//! All are deterministic for a seed and an input: the random draws are taken row by row, in row
//! order, from one named generator ([`GeneratorKind`]).

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::labels::{LabelCounts, LabelMatrix, NEGATIVE, POSITIVE, UNOBSERVED};
use crate::rng::{choose_front, interval, shuffle, GeneratorKind, WordSource};

fn check_fraction(name: &'static str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(DataError::OutOfRange {
            name,
            expected: "in [0, 1]",
            value: value.to_string(),
        })
    }
}

/// Parameters of [`drop_positives`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropParams {
    /// Fraction of the observed positives to remove, in `[0, 1]` (the papers' "40 % left" is 0.6).
    pub ratio: f64,
    /// Each image keeps at least `min(min_positives, its positives)` positives.
    pub min_positives: usize,
    /// Fraction of the observed negatives kept observed; the others become unobserved.
    pub observe_negatives: f64,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
}

impl Default for DropParams {
    fn default() -> Self {
        Self {
            ratio: 0.5,
            min_positives: 1,
            observe_negatives: 0.0,
            seed: 0,
        }
    }
}

impl DropParams {
    /// Checks the ranges.
    ///
    /// # Errors
    /// When a fraction is outside `[0, 1]` or NaN.
    pub fn validate(&self) -> Result<()> {
        check_fraction("ratio", self.ratio)?;
        check_fraction("observe_negatives", self.observe_negatives)
    }
}

/// What [`drop_positives`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropReport {
    /// Counts before.
    pub before: LabelCounts,
    /// Counts after.
    pub after: LabelCounts,
    /// Positives the ratio asked to keep: `round((1 - ratio) * positives)`.
    pub target_kept: usize,
    /// Positives the per-image minimum forces to keep.
    pub required_kept: usize,
    /// Whether the minimum kept more than the target (then `after.positives == required_kept`).
    pub constrained: bool,
    /// Fraction of positives kept, `after / before` (1 when there was none).
    pub kept_fraction: f64,
    /// Positives per class before.
    pub class_positives_before: Vec<usize>,
    /// Positives per class after.
    pub class_positives_after: Vec<usize>,
    /// Images with at least one positive before.
    pub images_with_positives_before: usize,
    /// Images with at least one positive after.
    pub images_with_positives_after: usize,
}

impl DropReport {
    fn new(
        labels: &LabelMatrix,
        result: &LabelMatrix,
        target_kept: usize,
        required_kept: usize,
    ) -> Self {
        let (before, after) = (labels.counts(), result.counts());
        Self {
            kept_fraction: ratio_or_one(after.positives, before.positives),
            before,
            after,
            target_kept,
            required_kept,
            constrained: required_kept > target_kept,
            class_positives_before: class_positives(labels),
            class_positives_after: class_positives(result),
            images_with_positives_before: images_with_positives(labels),
            images_with_positives_after: images_with_positives(result),
        }
    }
}

/// Removes a fraction of the observed positives, keeping per image a minimum.
///
/// The number kept is exactly `max(round((1 - ratio) * P), R)` where `P` is the number of
/// positives and `R` the number the minimum requires: the ratio is met over the whole set, not in
/// expectation. Per image, the positives are shuffled; the first `min(min_positives, n)` are kept,
/// and the others enter one pool from which a uniform subset fills the rest of the target.
/// Negatives are handled by [`observe_negatives`] with the same generator, after the positives.
///
/// # Errors
/// When the parameters are out of range.
pub fn drop_positives(
    labels: &LabelMatrix,
    params: &DropParams,
) -> Result<(LabelMatrix, DropReport)> {
    params.validate()?;
    let mut rng = GeneratorKind::Chacha8.seeded(params.seed)?;
    let c = labels.n_classes();
    let mut out = labels.values().to_vec();

    let mut pool: Vec<usize> = Vec::new();
    let mut positives: Vec<usize> = Vec::with_capacity(c);
    let mut required_kept = 0usize;
    for (i, row) in labels.rows().enumerate() {
        positives.clear();
        positives.extend((0..c).filter(|&j| row[j] == POSITIVE).map(|j| i * c + j));
        shuffle(&mut rng, &mut positives);
        let required = params.min_positives.min(positives.len());
        required_kept += required;
        pool.extend_from_slice(&positives[required..]);
        for &at in &positives[required..] {
            out[at] = UNOBSERVED;
        }
    }
    let positives_before = labels.counts().positives;
    let target_kept = ((1.0 - params.ratio) * positives_before as f64).round() as usize;
    let extra = target_kept.saturating_sub(required_kept).min(pool.len());
    choose_front(&mut rng, &mut pool, extra);
    for &at in &pool[..extra] {
        out[at] = POSITIVE;
    }
    Ok(finish_drop(
        &mut rng,
        labels,
        out,
        params.observe_negatives,
        target_kept,
        required_kept,
    ))
}

/// The Hill / SPLC release's per-image rules for "x % of labels left" (`asl-hill-splc` data
/// protocol, read off all 82,081 images of the published COCO files): an image with `n`
/// positives keeps `k(n) = min(n, floor(n / d) + 1)` of them, chosen uniformly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseRule {
    /// `coco_train_0.75left.txt`: `k = floor(n / 2) + 1` (75.27 % of COCO's positives).
    Left75,
    /// `coco_train_0.4left.txt`: `k = floor(n / 5) + 1` (39.93 % of COCO's positives).
    Left40,
}

impl ReleaseRule {
    /// The rule for "`percent` % left": 75 or 40.
    pub fn from_percent(percent: f64) -> Option<Self> {
        if percent == 75.0 {
            Some(Self::Left75)
        } else if percent == 40.0 {
            Some(Self::Left40)
        } else {
            None
        }
    }

    /// The percentage in the release's file name.
    pub fn percent(self) -> u32 {
        match self {
            Self::Left75 => 75,
            Self::Left40 => 40,
        }
    }

    /// How many of an image's `positives` the rule keeps.
    pub fn kept(self, positives: usize) -> usize {
        let divisor = match self {
            Self::Left75 => 2,
            Self::Left40 => 5,
        };
        positives.min(positives / divisor + 1)
    }
}

/// Parameters of [`keep_per_image`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeepPerImageParams {
    /// How many positives each image keeps.
    pub rule: ReleaseRule,
    /// Fraction of the observed negatives kept observed, as in [`DropParams`].
    pub observe_negatives: f64,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
}

/// Keeps `rule.kept(n)` of each image's `n` observed positives, chosen uniformly without
/// replacement (ChaCha8 with `seed`, row by row); the others become unobserved. Negatives are
/// then handled by [`observe_negatives`] with the same generator. The release's own files cannot
/// be regenerated (its generator and seed are unknown): this draws a set with the same
/// per-image counts, not the same positives.
///
/// The report's `target_kept` and `required_kept` are both the sum of `k(n)`.
///
/// # Errors
/// When `observe_negatives` is outside `[0, 1]`.
pub fn keep_per_image(
    labels: &LabelMatrix,
    params: &KeepPerImageParams,
) -> Result<(LabelMatrix, DropReport)> {
    check_fraction("observe_negatives", params.observe_negatives)?;
    let rule = params.rule;
    let mut rng = GeneratorKind::Chacha8.seeded(params.seed)?;
    let c = labels.n_classes();
    let mut out = labels.values().to_vec();
    let mut positives: Vec<usize> = Vec::with_capacity(c);
    let mut kept = 0usize;
    for (i, row) in labels.rows().enumerate() {
        positives.clear();
        positives.extend((0..c).filter(|&j| row[j] == POSITIVE).map(|j| i * c + j));
        let k = rule.kept(positives.len());
        kept += k;
        choose_front(&mut rng, &mut positives, k);
        for &at in &positives[k..] {
            out[at] = UNOBSERVED;
        }
    }
    Ok(finish_drop(
        &mut rng,
        labels,
        out,
        params.observe_negatives,
        kept,
        kept,
    ))
}

/// The end both positive-dropping generators share: the negatives (same generator, after the
/// positives), the new matrix and its report.
fn finish_drop(
    rng: &mut impl WordSource,
    labels: &LabelMatrix,
    mut out: Vec<i8>,
    observe_negatives: f64,
    target_kept: usize,
    required_kept: usize,
) -> (LabelMatrix, DropReport) {
    observe_negatives_in(rng, labels.values(), &mut out, observe_negatives);
    let result = labels.with_values(out);
    let report = DropReport::new(labels, &result, target_kept, required_kept);
    (result, report)
}

/// Keeps exactly `round(fraction * N)` of the `N` negatives of `source` observed in `out`,
/// chosen uniformly; the others become unobserved. Positives and unobserved entries of `out`
/// are left alone.
fn observe_negatives_in(rng: &mut impl WordSource, source: &[i8], out: &mut [i8], fraction: f64) {
    let mut negatives: Vec<usize> = (0..source.len())
        .filter(|&k| source[k] == NEGATIVE)
        .collect();
    let keep = (fraction * negatives.len() as f64).round() as usize;
    choose_front(rng, &mut negatives, keep);
    for &at in &negatives[keep..] {
        out[at] = UNOBSERVED;
    }
    for &at in &negatives[..keep] {
        out[at] = NEGATIVE;
    }
}

/// Keeps a fraction of the observed negatives, the rest unobserved (ChaCha8, `seed`); positives
/// and unobserved entries are unchanged.
///
/// # Errors
/// When `fraction` is outside `[0, 1]`.
pub fn observe_negatives(labels: &LabelMatrix, fraction: f64, seed: u64) -> Result<LabelMatrix> {
    check_fraction("observe_negatives", fraction)?;
    let mut rng = GeneratorKind::Chacha8.seeded(seed)?;
    let mut out = labels.values().to_vec();
    observe_negatives_in(&mut rng, labels.values(), &mut out, fraction);
    Ok(labels.with_values(out))
}

/// What to do with images that have no positive to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum EmptyRows {
    /// Keep them, with no positive.
    #[default]
    Keep,
    /// Remove them from the set.
    Drop,
}

/// Parameters of [`single_positive`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SinglePositiveParams {
    /// Seed of the generator.
    pub seed: u64,
    /// Which generator; [`GeneratorKind::NumpyMt19937`] reproduces the reference script.
    pub generator: GeneratorKind,
    /// Fraction of the negatives kept observed (ChaCha8 only; the reference observes none).
    pub observe_negatives: f64,
    /// Images with no positive.
    pub empty_rows: EmptyRows,
}

impl SinglePositiveParams {
    /// Checks the ranges and combinations.
    ///
    /// # Errors
    /// When `observe_negatives` is outside `[0, 1]`, or non-zero with the NumPy generator.
    pub fn validate(&self) -> Result<()> {
        check_fraction("observe_negatives", self.observe_negatives)?;
        if self.generator == GeneratorKind::NumpyMt19937 && self.observe_negatives > 0.0 {
            return Err(DataError::Usage(
                "--observe-negatives is not part of the reference (numpy-mt19937) generator; \
                 use the chacha8 generator"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What [`single_positive`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinglePositiveReport {
    /// Counts before.
    pub before: LabelCounts,
    /// Counts after.
    pub after: LabelCounts,
    /// Images that had no positive (sample ids, at most the first 20).
    pub empty_examples: Vec<String>,
    /// Number of images with no positive.
    pub empty_rows: usize,
    /// Number of images removed (with [`EmptyRows::Drop`]).
    pub dropped_rows: usize,
    /// Positives per class after.
    pub class_positives_after: Vec<usize>,
    /// Per input row, whether it is in the result (all true unless empty rows were dropped).
    /// Not written to sidecars: it is as long as the dataset.
    #[serde(skip)]
    pub kept_rows: Vec<bool>,
}

/// Keeps exactly one observed positive per image, chosen uniformly; every other entry becomes
/// unobserved, except a fraction of the negatives if asked.
///
/// With [`GeneratorKind::NumpyMt19937`] and seed 1200 this is `generate_observed_labels.py` of
/// Cole et al. (`--num-pos 1 --num-neg 0`): per row, the ascending positive indices are shuffled
/// and the first kept, then the negative (and unobserved) indices are shuffled too, since the
/// reference draws for them even when it keeps none.
///
/// # Errors
/// When the parameters are invalid.
pub fn single_positive(
    labels: &LabelMatrix,
    params: &SinglePositiveParams,
) -> Result<(LabelMatrix, SinglePositiveReport)> {
    params.validate()?;
    let mut rng = params.generator.seeded(params.seed)?;
    let before = labels.counts();
    let c = labels.n_classes();
    let mut out = vec![UNOBSERVED; labels.values().len()];
    let mut positives: Vec<usize> = Vec::with_capacity(c);
    let mut others: Vec<usize> = Vec::with_capacity(c);
    let mut empty = Vec::new();
    for (i, row) in labels.rows().enumerate() {
        positives.clear();
        positives.extend((0..c).filter(|&j| row[j] == POSITIVE));
        let chosen = match params.generator {
            GeneratorKind::NumpyMt19937 => {
                shuffle(&mut rng, &mut positives);
                others.clear();
                others.extend((0..c).filter(|&j| row[j] != POSITIVE));
                shuffle(&mut rng, &mut others);
                positives.first().copied()
            }
            GeneratorKind::Chacha8 if positives.is_empty() => None,
            GeneratorKind::Chacha8 => {
                Some(positives[interval(&mut rng, positives.len() as u32 - 1) as usize])
            }
        };
        match chosen {
            Some(j) => out[i * c + j] = POSITIVE,
            None => empty.push(i),
        }
    }
    observe_negatives_in(
        &mut rng,
        labels.values(),
        &mut out,
        params.observe_negatives,
    );

    let mut result = labels.with_values(out);
    let empty_examples = empty
        .iter()
        .take(20)
        .map(|&i| labels.sample_ids()[i].clone())
        .collect();
    let mut kept_rows = vec![true; labels.n_samples()];
    let dropped_rows = if params.empty_rows == EmptyRows::Drop {
        for &i in &empty {
            kept_rows[i] = false;
        }
        result.retain_rows(|i| kept_rows[i]);
        empty.len()
    } else {
        0
    };
    let report = SinglePositiveReport {
        before,
        after: result.counts(),
        empty_examples,
        empty_rows: empty.len(),
        dropped_rows,
        class_positives_after: class_positives(&result),
        kept_rows,
    };
    Ok((result, report))
}

/// Positives per class.
pub fn class_positives(labels: &LabelMatrix) -> Vec<usize> {
    let mut counts = vec![0usize; labels.n_classes()];
    for row in labels.rows() {
        for (count, v) in counts.iter_mut().zip(row) {
            *count += usize::from(*v == POSITIVE);
        }
    }
    counts
}

/// Images with at least one positive.
pub fn images_with_positives(labels: &LabelMatrix) -> usize {
    labels.rows().filter(|r| r.contains(&POSITIVE)).count()
}

fn ratio_or_one(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[i8]]) -> LabelMatrix {
        let c = rows[0].len();
        LabelMatrix::new(
            (0..c).map(|j| format!("c{j}")).collect(),
            (0..rows.len()).map(|i| format!("s{i}")).collect(),
            rows.concat(),
        )
        .unwrap()
    }

    #[test]
    fn release_rules_keep_the_counts_read_off_the_published_files() {
        // asl-hill-splc data protocol: 0.75left n=1..6 -> 1,2,2,3,3,4; 18 -> 10;
        // 0.4left n=1..4 -> 1, 5..9 -> 2, 10..14 -> 3, 15..18 -> 4.
        let left75: Vec<usize> = (1..=6).map(|n| ReleaseRule::Left75.kept(n)).collect();
        assert_eq!(left75, [1, 2, 2, 3, 3, 4]);
        assert_eq!(ReleaseRule::Left75.kept(18), 10);
        for (n, k) in [
            (1, 1),
            (4, 1),
            (5, 2),
            (9, 2),
            (10, 3),
            (14, 3),
            (15, 4),
            (18, 4),
        ] {
            assert_eq!(ReleaseRule::Left40.kept(n), k, "n = {n}");
        }
        assert_eq!(ReleaseRule::Left40.kept(0), 0);
        assert_eq!(ReleaseRule::from_percent(40.0), Some(ReleaseRule::Left40));
        assert_eq!(ReleaseRule::from_percent(50.0), None);
    }

    #[test]
    fn keep_per_image_keeps_a_subset_of_k_positives_per_row_and_every_negative() {
        let rows: Vec<Vec<i8>> = (0..40)
            .map(|i| {
                (0..12)
                    .map(|j| {
                        if (i * 7 + j * 3) % 5 < 1 + i % 4 {
                            1
                        } else {
                            -1
                        }
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[i8]> = rows.iter().map(|r| r.as_slice()).collect();
        let m = matrix(&refs);
        for rule in [ReleaseRule::Left40, ReleaseRule::Left75] {
            let params = |seed| KeepPerImageParams {
                rule,
                observe_negatives: 1.0,
                seed,
            };
            let (out, report) = keep_per_image(&m, &params(3)).unwrap();
            let mut total = 0;
            for (before, after) in m.rows().zip(out.rows()) {
                let n = before.iter().filter(|&&v| v == POSITIVE).count();
                let k = after.iter().filter(|&&v| v == POSITIVE).count();
                assert_eq!(k, rule.kept(n));
                total += k;
                for (b, a) in before.iter().zip(after) {
                    match *b {
                        NEGATIVE => assert_eq!(*a, NEGATIVE),
                        _ => assert!(*a == POSITIVE || *a == UNOBSERVED),
                    }
                }
            }
            assert_eq!(report.after.positives, total);
            assert_eq!(report.target_kept, total);
            // Same seed, same draw; another seed, another choice of positives.
            assert_eq!(
                keep_per_image(&m, &params(3)).unwrap().0.values(),
                out.values()
            );
            assert_ne!(
                keep_per_image(&m, &params(4)).unwrap().0.values(),
                out.values()
            );
        }
    }

    #[test]
    fn keep_per_image_chooses_uniformly_within_an_image() {
        // One row with three positives, kept one at a time (Left40): each position about 1/3;
        // with no negative kept observed, the negative becomes unobserved.
        let m = matrix(&[&[1, 1, 1, -1]]);
        let mut hits = [0usize; 3];
        for seed in 0..3000 {
            let params = KeepPerImageParams {
                rule: ReleaseRule::Left40,
                observe_negatives: 0.0,
                seed,
            };
            let (out, _) = keep_per_image(&m, &params).unwrap();
            let kept = out.values().iter().position(|&v| v == POSITIVE).unwrap();
            hits[kept] += 1;
            assert_eq!(out.values()[3], UNOBSERVED);
        }
        for h in hits {
            assert!((900..1100).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn drop_meets_the_ratio_exactly_when_unconstrained() {
        let m = matrix(&[
            &[1, 1, 1, 1],
            &[1, 1, 1, -1],
            &[1, 1, -1, -1],
            &[1, 1, 1, 1],
        ]);
        let (out, report) = drop_positives(
            &m,
            &DropParams {
                ratio: 0.5,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(report.before.positives, 13);
        assert_eq!(report.target_kept, 7); // round(6.5) rounds half away from zero
        assert_eq!(out.counts().positives, 7);
        assert!(!report.constrained);
        assert_eq!(
            out.counts().negatives,
            0,
            "negatives become unobserved by default"
        );
    }

    #[test]
    fn drop_reports_when_the_minimum_wins() {
        let m = matrix(&[&[1, -1], &[1, -1], &[-1, 1]]);
        let (out, report) = drop_positives(
            &m,
            &DropParams {
                ratio: 1.0,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(report.constrained);
        assert_eq!(out.counts().positives, 3);
        let (out, _) = drop_positives(
            &m,
            &DropParams {
                ratio: 1.0,
                min_positives: 0,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out.counts().positives, 0);
    }

    #[test]
    fn out_of_range_fractions_are_errors() {
        let m = matrix(&[&[1]]);
        for ratio in [-0.1, 1.5, f64::NAN] {
            let err = drop_positives(
                &m,
                &DropParams {
                    ratio,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("`ratio` must be in [0, 1]"),
                "{err}"
            );
        }
    }

    #[test]
    fn single_positive_drops_or_keeps_empty_rows() {
        let m = matrix(&[&[1, 1, -1], &[-1, -1, -1], &[0, 1, 1]]);
        let keep = SinglePositiveParams::default();
        let (out, report) = single_positive(&m, &keep).unwrap();
        assert_eq!(
            (out.n_samples(), report.empty_rows, report.dropped_rows),
            (3, 1, 0)
        );
        assert_eq!(report.empty_examples, ["s1"]);
        let drop = SinglePositiveParams {
            empty_rows: EmptyRows::Drop,
            ..Default::default()
        };
        let (out, report) = single_positive(&m, &drop).unwrap();
        assert_eq!((out.n_samples(), report.dropped_rows), (2, 1));
        assert_eq!(out.sample_ids(), ["s0", "s2"]);
        assert_eq!(report.kept_rows, [true, false, true]);
    }
}

/// Parameters of the single-positive protocol's train/val split: Cole et al.'s
/// `datasets.generate_split` with its subsampling pass (`multilabel.__init__`), on MT19937 as
/// NumPy's `RandomState`. The defaults are the reference's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitParams {
    /// Fraction of the rows that become the validation split (`val_frac`, 0.2).
    pub val_frac: f64,
    /// Seed of the permutation (`split_seed`, 1200).
    pub seed: u64,
    /// Seed of the subsampling pass (`ss_seed`, 999); it draws even at fraction 1.
    pub subsample_seed: u64,
    /// Fraction of the train split kept (`ss_frac_train`, 1.0).
    pub subsample_train: f64,
    /// Fraction of the validation split kept (`ss_frac_val`, 1.0).
    pub subsample_val: f64,
}

impl Default for SplitParams {
    fn default() -> Self {
        Self {
            val_frac: 0.2,
            seed: 1200,
            subsample_seed: 999,
            subsample_train: 1.0,
            subsample_val: 1.0,
        }
    }
}

impl SplitParams {
    /// Checks the ranges.
    ///
    /// # Errors
    /// Fractions outside [0, 1], seeds above `u32::MAX`.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("val_frac", self.val_frac),
            ("subsample_train", self.subsample_train),
            ("subsample_val", self.subsample_val),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(DataError::OutOfRange {
                    name,
                    expected: "in [0, 1]",
                    value: value.to_string(),
                });
            }
        }
        GeneratorKind::NumpyMt19937.seeded(self.seed)?;
        GeneratorKind::NumpyMt19937.seeded(self.subsample_seed)?;
        Ok(())
    }
}

/// The rows of each split, ascending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
}

/// Splits `n` rows as the single-positive protocol does, bit for bit:
/// `n_val = round_half_even(val_frac n)`; `perm = RandomState(seed).permutation(n)`;
/// train = sorted `perm[..n - n_val]`, val = sorted `perm[n - n_val..]`; then one
/// `RandomState(subsample_seed)` keeps, train first, the rows at the sorted first
/// `round_half_even(frac len)` positions of a permutation of each split.
///
/// Deliberate difference: with `n_val == 0` the reference's `perm[-0:]` selects every row for
/// validation, overlapping train; that is refused here.
///
/// # Errors
/// Invalid parameters, or a split that would leave either side empty.
pub fn spml_split(n: usize, params: &SplitParams) -> Result<Split> {
    params.validate()?;
    let n_val = (params.val_frac * n as f64).round_ties_even() as usize;
    if n_val == 0 || n_val >= n {
        return Err(DataError::Usage(format!(
            "a validation fraction of {} of {n} rows gives {n_val} validation and {} training rows; both must be at least 1",
            params.val_frac,
            n - n_val.min(n)
        )));
    }
    let mut rng = GeneratorKind::NumpyMt19937.seeded(params.seed)?;
    let mut perm: Vec<usize> = (0..n).collect();
    shuffle(&mut rng, &mut perm);
    let mut train = perm[..n - n_val].to_vec();
    let mut val = perm[n - n_val..].to_vec();
    train.sort_unstable();
    val.sort_unstable();
    let mut rng = GeneratorKind::NumpyMt19937.seeded(params.subsample_seed)?;
    let mut subsample = |rows: Vec<usize>, fraction: f64| -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        shuffle(&mut rng, &mut order);
        let keep = (fraction * rows.len() as f64).round_ties_even() as usize;
        let mut kept = order[..keep].to_vec();
        kept.sort_unstable();
        kept.into_iter().map(|k| rows[k]).collect()
    };
    let train = subsample(train, params.subsample_train);
    let val = subsample(val, params.subsample_val);
    Ok(Split { train, val })
}
