//! EM with asymmetric pseudo-labelling (EM+APL). Zhou et al., ECCV 2022, arXiv:2203.16219.
//! Reference: `Correr-Zhou/SPML-AckTheUnknown` `losses.py` `loss_EM_APL` and `main.py`
//! `aysmmetric_pseudo_labeling`.
//!
//! ```text
//! positive:         -ln(p + 1e-5)
//! unobserved:       -alpha * entropy(p)                      (the EM term)
//! pseudo-negative:  beta * [ s (-ln(p + 1e-5)) + (1 - s) (-ln(1 - p + 1e-5)) ]
//! loss = sum / (N C)
//! ```
//! `s` is the model's probability stored when the entry was pseudo-labelled (the reference keeps
//! `-s` in its label matrix). Pseudo-labels come from [`EmAplLoss::pseudo_label_round`], run
//! after each epoch from `warmup_epoch` on (1-based epochs): per class, among the entries still
//! unobserved, the `floor(neg_proportion * U_c / (num_epochs - warmup_epoch))` with the lowest
//! probability become pseudo-negatives, where `U_c` is the class's unobserved count at the
//! first round. They are permanent and cumulative; there are no positive pseudo-labels.
//!
//! Differences from the reference, deliberate: ties in the ascending sort are broken by
//! ascending sample index (NumPy's unstable sort leaves them undefined); a round over a single
//! batch assigns labels (the reference skips it by accident); an observed negative, which the
//! single-positive protocol never has, is read as a pseudo-negative with `s = 0`. As in the
//! reference, an entry stored with `s = 0` exactly falls back to the EM term.
//!
//! Lifecycle: [`MultiLabelLoss::wants_train_probabilities`] asks for the eval-mode
//! probabilities of every training row after each epoch from `warmup_epoch` to `T - 1` (the
//! reference's round after the last epoch labels entries no batch ever sees, so it is skipped),
//! and [`MultiLabelLoss::after_epoch`] runs the round against the training set's original
//! observed labels, kept from the run's setup. Pseudo-labels apply to training batches only;
//! an evaluation batch is scored as plain EM (its rows are not training rows).
//!
//! State (keyed by training row): the pseudo-negatives and `U_c`; see [`MultiLabelLoss::state`].

use mlml_ops::SigmoidBackend;
use std::collections::BTreeMap;

use burn::config::Config;
use burn::tensor::{Bool, Tensor, TensorData};
use mlml_data::{LabelMatrix, UNOBSERVED};
use serde::{Deserialize, Serialize};

use crate::common::{
    check_shapes, check_training_rows, mean_all, negative_mask, positive_mask, EpochEnd,
    LossContext, LossState, MultiLabelLoss,
};
use crate::em::{em_alpha, ShiftedLogs, EM_SOURCE};
use crate::error::{check_range, LossError};
use crate::registration::{agree_with_run, Preset, PresetValue, Registered};

/// Hyperparameters of [`EmAplLoss`]; defaults are the reference's COCO row.
#[derive(Config, Debug, PartialEq)]
pub struct EmAplLossConfig {
    /// Weight of the entropy term (pascal 0.2, coco 0.1, nuswide 0.1, cub 0.01).
    #[config(default = 0.1)]
    pub alpha: f64,
    /// Weight of the pseudo-negative term (pascal 0.02, coco 0.9, nuswide 0.2, cub 0.4).
    #[config(default = 0.9)]
    pub beta: f64,
    /// First (1-based) epoch after which pseudo-labels are made (pascal/coco 5, nuswide 4, cub 3).
    #[config(default = 5)]
    pub warmup_epoch: usize,
    /// Fraction of the unobserved entries that become pseudo-negatives by the last epoch.
    #[config(default = 0.9)]
    pub neg_proportion: f64,
    /// Epochs of the run (T): `None` takes the run's; a value that differs from the run's is
    /// an error. The reference runs 10.
    pub num_epochs: Option<usize>,
}

