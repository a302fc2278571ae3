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
//! `delta_rel_percent` is in percent, as the reference's `--delta_rel` flag (0.2 means 0.2 %
//! per epoch; the reference divides by 100). Defaults per scheme are BoostLU's fixed values:
//! LL-R 0.5 %, LL-Ct 0.2 %, LL-Cp 0.1 %. The presets set the LL paper's per-dataset values (the
//! first author's reply in <https://github.com/snucml/LargeLossMatters/issues/4>, 2022-11-21):
//! VOC 0.2 / 0.2 / 0.1, COCO and NUS-WIDE 0.4 / 0.2 / 0.2, CUB 0.4 / 0.4 / 0.2 for LL-R / LL-Ct /
//! LL-Cp; `boostlu` keeps BoostLU's fixed 0.5 %.
//!
//! Lifecycle: in a training batch LL-Cp records its selection, and
//! [`MultiLabelLoss::on_optimizer_step`] writes it into the state (the reference writes back
//! after `optimizer.step()`); an evaluation batch neither reads nor writes the corrections,
//! whose keys are training rows.

use mlml_ops::SigmoidBackend;
use std::collections::{BTreeMap, BTreeSet};

use burn::config::Config;
use burn::tensor::{Bool, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::common::{
    bce_with_logits, check_shapes, check_training_rows, positive_mask, unobserved_mask,
    LossContext, LossState, MultiLabelLoss, OptimizerStep,
};
use crate::error::{check_range, LossError};
use crate::registration::{Preset, PresetValue, Registered};

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
    /// Per-epoch rate **in percent** (the reference's `--delta_rel`: 0.2 means 0.2 %):
    /// `None` takes the scheme's default.
    pub delta_rel_percent: Option<f64>,
    /// LL-Cp only: which behaviour.
    #[config(default = "LlCpVariant::Published")]
    pub cp_variant: LlCpVariant,
}

impl LargeLossConfig {
    /// The scheme's default `delta_rel_percent` (BoostLU's fixed values).
    pub fn default_delta_rel_percent(scheme: LargeLossScheme) -> f64 {
        match scheme {
            LargeLossScheme::LlR => 0.5,
            LargeLossScheme::LlCt => 0.2,
            LargeLossScheme::LlCp => 0.1,
        }
    }

    /// Builds the loss.
    ///
    /// # Errors
    /// `delta_rel_percent` outside [0, 100].
    pub fn init(&self) -> crate::Result<LargeLoss> {
        let percent = self
            .delta_rel_percent
            .unwrap_or(Self::default_delta_rel_percent(self.scheme));
        check_range(
            scheme_name(self.scheme),
            "delta_rel_percent",
            percent,
            0.0,
            100.0,
            "in [0, 100] (percent per epoch, as the reference's --delta_rel: 0.2 is 0.2 %)",
        )?;
        Ok(LargeLoss {
            name: scheme_name(self.scheme),
            scheme: self.scheme,
            // The reference divides its percentage by 100 once, in float64.
            delta_rel: percent / 100.0,
            cp_variant: self.cp_variant,
            n_train: None,
            corrected: BTreeMap::new(),
            pending: Vec::new(),
        })
    }
}

