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
//! The estimator is a burn [`Module`] ([`LabelEstimator`]) that the loss trains itself: at each
//! [`MultiLabelLoss::on_optimizer_step`] it takes the step's gradient of `G` and applies burn's
//! Adam (betas 0.9 / 0.999, epsilon 1e-8 as PyTorch, no weight decay) at `lr_mult = 10` times
//! the model's learning rate, densely over all rows as the reference does (rows outside the
//! batch get zero gradient but their moments still decay). `G` and its Adam moments are in
//! [`MultiLabelLoss::state`], so a checkpoint holds them. Its initialisation follows
//! `LabelEstimator.__init__`, seeded here (the reference's torch RNG is not).
//!
//! An evaluation batch has no estimate (its rows are not training rows): it is scored with the
//! classifier's part that needs none, `[y = 1] (-ln(p + 1e-5))` averaged over N C plus the
//! classifier's half of `R`, i.e. EPR's form.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::{Int, Tensor, TensorData};
use mlml_data::{LabelMatrix, NEGATIVE, POSITIVE};
use mlml_ops::sigmoid;
use mlml_ops::SigmoidBackend;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{
    check_shapes, check_training_rows, class_count, mean_all, neg_log, positive_mask,
    ExtraTrainable, LossContext, LossState, MultiLabelLoss, OptimizerStep, StateTensor,
};
use crate::epr::{expected_positive_penalty, expected_positives};
use crate::error::{check_range, LossError};
use crate::registration::{agree_with_run, Registered};

/// The label estimate `G` of every training row, as logits.
#[derive(Module, Debug)]
pub struct LabelEstimator<B: SigmoidBackend> {
    /// `[n_train, n_classes]` logits.
    pub logits: Param<Tensor<B, 2>>,
}

/// `logit(0.6)`: the half-width of the uniform initialisation of unobserved entries.
const Q0: f64 = 0.405_465_108_108_164_4;

fn inverse_sigmoid(p: f64) -> f64 {
    let p = p.clamp(1e-5, 1.0 - 1e-5);
    (p / (1.0 - p)).ln()
}

impl<B: SigmoidBackend> LabelEstimator<B> {
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
    pub fn init<B: SigmoidBackend>(
        &self,
        estimator: LabelEstimator<B>,
    ) -> crate::Result<RoleLoss<B>> {
        check_range(
            NAME,
            "expected_num_pos",
            self.expected_num_pos,
            0.0,
            f64::MAX,
            ">= 0",
        )?;
        check_range(NAME, "lr_mult", self.lr_mult, 0.0, f64::MAX, ">= 0")?;
        Ok(RoleLoss {
            config: self.clone(),
            estimator,
            optimizer: AdamConfig::new().with_epsilon(1e-8).build(),
            moments: None,
        })
    }
}

/// ROLE; see the module docs.
pub struct RoleLoss<B: SigmoidBackend> {
    config: RoleLossConfig,
    /// The label estimate, which the loss optimises itself.
    pub estimator: LabelEstimator<B>,
    optimizer: Adam,
    moments: Option<AdamState<B, 2>>,
}

impl<B: SigmoidBackend> std::fmt::Debug for RoleLoss<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleLoss")
            .field("config", &self.config)
            .field("estimator", &self.estimator.logits.val().dims())
            .field(
                "adam_steps",
                &self.moments.as_ref().map(|m| m.momentum.time),
            )
            .finish()
    }
}

impl<B: SigmoidBackend> RoleLoss<B> {
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

impl<B: SigmoidBackend> RoleLoss<B> {
    /// Adam steps taken on the estimator so far.
    pub fn estimator_steps(&self) -> usize {
        self.moments.as_ref().map_or(0, |m| m.momentum.time)
    }