impl EmAplLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// Negative weights, `neg_proportion` outside [0, 1], `warmup_epoch` not in `1..T`, or a
    /// configured `num_epochs` other than the run's `epochs`.
    pub fn init(&self, epochs: usize, observed: &LabelMatrix) -> crate::Result<EmAplLoss> {
        let epochs = agree_with_run(NAME, "num_epochs", self.num_epochs, epochs, "epochs")?;
        check_range(NAME, "alpha", self.alpha, 0.0, f64::MAX, ">= 0")?;
        check_range(NAME, "beta", self.beta, 0.0, f64::MAX, ">= 0")?;
        check_range(
            NAME,
            "neg_proportion",
            self.neg_proportion,
            0.0,
            1.0,
            "in [0, 1]",
        )?;
        if self.warmup_epoch == 0 || self.warmup_epoch >= epochs {
            return Err(LossError::OutOfRange {
                loss: NAME,
                name: "warmup_epoch",
                expected: "at least 1 and below the run's epochs",
                value: self.warmup_epoch.to_string(),
            });
        }
        Ok(EmAplLoss {
            config: self.clone().with_num_epochs(Some(epochs)),
            epochs,
            observed: observed.clone(),
            state: AplState::default(),
        })
    }
}

/// The pseudo-labels and the counts they are scheduled from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AplState {
    /// Unobserved entries per class at the first round (`U_c`).
    pub unlabel_num: Vec<usize>,
    /// Pseudo-negatives: dataset row -> (class, stored probability s).
    pub pseudo_negatives: BTreeMap<usize, Vec<(usize, f32)>>,
}

/// EM+APL; see the module docs.
#[derive(Clone, Debug)]
pub struct EmAplLoss {
    config: EmAplLossConfig,
    epochs: usize,
    /// The training set's observed labels before any pseudo-label.
    observed: LabelMatrix,
    state: AplState,
}

impl EmAplLoss {
    /// The current pseudo-labels.
    pub fn apl_state(&self) -> &AplState {
        &self.state
    }

    /// Per-element loss `[batch, n_classes]`, with the pseudo-labels of the batch's training
    /// rows (`None`: none, as for an evaluation batch).
    ///
    /// # Errors
    /// Logits and targets of different shapes, or rows that are not one training row per
    /// batch row.
    pub fn forward_elementwise<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        training_rows: Option<&[usize]>,
    ) -> crate::Result<Tensor<B, 2>> {
        Ok(self.negated(logits, targets, training_rows)?.neg())
    }

    /// The per-element loss negated; the batch loss negates its mean.
    fn negated<B: SigmoidBackend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        training_rows: Option<&[usize]>,
    ) -> crate::Result<Tensor<B, 2>> {
        check_shapes(NAME, &logits, &targets)?;
        let [n, c] = logits.dims();
        let sample_indices = training_rows.unwrap_or_default();
        if let Some(rows) = training_rows {
            check_training_rows(NAME, rows, n, self.observed.n_samples())?;
        }
        let device = logits.device();
        let mut soft = vec![0.0f32; n * c];
        let mut pseudo = vec![false; n * c];
        for (r, sample) in sample_indices.iter().enumerate() {
            for &(j, s) in self
                .state
                .pseudo_negatives
                .get(sample)
                .map_or(&[][..], Vec::as_slice)
            {
                if s != 0.0 {
                    soft[r * c + j] = s;
                    pseudo[r * c + j] = true;
                }
            }
        }
        let soft = Tensor::<B, 2>::from_data(TensorData::new(soft, [n, c]), &device);
        let pseudo = Tensor::<B, 2, Bool>::from_data(TensorData::new(pseudo, [n, c]), &device)
            .bool_or(negative_mask(&targets));
        // Negated terms (the batch loss negates its mean), each log computed once.
        let logs = ShiftedLogs::new(logits);
        let pseudo_term = (soft.clone().mul(logs.log_p.clone())
            + soft.neg().add_scalar(1.0).mul(logs.log_not_p.clone()))
        .mul_scalar(self.config.beta);
        Ok(logs
            .negated_entropy_term(self.config.alpha)
            .mask_where(pseudo, pseudo_term)
            .mask_where(positive_mask(&targets), logs.log_p))
    }

    /// One pseudo-labelling round after (1-based) `epoch`, from the model's probabilities on the
    /// whole training set (`[n_train, n_classes]`, row-major, in dataset row order) and the
    /// training set's observed labels. Returns how many entries were labelled in each class.
    ///
    /// # Errors
    /// When the probabilities do not fit the label matrix or hold NaN.
    pub fn pseudo_label_round(
        &mut self,
        epoch: usize,
        probabilities: &[f32],
        observed: &LabelMatrix,
    ) -> crate::Result<Vec<usize>> {
        pseudo_label_round(
            &mut self.state,
            &self.config,
            self.epochs,
            epoch,
            probabilities,
            observed,
        )
    }
}