fn scheme_name(scheme: LargeLossScheme) -> &'static str {
    match scheme {
        LargeLossScheme::LlR => <LlR as Registered>::INFO.name,
        LargeLossScheme::LlCt => <LlCt as Registered>::INFO.name,
        LargeLossScheme::LlCp => <LlCp as Registered>::INFO.name,
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
pub struct LargeLossSelection {
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
    name: &'static str,
    scheme: LargeLossScheme,
    delta_rel: f64,
    cp_variant: LlCpVariant,
    /// Training-set rows, when known: LL-Cp checks its keys against it.
    n_train: Option<usize>,
    /// LL-Cp: dataset row -> classes corrected to positive.
    corrected: BTreeMap<usize, BTreeSet<usize>>,
    /// LL-Cp: (row, class) selected by training batches since the last optimizer step.
    pending: Vec<(usize, usize)>,
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

    /// The same loss for a training set of `n_train` rows (LL-Cp refuses rows outside it).
    pub fn with_training_rows(mut self, n_train: usize) -> Self {
        self.n_train = Some(n_train);
        self
    }

    /// The per-epoch rate as a fraction (`delta_rel_percent / 100`).
    pub fn delta_rel(&self) -> f64 {
        self.delta_rel
    }

    /// Classes corrected so far (LL-Cp), by dataset row.
    pub fn corrected(&self) -> &BTreeMap<usize, BTreeSet<usize>> {
        &self.corrected
    }

    fn writes_back(&self) -> bool {
        self.scheme == LargeLossScheme::LlCp && self.cp_variant != LlCpVariant::Released
    }

    /// Per-element matrix `F` `[batch, n_classes]` and the selection made, without touching the
    /// LL-Cp state. A training batch sees LL-Cp's corrections so far; an evaluation batch does
    /// not.
    ///
    /// # Errors
    /// Logits and targets of different shapes; LL-Cp without one training row per batch row.
    pub fn forward_elementwise<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<(Tensor<B, 2>, Option<LargeLossSelection>)> {
        let name = self.name;
        check_shapes(name, &logits, &targets)?;
        let [n, c] = logits.dims();
        if self.writes_back() && ctx.is_train() {
            check_training_rows(name, ctx.rows(), n, self.n_train.unwrap_or(usize::MAX))?;
        }
        let device = logits.device();
        let mut positive = positive_mask(&targets);
        let mut unobserved = unobserved_mask(&targets);
        if self.writes_back() && ctx.is_train() && !self.corrected.is_empty() {
            let mut mask = vec![false; n * c];
            for (r, sample) in ctx.rows().iter().enumerate() {
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
        let Some(k) = self.k(ctx.epoch(), n, c) else {
            return Ok((loss, None));
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
        Ok((
            loss.mask_where(mask, replacement),
            Some(LargeLossSelection {
                k,
                threshold,
                selected,
                unobserved_loss: values,
            }),
        ))
    }

    /// Records the LL-Cp corrections of a training batch's selection, to be stored at the next
    /// optimizer step.
    fn record(&mut self, selection: &LargeLossSelection, rows: &[usize], c: usize) {
        let strict = self.cp_variant == LlCpVariant::StrictWriteBack;
        for (at, &sel) in selection.selected.iter().enumerate() {
            // LargeLossMatters stores only the entries strictly above the threshold.
            if sel && (!strict || selection.unobserved_loss[at] > selection.threshold) {
                self.pending.push((rows[at / c], at % c));
            }
        }
    }
}

impl<B: SigmoidBackend> MultiLabelLoss<B> for LargeLoss {
    fn name(&self) -> &'static str {
        self.name
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        let c = logits.dims()[1];
        let (matrix, selection) = self.forward_elementwise(logits, targets, ctx)?;
        if let (true, true, Some(selection)) = (self.writes_back(), ctx.is_train(), &selection) {
            self.record(selection, ctx.rows(), c);
        }
        Ok(matrix.mean())
    }

    fn on_optimizer_step(&mut self, _step: &OptimizerStep<'_, B>) -> crate::Result<()> {
        for (row, class) in self.pending.drain(..) {
            self.corrected.entry(row).or_default().insert(class);
        }
        Ok(())
    }

    fn state(&self) -> LossState {
        if !self.writes_back() {
            return LossState::default();
        }
        LossState {
            loss: self.name.to_string(),
            values: serde_json::json!({ "corrected": self.corrected }),
            tensors: Default::default(),
        }
    }

    fn load_state(&mut self, state: &LossState) -> crate::Result<()> {
        let name = self.name;
        if state.is_empty() {
            self.corrected.clear();
            return Ok(());
        }
        state.expect_loss(name)?;
        if !self.writes_back() {
            return Err(LossError::State {
                loss: name,
                message: "this variant keeps no corrections".into(),
            });
        }
        self.corrected =
            serde_json::from_value(state.values["corrected"].clone()).map_err(|e| {
                LossError::State {
                    loss: name,
                    message: e.to_string(),
                }
            })?;
        if let Some((&row, _)) = self.n_train.and_then(|n| self.corrected.range(n..).next()) {
            return Err(LossError::State {
                loss: name,
                message: format!("corrected row {row} is outside the training set"),
            });
        }
        self.pending.clear();
        Ok(())
    }
}

/// The registry's config of `ll-r`, `ll-ct` and `boostlu` (the scheme is the name's).
#[derive(Config, Debug, PartialEq)]
pub struct LargeLossRate {
    /// Per-epoch rate in percent (0.2 means 0.2 %); `None` takes the scheme's default.
    pub delta_rel_percent: Option<f64>,
}

/// The registry's config of `ll-cp`.
#[derive(Config, Debug, PartialEq)]
pub struct LlCpRate {
    /// Per-epoch rate in percent (0.2 means 0.2 %); `None` takes the scheme's default.
    pub delta_rel_percent: Option<f64>,
    /// Which behaviour.
    #[config(default = "LlCpVariant::Published")]
    pub cp_variant: LlCpVariant,
}

const LL_SOURCE: &str = "first author's reply, github.com/snucml/LargeLossMatters/issues/4";

/// The LL paper's per-dataset `delta_rel` (percent) for LL-R, LL-Ct, LL-Cp.
fn ll_preset(preset: Preset) -> Option<[f64; 3]> {
    match preset {
        Preset::Voc => Some([0.2, 0.2, 0.1]),
        Preset::Coco | Preset::Nuswide => Some([0.4, 0.2, 0.2]),
        Preset::Cub => Some([0.4, 0.4, 0.2]),
        Preset::Yeast | Preset::Scene | Preset::Fashion => None,
    }
}

fn ll_preset_value(preset: Preset, scheme: usize) -> Vec<PresetValue> {
    ll_preset(preset)
        .map(|rates| PresetValue::new("delta_rel_percent", rates[scheme], LL_SOURCE))
        .into_iter()
        .collect()
}

macro_rules! ll_entry {
    ($(#[$doc:meta])* $marker:ident, $name:literal, $summary:literal, $scheme:expr, $preset_column:expr) => {
        $(#[$doc])*
        pub(crate) struct $marker;

        crate::registration::register!(
            $marker,
            config: LargeLossRate = LargeLossRate::new(),
            info: { name: $name, summary: $summary, reduction: "mean", needs: "epoch" },
            preset: |preset| match $preset_column {
                Some(column) => ll_preset_value(preset, column),
                None => Vec::new(),
            },
            build: |config, setup| {
                let mut loss = LargeLossConfig::new($scheme)
                    .with_delta_rel_percent(config.delta_rel_percent)
                    .init()?
                    .with_training_rows(setup.n_train());
                loss.name = <$marker as Registered>::INFO.name;
                loss
            },
        );
    };
}

ll_entry!(
    /// `ll-r`.
    LlR,
    "ll-r",
    "large-loss rejection (Kim et al.)",
    LargeLossScheme::LlR,
    Some(0)
);
ll_entry!(
    /// `ll-ct`.
    LlCt,
    "ll-ct",
    "large-loss temporary correction (Kim et al.)",
    LargeLossScheme::LlCt,
    Some(1)
);
ll_entry!(
    /// `boostlu`: LL-R with BoostLU's fixed rate, trained on the boosted CAM head's logits.
    BoostLu,
    "boostlu",
    "BoostLU: LL-R on boosted CAM logits (Kim et al.; head in mlml-models)",
    LargeLossScheme::LlR,
    None::<usize>
);

/// `ll-cp`.
pub(crate) struct LlCp;

crate::registration::register!(
    LlCp,
    config: LlCpRate = LlCpRate::new(),
    info: {
        name: "ll-cp",
        summary: "large-loss permanent correction (Kim et al.)",
        reduction: "mean",
        needs: "epoch, training rows, optimizer step, state"
    },
    preset: |preset| ll_preset_value(preset, 2),
    build: |config, setup| LargeLossConfig::new(LargeLossScheme::LlCp)
        .with_delta_rel_percent(config.delta_rel_percent)
        .with_cp_variant(config.cp_variant)
        .init()?
        .with_training_rows(setup.n_train()),
);

#[cfg(test)]
mod vector_tests {
    use serde_json::Value;

    use super::{clean_rate, LargeLoss, LargeLossConfig, LargeLossScheme, LlCpVariant};
    use crate::vectors::{all_rows, check, indices, load, matrix, number, tensor, B};
    use crate::{LossContext, MultiLabelLoss, OptimizerStep};

    fn large_loss(h: &Value, variant: &str) -> LargeLoss {
        let scheme = match h["scheme"].as_str().unwrap() {
            "LL-R" => LargeLossScheme::LlR,
            "LL-Ct" => LargeLossScheme::LlCt,
            "LL-Cp" => LargeLossScheme::LlCp,
            other => panic!("scheme {other}"),
        };
        let cp_variant = match variant {
            "released_cli" => LlCpVariant::Released,
            "intended_is_true" => LlCpVariant::StrictWriteBack,
            _ => LlCpVariant::Published,
        };
        LargeLossConfig::new(scheme)
            .with_delta_rel_percent(Some(number(h, "delta_rel") * 100.0))
            .with_cp_variant(cp_variant)
            .init()
            .unwrap()
    }

    /// The three schemes: the clean rate, k, the loss and its gradient, and LL-Cp's entries
    /// written back at the optimizer step (in each of its variants).
    #[test]
    fn schemes_and_ll_cp_write_back_match_the_reference() {
        for file in ["ll_r.json", "ll_ct.json", "ll_cp.json"] {
            let v = load(file);
            let logits = tensor(&v["inputs"]["logits"]);
            let targets = tensor(&v["inputs"]["observed_labels"]);
            let c = logits.dims()[1];
            for case in v["cases"].as_array().unwrap() {
                let h = &case["hyperparameters"];
                let name = format!("{file} {}", case["id"]);
                let epoch = h["epoch_1_based"].as_u64().unwrap() as usize;
                assert_eq!(
                    clean_rate(epoch, number(h, "delta_rel")),
                    number(h, "clean_rate_at_epoch"),
                    "{name}"
                );
                let block = &case["float32"];
                let mut loss = large_loss(h, case["variant"].as_str().unwrap());
                let rows = match block.get("batch_sample_indices") {
                    Some(idx) => indices(idx),
                    None => all_rows(logits.dims()[0]),
                };
                let k = loss.k(epoch, rows.len(), c);
                assert_eq!(
                    k.unwrap_or(0) as u64,
                    block["k"].as_u64().unwrap_or(0),
                    "{name}: k"
                );
                check(&name, logits.clone(), block, |z| {
                    loss.forward(
                        z,
                        targets.clone(),
                        &LossContext::train(epoch, &rows).unwrap(),
                    )
                    .unwrap()
                });
                // LL-Cp stores its selection at the optimizer step, as the reference does after
                // `optimizer.step()`.
                MultiLabelLoss::<B>::on_optimizer_step(
                    &mut loss,
                    &OptimizerStep {
                        lr: 0.0,
                        gradient: &|_| None,
                    },
                )
                .unwrap();
                if let Some(after) = block.get("dataset_label_matrix_after") {
                    let (before, _, _) = matrix(&block["dataset_label_matrix_before"]);
                    let (after, _, _) = matrix(after);
                    let mut expected: Vec<(usize, usize)> = (0..after.len())
                        .filter(|&k| after[k] == 1.0 && before[k] != 1.0)
                        .map(|k| (k / c, k % c))
                        .collect();
                    expected.sort_unstable();
                    let got: Vec<(usize, usize)> = loss
                        .corrected()
                        .iter()
                        .flat_map(|(r, js)| js.iter().map(move |j| (*r, *j)))
                        .collect();
                    assert_eq!(got, expected, "{name}: corrected entries");
                }
            }
        }
    }

    /// BoostLU's loss is LL-R on the boosted head's logits: from the vector's logits, the loss
    /// and its gradient with respect to the logits. (The head itself is tested in
    /// `mlml-models`.)
    #[test]
    fn boostlu_loss_on_the_boosted_logits() {
        let v = load("boostlu_head.json");
        let targets = tensor(&v["inputs"]["observed_labels"]);
        let cases = v["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let id = case["id"].as_str().unwrap();
            let block = &case["float32"];
            let logits = tensor(&block["logits"]);
            let (epoch, percent) = if case["loss"].as_str().unwrap().contains("epoch4") {
                (4, 5.0)
            } else {
                (1, 0.5)
            };
            let mut loss = LargeLossConfig::new(LargeLossScheme::LlR)
                .with_delta_rel_percent(Some(percent))
                .init()
                .unwrap();
            let rows = all_rows(logits.dims()[0]);
            check(&format!("boostlu {id}"), logits, block, |z| {
                loss.forward(
                    z,
                    targets.clone(),
                    &LossContext::train(epoch, &rows).unwrap(),
                )
                .unwrap()
            });
        }
    }
}