    fn n_train(&self) -> usize {
        self.estimator.logits.val().dims()[0]
    }
}

fn state_tensor<B: SigmoidBackend>(tensor: &Tensor<B, 2>) -> StateTensor {
    StateTensor {
        shape: tensor.dims().to_vec(),
        values: tensor
            .to_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 data"),
    }
}

fn restore_tensor<B: SigmoidBackend>(
    state: &LossState,
    key: &str,
    shape: [usize; 2],
    device: &B::Device,
) -> crate::Result<Tensor<B, 2>> {
    let tensor = state.tensors.get(key).ok_or_else(|| LossError::State {
        loss: NAME,
        message: format!("no tensor '{key}'"),
    })?;
    if tensor.shape != shape || tensor.values.len() != shape[0] * shape[1] {
        return Err(LossError::State {
            loss: NAME,
            message: format!(
                "'{key}' is {:?} with {} values, the estimator is {shape:?}",
                tensor.shape,
                tensor.values.len()
            ),
        });
    }
    Ok(Tensor::from_data(
        TensorData::new(tensor.values.clone(), shape),
        device,
    ))
}

impl<B: SigmoidBackend> MultiLabelLoss<B> for RoleLoss<B> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> crate::Result<Tensor<B, 1>> {
        check_shapes(NAME, &logits, &targets)?;
        if !ctx.is_train() {
            let c = class_count(self.config.n_classes, logits.dims());
            let p = sigmoid(logits);
            let observed =
                neg_log(p.clone()).mask_where(positive_mask(&targets).bool_not(), p.zeros_like());
            let penalty = expected_positive_penalty(p, self.config.expected_num_pos, c);
            return Ok(mean_all(observed.mul_scalar(0.5)) + penalty.mul_scalar(0.5));
        }
        check_training_rows(NAME, ctx.rows(), logits.dims()[0], self.n_train())?;
        let (matrix, penalty) = self.forward_parts(logits, targets, ctx.rows());
        Ok(mean_all(matrix) + penalty)
    }

    fn on_optimizer_step(&mut self, step: &OptimizerStep<'_, B>) -> crate::Result<()> {
        let current = self.estimator.logits.val();
        // As PyTorch's Adam, a parameter without a gradient in this step is not updated.
        let Some(grad) = (step.gradient)(&current) else {
            return Ok(());
        };
        let lr = step.lr * self.config.lr_mult;
        let (updated, moments) =
            self.optimizer
                .step(lr, current.detach(), grad.detach(), self.moments.take());
        self.moments = moments;
        let id = self.estimator.logits.id;
        self.estimator.logits = Param::initialized(id, updated.detach().require_grad());
        Ok(())
    }

    fn extra_trainables(&self) -> Vec<ExtraTrainable> {
        let [n, c] = self.estimator.logits.val().dims();
        vec![ExtraTrainable {
            name: format!("{NAME}.estimator"),
            n_parameters: n * c,
            lr_multiplier: self.config.lr_mult,
            optimizer: "Adam (betas 0.9, 0.999; eps 1e-8; no weight decay), dense over all rows"
                .into(),
        }]
    }

    fn state(&self) -> LossState {
        let mut tensors = std::collections::BTreeMap::new();
        tensors.insert(
            "estimator".to_string(),
            state_tensor(&self.estimator.logits.val()),
        );
        if let Some(moments) = &self.moments {
            tensors.insert(
                "adam.moment_1".to_string(),
                state_tensor(&moments.momentum.moment_1),
            );
            tensors.insert(
                "adam.moment_2".to_string(),
                state_tensor(&moments.momentum.moment_2),
            );
        }
        LossState {
            loss: NAME.to_string(),
            values: serde_json::json!({ "adam_steps": self.estimator_steps() }),
            tensors,
        }
    }

    fn load_state(&mut self, state: &LossState) -> crate::Result<()> {
        state.expect_loss(NAME)?;
        let current = self.estimator.logits.val();
        let (shape, device) = (current.dims(), current.device());
        let estimator = restore_tensor::<B>(state, "estimator", shape, &device)?;
        let steps = state.values["adam_steps"]
            .as_u64()
            .ok_or_else(|| LossError::State {
                loss: NAME,
                message: "no 'adam_steps' count".into(),
            })? as usize;
        self.moments = if steps == 0 {
            None
        } else {
            let moment_1 = restore_tensor::<B>(state, "adam.moment_1", shape, &device)?;
            let moment_2 = restore_tensor::<B>(state, "adam.moment_2", shape, &device)?;
            Some(AdamState::new(AdaptiveMomentumState::new(
                steps, moment_1, moment_2,
            )))
        };
        let id = self.estimator.logits.id;
        self.estimator.logits = Param::initialized(id, estimator.require_grad());
        Ok(())
    }
}

const NAME: &str = <Role as Registered>::INFO.name;

/// `role`.
pub(crate) struct Role;

crate::registration::register!(
    Role,
    config: RoleLossConfig = RoleLossConfig::new(),
    info: {
        name: "role",
        summary: "regularised online label estimation (Cole et al.)",
        reduction: "mean + R",
        needs: "training rows, classes, estimator trained at each optimizer step, state"
    },
    preset: |preset| vec![expected_positives(preset)],
    build: |config, setup| {
        let c = agree_with_run(NAME, "n_classes", config.n_classes, setup.n_classes(), "classes")?;
        let estimator = LabelEstimator::init(setup.train_labels, setup.seed, &setup.device);
        config.with_n_classes(Some(c)).init(estimator)?
    },
);