fn pseudo_label_round(
    state: &mut AplState,
    config: &EmAplLossConfig,
    epochs: usize,
    epoch: usize,
    probabilities: &[f32],
    observed: &LabelMatrix,
) -> crate::Result<Vec<usize>> {
    let (n, c) = (observed.n_samples(), observed.n_classes());
    if probabilities.len() != n * c {
        return Err(LossError::Config {
            loss: NAME,
            message: format!("{} probabilities for {n} x {c} labels", probabilities.len()),
        });
    }
    if probabilities.iter().any(|p| p.is_nan()) {
        return Err(LossError::Config {
            loss: NAME,
            message: "NaN probability in the pseudo-labelling round".into(),
        });
    }
    if epoch < config.warmup_epoch {
        return Ok(vec![0; c]);
    }
    if state.unlabel_num.is_empty() {
        state.unlabel_num = (0..c)
            .map(|j| (0..n).filter(|&i| observed.row(i)[j] == UNOBSERVED).count())
            .collect();
    }
    let rounds = (epochs - config.warmup_epoch) as f64;
    let mut labelled = vec![false; n * c];
    for (&row, entries) in &state.pseudo_negatives {
        for &(j, _) in entries {
            labelled[row * c + j] = true;
        }
    }
    let mut assigned = vec![0; c];
    let mut candidates = Vec::with_capacity(n);
    for j in 0..c {
        let quota = (config.neg_proportion * state.unlabel_num[j] as f64 / rounds) as usize;
        candidates.clear();
        candidates
            .extend((0..n).filter(|&i| observed.row(i)[j] == UNOBSERVED && !labelled[i * c + j]));
        candidates.sort_by(|&a, &b| {
            probabilities[a * c + j]
                .total_cmp(&probabilities[b * c + j])
                .then(a.cmp(&b))
        });
        for &i in candidates.iter().take(quota) {
            state
                .pseudo_negatives
                .entry(i)
                .or_default()
                .push((j, probabilities[i * c + j]));
            assigned[j] += 1;
        }
    }
    Ok(assigned)
}

