//! Regularised online label estimation (ROLE). Cole et al., CVPR 2021, arXiv:2106.09708.
//! Reference: `elijahcole/single-positive-multi-label` `losses.py` `loss_role` and `models.py`
//! `LabelEstimator`.
//!
//! A learned matrix `G` `[n_train, C]` of logits holds a label estimate `q = sigmoid(G[idx])`
//! for every training row. With `sg` the stop-gradient:
//! ```text
//! classifier side: 0.5 [y = 1] (-ln(p + 1e-5)) + 0.5 [ sg(q)(-ln(p + 1e-5)) + (1 - sg(q))(-ln(1 - p + 1e-5)) ]
//! estimator side:  0.5 [y = 1] (-ln(q + 1e-5)) + 0.5 [ sg(p)(-ln(q + 1e-5)) + (1 - sg(p))(-ln(1 - q + 1e-5)) ]
//! R = 0.5 [ (mean_n sum_c p - k)^2 + (mean_n sum_c q - k)^2 ] / C^2
//! loss = sum(both sides) / (N C) + R
//! ```
//! The estimator is a burn [`Module`] ([`LabelEstimator`]): optimise it with the model, at
//! `lr_mult = 10` times the learning rate, with a dense Adam over all rows as the reference
//! does (rows outside the batch get zero gradient but their moments still decay), and save it
//! with the model's record. Its initialisation follows `LabelEstimator.__init__`, seeded here
//! (the reference's torch RNG is not).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use mlml_data::{LabelMatrix, NEGATIVE, POSITIVE};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{class_count, mean_all, neg_log, positive_mask, LossContext, MultiLabelLoss};
use crate::epr::expected_positive_penalty;
use crate::error::check_range;

/// The label estimate `G` of every training row, as logits.
#[derive(Module, Debug)]
pub struct LabelEstimator<B: Backend> {
    /// `[n_train, n_classes]` logits.
    pub logits: Param<Tensor<B, 2>>,
}

/// `logit(0.6)`: the half-width of the uniform initialisation of unobserved entries.
const Q0: f64 = 0.405_465_108_108_164_4;

fn inverse_sigmoid(p: f64) -> f64 {
    let p = p.clamp(1e-5, 1.0 - 1e-5);
    (p / (1.0 - p)).ln()
}

impl<B: Backend> LabelEstimator<B> {
    /// Initialises like the reference: observed positives at `logit(0.995)`, observed negatives at
    /// `logit(0.005)`, unobserved entries uniform in `(-logit(0.6), logit(0.6))` from a ChaCha8
    /// generator seeded with `seed`.
    pub fn init(observed: &LabelMatrix, seed: u64, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = observed
            .values()
            .iter()
            .map(|v| match *v {
                POSITIVE => inverse_sigmoid(0.995) as f32,
                NEGATIVE => inverse_sigmoid(0.005) as f32,
                _ => {
                    // 24 random bits: a uniform f32 in [0, 1).
                    let u = (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64;
                    (Q0 * (2.0 * u - 1.0)) as f32
                }
            })
            .collect();
        let shape = [observed.n_samples(), observed.n_classes()];
        Self::from_logits(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Wraps given logits (e.g. `inverse_sigmoid` of an estimate handed over from a linear probe).
    pub fn from_logits(logits: Tensor<B, 2>) -> Self {
        Self {
            logits: Param::from_tensor(logits),
        }
    }

    /// The estimate logits of some rows `[rows, n_classes]`.
    pub fn rows(&self, sample_indices: &[usize]) -> Tensor<B, 2> {
        let device = self.logits.device();
        let idx: Vec<i64> = sample_indices.iter().map(|&i| i as i64).collect();
        let idx =
            Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [sample_indices.len()]), &device);
        self.logits.val().select(0, idx)
    }
}

/// Hyperparameters of [`RoleLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct RoleLossConfig {
    /// Expected number of positives per image (k_hat, as EPR).
    #[config(default = 1.5)]
    pub expected_num_pos: f64,
    /// Number of classes C; `None` takes the batch's.
    pub n_classes: Option<usize>,
    /// Learning-rate multiplier of the estimator (for the training loop).
    #[config(default = 10.0)]
    pub lr_mult: f64,
}

impl RoleLossConfig {
    /// Builds the loss around an estimator.
    ///
    /// # Errors
    /// Negative `expected_num_pos` or `lr_mult`.
    pub fn init<B: Backend>(&self, estimator: LabelEstimator<B>) -> crate::Result<RoleLoss<B>> {
        check_range(
            "role",
            "expected_num_pos",
            self.expected_num_pos,
            0.0,
            f64::MAX,
            ">= 0",
        )?;
        check_range("role", "lr_mult", self.lr_mult, 0.0, f64::MAX, ">= 0")?;
        Ok(RoleLoss {
            config: self.clone(),
            estimator,
        })
    }
}

/// ROLE; see the module docs.
#[derive(Debug)]
pub struct RoleLoss<B: Backend> {
    config: RoleLossConfig,
    /// The label estimate, a module to optimise and save.
    pub estimator: LabelEstimator<B>,
}

impl<B: Backend> RoleLoss<B> {
    /// The two parts: the per-element matrix of both sides `[batch, n_classes]` and `R`.
    pub fn forward_parts(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        sample_indices: &[usize],
    ) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let c = class_count(self.config.n_classes, logits.dims());
        let p = sigmoid(logits);
        let q = sigmoid(self.estimator.rows(sample_indices));
        let positive = positive_mask(&targets);
        let zeros = p.zeros_like();
        let side = |x: Tensor<B, 2>, partner: Tensor<B, 2>| {
            let log_x = neg_log(x.clone());
            let observed = zeros.clone().mask_where(positive.clone(), log_x.clone());
            let cross = partner.clone().mul(log_x)
                + partner
                    .neg()
                    .add_scalar(1.0)
                    .mul(neg_log(x.neg().add_scalar(1.0)));
            (observed + cross).mul_scalar(0.5)
        };
        let matrix = side(p.clone(), q.clone().detach()) + side(q.clone(), p.clone().detach());
        let k = self.config.expected_num_pos;
        let penalty = (expected_positive_penalty(p, k, c) + expected_positive_penalty(q, k, c))
            .mul_scalar(0.5);
        (matrix, penalty)
    }
}

impl<B: Backend> MultiLabelLoss<B> for RoleLoss<B> {
    fn name(&self) -> &'static str {
        "role"
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Tensor<B, 1> {
        let (matrix, penalty) = self.forward_parts(logits, targets, ctx.sample_indices);
        mean_all(matrix) + penalty
    }
}
