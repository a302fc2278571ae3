//! Large-loss rejection and correction: LL-R, LL-Ct, LL-Cp. Kim et al., "Large Loss Matters in
//! Weakly Supervised Multi-Label Classification", CVPR 2022, arXiv:2206.03740. Reference:
//! `snucml/LargeLossMatters` `losses.py` `compute_batch_loss` and `train.py`; LL-Cp as published
//! follows the authors' corrected copy in `youngwk/BridgeGapExplanationPAMC` (BoostLU).
//!
//! ```text
//! L  = BCE(z, y)        (unobserved read as negative)
//! Lc = BCE(z, 1 - y)    (unobserved scored as positive)
//! U  = L on unobserved entries, 0 elsewhere;  tau = k-th largest U over the whole batch
//! S  = { U >= tau }     (ties at tau are all selected)
//! LL-R:  F = L outside S, 0 in S          LL-Ct / LL-Cp:  F = L outside S, Lc in S
//! loss = mean(F) over all B C entries
//! ```
//! Schedule (1-based epochs): `clean_rate` starts at 1.0 and loses `delta_rel` after each epoch by
//! repeated float64 subtraction, as the reference does (so `ceil` can land one higher than the
//! exact multiple). Epoch 1 is plain AN. LL-R and LL-Ct use `k = ceil(B C (1 - clean_rate))`,
//! growing with the epoch; LL-Cp uses the constant `k = ceil(B C delta_rel)` from epoch 2 and
//! writes the selected entries permanently into its state as observed positives, keyed by dataset
//! row, so they are never selected again.
//!
//! The released LargeLossMatters code compares strings with `is`, so its LL-Cp never switches on
//! and behaves exactly as LL-Ct (no write-back): [`LlCpVariant::Released`] reproduces that, and
//! [`LlCpVariant::StrictWriteBack`] the LargeLossMatters code with the test fixed, which stores
//! only `U > tau` (strict). The default, [`LlCpVariant::Published`], is the method as published
//! (BoostLU's copy: `U >= tau` for the loss and the write-back).
//! Default `delta_rel` per scheme are BoostLU's: LL-R 0.5 %, LL-Ct 0.2 %, LL-Cp 0.1 %.

use std::collections::{BTreeMap, BTreeSet};

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::common::{bce_with_logits, positive_mask, unobserved_mask, LossContext, MultiLabelLoss};
use crate::error::{check_range, LossError};

/// Rejection or correction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LargeLossScheme {
    /// Reject: selected entries contribute 0.
    LlR,
    /// Correct temporarily: selected entries are scored as positives in this batch.
    LlCt,
    /// Correct permanently: as LL-Ct, and the entries become observed positives for good.
    LlCp,
}

/// Which LL-Cp behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LlCpVariant {
    /// The published method (BoostLU's corrected copy): `k = ceil(B C delta_rel)`, write back
    /// `U >= tau`.
    #[default]
    Published,
    /// LargeLossMatters with its `is` test fixed: as published, but writes back only `U > tau`.
    StrictWriteBack,
    /// LargeLossMatters as released: identical to LL-Ct (no write-back).
    Released,
}

/// Hyperparameters of [`LargeLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct LargeLossConfig {
    /// LL-R, LL-Ct or LL-Cp.
    pub scheme: LargeLossScheme,
    /// Fraction per epoch (`--delta_rel` / 100): `None` takes the scheme's default.
    pub delta_rel: Option<f64>,
    /// LL-Cp only: which behaviour.
    #[config(default = "LlCpVariant::Published")]
    pub cp_variant: LlCpVariant,
}

impl LargeLossConfig {
    /// The scheme's default `delta_rel` (BoostLU's fixed values).
    pub fn default_delta_rel(scheme: LargeLossScheme) -> f64 {
        match scheme {
            LargeLossScheme::LlR => 0.005,
            LargeLossScheme::LlCt => 0.002,
            LargeLossScheme::LlCp => 0.001,
        }
    }