impl<B: SigmoidBackend> MultiLabelLoss<B> for EmAplLoss {
    fn name(&self) -> &'static str {
        NAME
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        // Pseudo-labels are keyed by training row: an evaluation batch gets none.
        let rows = ctx.is_train().then(|| ctx.rows());
        Ok(mean_all(self.negated(logits, targets, rows)?).neg())
    }

    fn wants_train_probabilities(&self, epoch: usize) -> bool {
        epoch >= self.config.warmup_epoch && epoch < self.epochs
    }

    fn after_epoch(&mut self, end: &EpochEnd<'_>) -> crate::Result<Option<String>> {
        if !<Self as MultiLabelLoss<B>>::wants_train_probabilities(self, end.epoch) {
            return Ok(None);
        }
        let probabilities = end.train_probabilities.ok_or_else(|| LossError::Config {
            loss: NAME,
            message: format!(
                "the pseudo-labelling round after epoch {} needs the training set's probabilities",
                end.epoch
            ),
        })?;
        let assigned = pseudo_label_round(
            &mut self.state,
            &self.config,
            self.epochs,
            end.epoch,
            probabilities,
            &self.observed,
        )?
        .iter()
        .sum::<usize>();
        let total: usize = self.state.pseudo_negatives.values().map(Vec::len).sum();
        Ok(Some(format!(
            "{NAME}: {assigned} new pseudo-negatives after epoch {} ({total} in all)",
            end.epoch
        )))
    }

    fn state(&self) -> LossState {
        LossState {
            loss: NAME.to_string(),
            values: serde_json::to_value(&self.state).expect("state serialises"),
            tensors: Default::default(),
        }
    }

    fn load_state(&mut self, state: &LossState) -> crate::Result<()> {
        if state.is_empty() {
            self.state = AplState::default();
            return Ok(());
        }
        state.expect_loss(NAME)?;
        let restored: AplState =
            serde_json::from_value(state.values.clone()).map_err(|e| LossError::State {
                loss: NAME,
                message: e.to_string(),
            })?;
        let (n, c) = (self.observed.n_samples(), self.observed.n_classes());
        let fits = restored.unlabel_num.is_empty() || restored.unlabel_num.len() == c;
        let outside = restored
            .pseudo_negatives
            .iter()
            .find(|(row, entries)| **row >= n || entries.iter().any(|(j, _)| *j >= c));
        if !fits || outside.is_some() {
            return Err(LossError::State {
                loss: NAME,
                message: format!("the pseudo-labels do not fit the {n} x {c} training set"),
            });
        }
        self.state = restored;
        Ok(())
    }
}

const NAME: &str = <EmAplLoss as Registered>::INFO.name;

crate::registration::register!(
    EmAplLoss,
    config: EmAplLossConfig = EmAplLossConfig::new(),
    info: {
        name: "em-apl",
        summary: "EM with asymmetric pseudo-labels (Zhou et al.)",
        reduction: "mean",
        needs: "epochs of the run, training rows, train probabilities after epochs, state"
    },
    preset: em_apl_preset,
    build: |config, setup| config.init(setup.epochs, setup.train_labels)?,
);

/// Zhou et al.'s `main.py` table (`Correr-Zhou/SPML-AckTheUnknown@ae1ccafe0b03`).
fn em_apl_preset(preset: Preset) -> Vec<PresetValue> {
    let (beta, warmup) = match preset {
        Preset::Voc => (0.02, 5),
        Preset::Coco => (0.9, 5),
        Preset::Nuswide => (0.2, 4),
        Preset::Cub => (0.4, 3),
        Preset::Yeast | Preset::Scene | Preset::Fashion => return Vec::new(),
    };
    let alpha = em_alpha(preset).expect("the four image sets have an alpha");
    vec![
        PresetValue::new("alpha", alpha, EM_SOURCE),
        PresetValue::new("beta", beta, EM_SOURCE),
        PresetValue::new("warmup_epoch", warmup, EM_SOURCE),
    ]
}

#[cfg(test)]
mod vector_tests {
    use burn::tensor::{Tensor, TensorData};
    use mlml_testing::assert_close;
    use serde_json::Value;

    use super::{AplState, EmAplLossConfig};
    use crate::vectors::{
        all_rows, check, label_matrix, load, matrix, number, tensor, value_tolerance, values, B,
    };
    use crate::{LossContext, LossState, MultiLabelLoss};

    /// (row, class, s) of a pseudo-negative.
    type Pseudo = (usize, usize, f32);

    /// The reference's label matrix with pseudo-negatives stored as `-s`: the codes (1 / 0) and
    /// the pseudo-negatives.
    fn split_apl_matrix(v: &Value) -> (Vec<f32>, Vec<Pseudo>, usize, usize) {
        let (data, n, c) = matrix(v);
        let mut pseudo = Vec::new();
        let codes = data
            .iter()
            .enumerate()
            .map(|(k, &x)| {
                if x < 0.0 {
                    pseudo.push((k / c, k % c, -x));
                    0.0
                } else {
                    x
                }
            })
            .collect();
        (codes, pseudo, n, c)
    }