/// The state a LinearInit run's end-to-end phase starts ROLE from, given ROLE's state at the
/// best epoch of the linear phase (Cole et al.'s hand-over): the estimator
/// `G = inverse_sigmoid(sigmoid(G_best))` with the estimate clamped to `[1e-5, 1 - 1e-5]`, as
/// their `LabelEstimator` does with an estimate passed in, and fresh Adam moments. `None` for the
/// state of any other loss (nothing is handed over).
pub fn linear_init_state(best: &LossState) -> Option<LossState> {
    if best.loss != NAME {
        return None;
    }
    let estimator = best.tensors.get("estimator")?;
    let values = estimator
        .values
        .iter()
        .map(|&g| {
            let p = (1.0 / (1.0 + (-g).exp())).clamp(1e-5f32, 1.0 - 1e-5);
            (p / (1.0 - p)).ln()
        })
        .collect();
    Some(LossState {
        loss: NAME.to_string(),
        values: serde_json::json!({ "adam_steps": 0 }),
        tensors: [(
            "estimator".to_string(),
            StateTensor {
                shape: estimator.shape.clone(),
                values,
            },
        )]
        .into(),
    })
}

#[cfg(test)]
mod linear_init_tests {
    use super::*;

    #[test]
    fn the_hand_over_keeps_the_estimate_clamped_and_drops_the_moments() {
        let best = LossState {
            loss: NAME.to_string(),
            values: serde_json::json!({ "adam_steps": 120 }),
            tensors: [
                (
                    "estimator".to_string(),
                    StateTensor {
                        shape: vec![1, 4],
                        values: vec![0.3, -2.0, 40.0, -40.0],
                    },
                ),
                (
                    "adam.moment_1".to_string(),
                    StateTensor {
                        shape: vec![1, 4],
                        values: vec![1.0; 4],
                    },
                ),
            ]
            .into(),
        };
        let start = linear_init_state(&best).unwrap();
        assert_eq!(start.values["adam_steps"], 0);
        assert_eq!(start.tensors.len(), 1);
        let g = &start.tensors["estimator"].values;
        assert!(
            (g[0] - 0.3).abs() < 1e-5 && (g[1] + 2.0).abs() < 1e-5,
            "{g:?}"
        );
        // logit(1 - 1e-5) = ln(99999) = 11.5129: the estimate is clamped, not the logits.
        assert!((g[2] - 11.5129).abs() < 2e-2, "{g:?}");
        assert!((g[3] + 11.5129).abs() < 2e-2, "{g:?}");
        let other = LossState {
            loss: "ll-cp".into(),
            ..best
        };
        assert!(linear_init_state(&other).is_none());
    }
}

#[cfg(test)]
mod vector_tests {
    use super::{LabelEstimator, RoleLossConfig};
    use crate::vectors::{assert_gradient, indices, number, tensor, value_tolerance, values};
    use mlml_testing::assert_close;

    /// The loss, its regulariser, and both gradients: the logits' and the estimator's (dense
    /// over all rows of the estimator, as the reference's).
    #[test]
    fn matches_both_gradients() {
        let v = load_role();
        let logits = tensor(&v["inputs"]["logits"]);
        let targets = tensor(&v["inputs"]["observed_labels"]);
        let rows = indices(&v["inputs"]["batch_indices"]);
        for case in v["cases"].as_array().unwrap() {
            let h = &case["hyperparameters"];
            let estimator = LabelEstimator::from_logits(
                tensor(&v["inputs"]["estimator_logits"]).require_grad(),
            );
            let role = RoleLossConfig::new()
                .with_expected_num_pos(number(h, "expected_num_pos"))
                .with_n_classes(Some(h["num_classes"].as_u64().unwrap() as usize))
                .init(estimator)
                .unwrap();
            let block = &case["float32"];
            let z = logits.clone().require_grad();
            let (matrix_part, penalty) = role.forward_parts(z.clone(), targets.clone(), &rows);
            assert_close(
                "role: reg_loss",
                penalty.clone().into_scalar() as f64,
                number(block, "reg_loss"),
                value_tolerance(),
            );
            let loss = matrix_part.mean() + penalty;
            let grads = loss.backward();
            assert_close(
                "role: loss",
                loss.into_scalar() as f64,
                number(block, "loss"),
                value_tolerance(),
            );
            let got = values(z.grad(&grads).unwrap());
            assert_gradient(
                &format!("role {h}: grad_logits"),
                &got,
                block,
                "grad_logits",
            );
            let got = values(role.estimator.logits.val().grad(&grads).unwrap());
            assert_gradient(
                &format!("role {h}: grad_estimator_logits"),
                &got,
                block,
                "grad_estimator_logits",
            );
        }
    }

    fn load_role() -> serde_json::Value {
        crate::vectors::load("role.json")
    }
}
