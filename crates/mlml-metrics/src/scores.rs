//! Checked views of a row-major score matrix, and the sort key every ranking uses.

use mlml_data::LabelMatrix;

use crate::error::{MetricsError, Result};

/// A checked `[n_samples, n_classes]` row-major score matrix.
#[derive(Clone, Copy)]
pub(crate) struct ScoreMatrix<'a> {
    pub data: &'a [f32],
    pub n_samples: usize,
    pub n_classes: usize,
}

impl ScoreMatrix<'_> {
    pub fn row(&self, sample: usize) -> &[f32] {
        &self.data[sample * self.n_classes..(sample + 1) * self.n_classes]
    }
}

/// Checks shape and NaNs once, up front.
pub(crate) fn checked<'a>(scores: &'a [f32], labels: &LabelMatrix) -> Result<ScoreMatrix<'a>> {
    let (n_samples, n_classes) = (labels.n_samples(), labels.n_classes());
    if scores.len() != n_samples * n_classes {
        return Err(MetricsError::ShapeMismatch {
            scores: scores.len(),
            n_samples,
            n_classes,
        });
    }
    if n_samples == 0 {
        return Err(MetricsError::Empty);
    }
    if let Some(at) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricsError::NanScore {
            sample: at / n_classes,
            class: at % n_classes,
        });
    }
    Ok(ScoreMatrix {
        data: scores,
        n_samples,
        n_classes,
    })
}

/// Maps a score to a `u32` whose ascending order is the *descending* order of the scores
/// (-0.0 and 0.0 equal). Sorting integers is faster than `f32::total_cmp` and needs no closure.
pub(crate) fn descending_bits(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits();
    let ascending = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    !ascending
}

/// A key whose ascending order is: descending score, then descending index (the tie convention).
pub(crate) fn sort_key(score: f32, index: usize) -> u64 {
    (u64::from(descending_bits(score)) << 32) | u64::from(!(index as u32))
}

/// The index a [`sort_key`] was made from.
pub(crate) fn sample_of(key: u64) -> usize {
    !(key as u32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_descending_score_then_descending_index() {
        let scores = [
            0.5f32,
            -1.0,
            0.5,
            f32::INFINITY,
            -0.0,
            0.0,
            f32::NEG_INFINITY,
            1e-30,
        ];
        let mut keys: Vec<u64> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| sort_key(*s, i))
            .collect();
        keys.sort_unstable();
        let order: Vec<usize> = keys.iter().map(|k| sample_of(*k)).collect();
        assert_eq!(order, [3, 2, 0, 7, 5, 4, 1, 6]);
        assert_eq!(descending_bits(-0.0), descending_bits(0.0));
    }
}