    /// The loss on a batch that holds pseudo-negatives, then the pseudo-labelling rounds: which
    /// entries, their `s`, the count per class and `unlabel_num`.
    #[test]
    fn loss_and_pseudo_labelling_rounds_match_zhou_et_al() {
        let v = load("em_apl.json");
        let logits = tensor(&v["inputs"]["logits"]);
        let (codes, pseudo, n, c) = split_apl_matrix(&v["inputs"]["observed_labels"]);
        let targets =
            Tensor::<B, 2>::from_data(TensorData::new(codes, [n, c]), &Default::default());
        let rows = all_rows(n);
        let batch_observed = label_matrix(&values(targets.clone().inner()), n, c);
        let mut state = AplState::default();
        for (r, j, s) in &pseudo {
            state.pseudo_negatives.entry(*r).or_default().push((*j, *s));
        }
        let state = LossState {
            loss: "em-apl".into(),
            values: serde_json::to_value(&state).unwrap(),
            tensors: Default::default(),
        };
        assert!(
            !pseudo.is_empty(),
            "the vector's batch holds pseudo-negatives"
        );
        for case in v["cases"].as_array().unwrap() {
            let h = &case["hyperparameters"];
            let mut loss = EmAplLossConfig::new()
                .with_alpha(number(h, "alpha"))
                .with_beta(number(h, "beta"))
                .init(10, &batch_observed)
                .unwrap();
            MultiLabelLoss::<B>::load_state(&mut loss, &state).unwrap();
            check(
                &format!("em_apl {h}"),
                logits.clone(),
                &case["float32"],
                |z| {
                    loss.forward(z, targets.clone(), &LossContext::train(1, &rows).unwrap())
                        .unwrap()
                },
            );
        }

        let pl = &v["pseudo_labeling"];
        let hp = &pl["hyperparameters"];
        let rounds = pl["rounds"].as_array().unwrap();
        let (first, _, n, c) = split_apl_matrix(&rounds[0]["observed_before"]);
        let observed = label_matrix(&first, n, c);
        let mut loss = EmAplLossConfig::new()
            .with_warmup_epoch(hp["warmup_epoch"].as_u64().unwrap() as usize)
            .with_neg_proportion(number(hp, "neg_proportion"))
            .init(hp["num_epochs"].as_u64().unwrap() as usize, &observed)
            .unwrap();
        for round in rounds {
            let (logits, _, _) = matrix(&round["model_logits_float32"]);
            let probabilities: Vec<f32> = logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
            let epoch = round["epoch"].as_u64().unwrap() as usize;
            let assigned = loss
                .pseudo_label_round(epoch, &probabilities, &observed)
                .unwrap();
            let expected_counts = crate::vectors::indices(&round["neg_pl_num_per_class"]);
            let (_, expected, _, _) = split_apl_matrix(&round["observed_after"]);
            let mut got: Vec<Pseudo> = loss
                .apl_state()
                .pseudo_negatives
                .iter()
                .flat_map(|(r, e)| e.iter().map(move |(j, s)| (*r, *j, *s)))
                .collect();
            got.sort_by_key(|(r, j, _)| (*r, *j));
            assert_eq!(
                got.len(),
                expected.len(),
                "epoch {epoch}: number of pseudo-negatives"
            );
            for ((r, j, s), (er, ej, es)) in got.iter().zip(&expected) {
                assert_eq!((r, j), (er, ej), "epoch {epoch}: which entries");
                assert_close(
                    format!("epoch {epoch}: s at ({r}, {j})"),
                    *s as f64,
                    *es as f64,
                    value_tolerance(),
                );
            }
            assert_eq!(
                assigned, expected_counts,
                "epoch {epoch}: pseudo-negatives assigned per class"
            );
        }
        assert_eq!(
            loss.apl_state().unlabel_num,
            crate::vectors::indices(&pl["unlabel_num"])
        );
    }
}
