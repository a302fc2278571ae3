//! Slices of the embedded yeast set (`datasets/yeast`), shared by the feature-loop tests.

use std::ops::Range;
use std::path::PathBuf;

use mlml_data::formats::ZeroMeans;
use mlml_data::generate::{single_positive, SinglePositiveParams};
use mlml_train::FeatureSet;

fn yeast(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/yeast")
        .join(file)
}

/// Train: rows `train` of yeast-train with single-positive labels (ChaCha8, seed 0),
/// standardised by their own statistics; validation: rows `val` of yeast-train with their full
/// labels, standardised alike (the test split is never used).
pub fn slices(train: Range<usize>, val: Range<usize>) -> (FeatureSet, FeatureSet) {
    let classes: Vec<String> = std::fs::read_to_string(yeast("classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let all = FeatureSet::from_npy(
        &yeast("train_x.npy"),
        &yeast("train_y.npy"),
        classes,
        ZeroMeans::Negative,
    )
    .unwrap();
    let take = |rows: Range<usize>| all.select(&rows.collect::<Vec<_>>());
    let (mut train, mut val) = (take(train), take(val));
    let (mean, std) = train.standardization();
    train.standardize(&mean, &std);
    val.standardize(&mean, &std);
    let (observed, _) = single_positive(&train.labels, &SinglePositiveParams::default()).unwrap();
    (train.with_labels(observed).unwrap(), val)
}