    /// Builds the loss.
    ///
    /// # Errors
    /// `delta_rel` outside [0, 1].
    pub fn init(&self) -> crate::Result<LargeLoss> {
        let delta_rel = self
            .delta_rel
            .unwrap_or(Self::default_delta_rel(self.scheme));
        check_range(
            scheme_name(self.scheme),
            "delta_rel",
            delta_rel,
            0.0,
            1.0,
            "in [0, 1] (a fraction: 0.2 % is 0.002)",
        )?;
        Ok(LargeLoss {
            scheme: self.scheme,
            delta_rel,
            cp_variant: self.cp_variant,
            corrected: BTreeMap::new(),
        })
    }
}

fn scheme_name(scheme: LargeLossScheme) -> &'static str {
    match scheme {
        LargeLossScheme::LlR => "ll-r",
        LargeLossScheme::LlCt => "ll-ct",
        LargeLossScheme::LlCp => "ll-cp",
    }
}

/// `clean_rate` during a 1-based epoch: 1.0 minus `delta_rel` once per finished epoch, by
/// repeated float64 subtraction like the reference.
pub fn clean_rate(epoch: usize, delta_rel: f64) -> f64 {
    let mut rate = 1.0f64;
    for _ in 1..epoch {
        rate -= delta_rel;
    }
    rate
}

/// The k-th largest value (k clamped to 1..=len), in linear time.
fn kth_largest(values: &[f32], k: usize) -> f32 {
    let mut scratch = values.to_vec();
    let at = k.clamp(1, scratch.len()) - 1;
    *scratch.select_nth_unstable_by(at, |a, b| b.total_cmp(a)).1
}

/// What the selection of one batch was: for tests and logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// k.
    pub k: usize,
    /// The k-th largest unobserved loss.
    pub threshold: f32,
    /// Selected entries, row-major `[batch, n_classes]`.
    pub selected: Vec<bool>,
    /// The unobserved losses `U` the selection was made from, row-major.
    pub unobserved_loss: Vec<f32>,
}

/// LL-R / LL-Ct / LL-Cp; see the module docs.
#[derive(Clone, Debug)]
pub struct LargeLoss {
    scheme: LargeLossScheme,
    delta_rel: f64,
    cp_variant: LlCpVariant,
    /// LL-Cp: dataset row -> classes corrected to positive.
    corrected: BTreeMap<usize, BTreeSet<usize>>,
}

impl LargeLoss {
    /// The per-batch `k` at a 1-based epoch, or `None` when nothing is modified.
    pub fn k(&self, epoch: usize, batch: usize, n_classes: usize) -> Option<usize> {
        let rate = clean_rate(epoch, self.delta_rel);
        if rate == 1.0 {
            return None;
        }
        let entries = (batch * n_classes) as f64;
        let fraction = match (self.scheme, self.cp_variant) {
            (LargeLossScheme::LlCp, LlCpVariant::Published | LlCpVariant::StrictWriteBack) => {
                self.delta_rel
            }
            _ => 1.0 - rate,
        };
        Some((entries * fraction).ceil() as usize)
    }

    /// Classes corrected so far (LL-Cp), by dataset row.
    pub fn corrected(&self) -> &BTreeMap<usize, BTreeSet<usize>> {
        &self.corrected
    }

    fn writes_back(&self) -> bool {
        self.scheme == LargeLossScheme::LlCp && self.cp_variant != LlCpVariant::Released
    }

