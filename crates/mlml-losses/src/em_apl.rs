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
//! State (keyed by dataset row): the pseudo-negatives and `U_c`; see [`MultiLabelLoss::state`].

use std::collections::BTreeMap;

use burn::config::Config;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use mlml_data::{LabelMatrix, UNOBSERVED};
use serde::{Deserialize, Serialize};

use crate::common::{mean_all, neg_log, negative_mask, positive_mask, LossContext, MultiLabelLoss};
use crate::em::negative_entropy;
use crate::error::{check_range, LossError};

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
    /// Epochs of the run.
    #[config(default = 10)]
    pub num_epochs: usize,
}

impl EmAplLossConfig {
    /// Builds the loss.
    ///
    /// # Errors
    /// Negative weights, `neg_proportion` outside [0, 1], or `warmup_epoch >= num_epochs`.
    pub fn init(&self) -> crate::Result<EmAplLoss> {
        check_range("em-apl", "alpha", self.alpha, 0.0, f64::MAX, ">= 0")?;
        check_range("em-apl", "beta", self.beta, 0.0, f64::MAX, ">= 0")?;
        check_range(
            "em-apl",
            "neg_proportion",
            self.neg_proportion,
            0.0,
            1.0,
            "in [0, 1]",
        )?;
        if self.warmup_epoch >= self.num_epochs {
            return Err(LossError::OutOfRange {
                loss: "em-apl",
                name: "warmup_epoch",
                expected: "below num_epochs",
                value: self.warmup_epoch.to_string(),
            });
        }
        Ok(EmAplLoss {
            config: self.clone(),
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
    state: AplState,
}

impl EmAplLoss {
    /// The current pseudo-labels.
    pub fn apl_state(&self) -> &AplState {
        &self.state
    }

    /// Per-element loss `[batch, n_classes]` for the batch's dataset rows.
    ///
    /// # Panics
    /// When `sample_indices` does not have one entry per batch row.
    pub fn forward_elementwise<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        sample_indices: &[usize],
    ) -> Tensor<B, 2> {
        let [n, c] = logits.dims();
        assert_eq!(
            sample_indices.len(),
            n,
            "em-apl needs the dataset row of each of the {n} batch rows"
        );
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
        let p = sigmoid(logits);
        let log_p = neg_log(p.clone());
        let pseudo_term = (soft.clone().mul(log_p.clone())
            + soft
                .neg()
                .add_scalar(1.0)
                .mul(neg_log(p.clone().neg().add_scalar(1.0))))
        .mul_scalar(self.config.beta);
        negative_entropy(p, self.config.alpha)
            .mask_where(pseudo, pseudo_term)
            .mask_where(positive_mask(&targets), log_p)
    }

    /// One pseudo-labelling round after (1-based) `epoch`, from the model's probabilities on the
    /// whole training set (`[n_train, n_classes]`, row-major, in dataset row order) and the
    /// training set's observed labels. Returns how many entries were labelled.
    ///
    /// # Errors
    /// When the probabilities do not fit the label matrix or hold NaN.
    pub fn pseudo_label_round(
        &mut self,
        epoch: usize,
        probabilities: &[f32],
        observed: &LabelMatrix,
    ) -> crate::Result<usize> {
        let (n, c) = (observed.n_samples(), observed.n_classes());
        if probabilities.len() != n * c {
            return Err(LossError::Config {
                loss: "em-apl",
                message: format!("{} probabilities for {n} x {c} labels", probabilities.len()),
            });
        }
        if probabilities.iter().any(|p| p.is_nan()) {
            return Err(LossError::Config {
                loss: "em-apl",
                message: "NaN probability in the pseudo-labelling round".into(),
            });
        }
        if epoch < self.config.warmup_epoch {
            return Ok(0);
        }
        if self.state.unlabel_num.is_empty() {
            self.state.unlabel_num = (0..c)
                .map(|j| (0..n).filter(|&i| observed.row(i)[j] == UNOBSERVED).count())
                .collect();
        }
        let rounds = (self.config.num_epochs - self.config.warmup_epoch) as f64;
        let mut labelled = vec![false; n * c];
        for (&row, entries) in &self.state.pseudo_negatives {
            for &(j, _) in entries {
                labelled[row * c + j] = true;
            }
        }
        let mut assigned = 0;
        let mut candidates = Vec::with_capacity(n);
        for j in 0..c {
            let quota =
                (self.config.neg_proportion * self.state.unlabel_num[j] as f64 / rounds) as usize;
            candidates.clear();
            candidates.extend(
                (0..n).filter(|&i| observed.row(i)[j] == UNOBSERVED && !labelled[i * c + j]),
            );
            candidates.sort_by(|&a, &b| {
                probabilities[a * c + j]
                    .total_cmp(&probabilities[b * c + j])
                    .then(a.cmp(&b))
            });
            for &i in candidates.iter().take(quota) {
                self.state
                    .pseudo_negatives
                    .entry(i)
                    .or_default()
                    .push((j, probabilities[i * c + j]));
                assigned += 1;
            }
        }
        Ok(assigned)
    }
}

impl<B: Backend> MultiLabelLoss<B> for EmAplLoss {
    fn name(&self) -> &'static str {
        "em-apl"
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Tensor<B, 1> {
        mean_all(self.forward_elementwise(logits, targets, ctx.sample_indices))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).expect("state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> crate::Result<()> {
        self.state = serde_json::from_value(state.clone()).map_err(|e| LossError::State {
            loss: "em-apl",
            message: e.to_string(),
        })?;
        Ok(())
    }
}