    /// Per-element matrix `F` `[batch, n_classes]` and the selection made, without touching the
    /// LL-Cp state.
    ///
    /// # Panics
    /// LL-Cp without one dataset row per batch row.
    pub fn forward_elementwise<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> (Tensor<B, 2>, Option<Selection>) {
        let [n, c] = logits.dims();
        let device = logits.device();
        let mut positive = positive_mask(&targets);
        let mut unobserved = unobserved_mask(&targets);
        if self.writes_back() && !self.corrected.is_empty() {
            assert_eq!(
                ctx.sample_indices.len(),
                n,
                "ll-cp needs the dataset row of each of the {n} batch rows"
            );
            let mut mask = vec![false; n * c];
            for (r, sample) in ctx.sample_indices.iter().enumerate() {
                for &j in self.corrected.get(sample).into_iter().flatten() {
                    mask[r * c + j] = true;
                }
            }
            let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [n, c]), &device);
            positive = positive.bool_or(mask.clone());
            unobserved = unobserved.bool_and(mask.bool_not());
        }
        let y = positive.float();
        let loss = bce_with_logits(logits.clone(), y.clone());
        let Some(k) = self.k(ctx.epoch, n, c) else {
            return (loss, None);
        };
        let unobserved_loss = loss
            .clone()
            .mask_where(unobserved.clone().bool_not(), loss.zeros_like());
        let values = unobserved_loss
            .detach()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 data");
        let threshold = kth_largest(&values, k);
        // Only unobserved entries are candidates. The reference selects `U >= tau` over the whole
        // batch, which includes observed positives (U = 0) when tau is 0, i.e. once k reaches the
        // number of unobserved entries with a positive loss; that never happens at the papers'
        // rates, and we do not reproduce it.
        let candidate: Vec<bool> = if threshold > 0.0 {
            Vec::new()
        } else {
            unobserved
                .clone()
                .into_data()
                .convert::<bool>()
                .into_vec::<bool>()
                .expect("bool data")
        };
        let selected: Vec<bool> = values
            .iter()
            .enumerate()
            .map(|(i, v)| *v >= threshold && (threshold > 0.0 || candidate[i]))
            .collect();
        let mask =
            Tensor::<B, 2, Bool>::from_data(TensorData::new(selected.clone(), [n, c]), &device);
        let replacement = match self.scheme {
            LargeLossScheme::LlR => loss.zeros_like(),
            // BCE(z, 1 - y) = BCE(z, y) + (2y - 1) z: no second log-sigmoid.
            LargeLossScheme::LlCt | LargeLossScheme::LlCp => {
                loss.clone() + y.mul_scalar(2.0).sub_scalar(1.0).mul(logits)
            }
        };
        (
            loss.mask_where(mask, replacement),
            Some(Selection {
                k,
                threshold,
                selected,
                unobserved_loss: values,
            }),
        )
    }

    /// Stores the LL-Cp corrections of a batch's selection.
    fn write_back(&mut self, selection: &Selection, sample_indices: &[usize], c: usize) {
        let strict = self.cp_variant == LlCpVariant::StrictWriteBack;
        for (at, &sel) in selection.selected.iter().enumerate() {
            // LargeLossMatters stores only the entries strictly above the threshold.
            if sel && (!strict || selection.unobserved_loss[at] > selection.threshold) {
                let sample = sample_indices[at / c];
                self.corrected.entry(sample).or_default().insert(at % c);
            }
        }
    }
}

impl<B: Backend> MultiLabelLoss<B> for LargeLoss {
    fn name(&self) -> &'static str {
        scheme_name(self.scheme)
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Tensor<B, 1> {
        let c = logits.dims()[1];
        let (matrix, selection) = self.forward_elementwise(logits, targets, ctx);
        if let (true, Some(selection)) = (self.writes_back(), &selection) {
            assert_eq!(
                ctx.sample_indices.len() * c,
                selection.selected.len(),
                "ll-cp needs the dataset row of each batch row"
            );
            self.write_back(selection, ctx.sample_indices, c);
        }
        matrix.mean()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "corrected": self.corrected })
    }

    fn load_state(&mut self, state: &serde_json::Value) -> crate::Result<()> {
        if state.is_null() {
            return Ok(());
        }
        self.corrected =
            serde_json::from_value(state["corrected"].clone()).map_err(|e| LossError::State {
                loss: scheme_name(self.scheme),
                message: e.to_string(),
            })?;
        Ok(())
    }
}
