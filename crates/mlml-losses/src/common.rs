//! What every loss shares: the batch context, the lifecycle trait, the target convention, and
//! the elementwise building blocks of the reference code bases.

use mlml_ops::SigmoidBackend;
use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Bool, Tensor, TensorData};
use mlml_data::LabelMatrix;
use mlml_ops::log_sigmoid;
use serde::{Deserialize, Serialize};

use crate::error::{LossError, Result};

/// Whether a batch is trained on or only evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A training batch: its rows are rows of the training set, and a stateful loss may record
    /// what it will commit in [`MultiLabelLoss::on_optimizer_step`].
    Train,
    /// An evaluation batch (validation, test, prediction): its rows belong to another split, so
    /// no loss reads or writes training-row state for them.
    Eval,
}

/// What a loss may need beyond logits and targets: the 1-based epoch, the batch's dataset rows
/// and the phase. Built with [`LossContext::train`] or [`LossContext::eval`], which refuse epoch
/// 0 so that a 0-based loop cannot silently shift every schedule by one epoch.
#[derive(Clone, Copy, Debug)]
pub struct LossContext<'a> {
    epoch: usize,
    rows: &'a [usize],
    phase: Phase,
}

impl<'a> LossContext<'a> {
    /// A training batch in `epoch` (1-based) with the batch's rows in the training set.
    ///
    /// # Errors
    /// `epoch == 0`.
    pub fn train(epoch: usize, rows: &'a [usize]) -> Result<Self> {
        Self::with_phase(epoch, rows, Phase::Train)
    }

    /// An evaluation batch in `epoch` (1-based); `rows` are rows of the evaluated split.
    ///
    /// # Errors
    /// `epoch == 0`.
    pub fn eval(epoch: usize, rows: &'a [usize]) -> Result<Self> {
        Self::with_phase(epoch, rows, Phase::Eval)
    }

    fn with_phase(epoch: usize, rows: &'a [usize], phase: Phase) -> Result<Self> {
        if epoch == 0 {
            return Err(LossError::Epoch {
                message: "epochs are 1-based: the first epoch is 1, got 0".into(),
            });
        }
        Ok(Self { epoch, rows, phase })
    }

    /// The current epoch, **1-based**. Losses whose reference counts from 0 (SPLC) convert.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The dataset row of each batch row (keys the state of ROLE, LL-Cp and EM+APL).
    pub fn rows(&self) -> &'a [usize] {
        self.rows
    }

    /// Training or evaluation.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether this is a training batch.
    pub fn is_train(&self) -> bool {
        self.phase == Phase::Train
    }
}

/// The optimizer step a loss is told about: the learning rate of the model's step and the
/// gradient of any tensor of the step's backward pass.
///
/// The lookup is a closure so that the loss trait stays generic over any backend; a loop on an
/// autodiff backend builds it with [`gradient_lookup`].
pub struct OptimizerStep<'a, B: SigmoidBackend> {
    /// The model's learning rate for this step (a loss scales it by its own multiplier).
    pub lr: f64,
    /// The gradient of a tensor (a parameter value) in this step's backward pass, if it has one.
    pub gradient: &'a dyn Fn(&Tensor<B, 2>) -> Option<Tensor<B, 2>>,
}

/// The gradient lookup of [`OptimizerStep`] over burn's gradients of one backward pass.
pub fn gradient_lookup<B: AutodiffBackend>(
    grads: &B::Gradients,
) -> impl Fn(&Tensor<B, 2>) -> Option<Tensor<B, 2>> + '_ {
    move |tensor| tensor.grad(grads).map(Tensor::from_inner)
}

/// The end of a training epoch, as a loss is told about it.
#[derive(Clone, Copy, Debug)]
pub struct EpochEnd<'a> {
    /// The epoch that ended (1-based).
    pub epoch: usize,
    /// Eval-mode probabilities `sigmoid(logits)` of every training row, row-major
    /// `[n_train, n_classes]`, in training-set row order: given when the loss asked for them
    /// with [`MultiLabelLoss::wants_train_probabilities`], `None` otherwise.
    pub train_probabilities: Option<&'a [f32]>,
}

/// A trainable part of a loss beyond the model's parameters (ROLE's label estimator).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExtraTrainable {
    /// What it is, for logs (`role.estimator`).
    pub name: String,
    /// Number of trainable scalars.
    pub n_parameters: usize,
    /// Multiplier of the model's learning rate that it is optimised at.
    pub lr_multiplier: f64,
    /// How it is optimised, in words.
    pub optimizer: String,
}

/// One tensor of a loss's state, in f32, row-major.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// What a checkpoint must hold of a loss: small values as JSON, large ones as f32 tensors (the
/// checkpoint writer chooses their encoding).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossState {
    /// The loss's registry name (`""` for a stateless loss).
    pub loss: String,
    /// Small state (corrections, pseudo-labels, counters).
    pub values: serde_json::Value,
    /// Large state by name (ROLE's estimator and its Adam moments).
    pub tensors: BTreeMap<String, StateTensor>,
}

impl LossState {
    /// Whether there is nothing to restore.
    pub fn is_empty(&self) -> bool {
        self.values.is_null() && self.tensors.is_empty()
    }

    /// Checks that this state was written by the loss `name`.
    pub(crate) fn expect_loss(&self, name: &'static str) -> Result<()> {
        if self.loss == name {
            Ok(())
        } else {
            Err(LossError::State {
                loss: name,
                message: format!("the state was written by '{}'", self.loss),
            })
        }
    }
}

/// A multi-label loss on logits, with the lifecycle a training loop drives without knowing
/// which loss it has:
///
/// 1. construction from the loss's setup ([`crate::registry::LossSetup`]: epochs, the training
///    labels, seed, device);
/// 2. per batch, [`forward`](Self::forward) with a [`LossContext`] (1-based epoch, dataset rows,
///    train or eval), then the loop's backward pass;
/// 3. per optimizer step, [`on_optimizer_step`](Self::on_optimizer_step) with that step's
///    gradients: the loss updates its own trainable parts and commits what the batch decided
///    (LL-Cp's corrections);
/// 4. per epoch, [`after_epoch`](Self::after_epoch), with the training set's eval-mode
///    probabilities when [`wants_train_probabilities`](Self::wants_train_probabilities) asked
///    for them (EM+APL's pseudo-labelling round);
/// 5. [`state`](Self::state) / [`load_state`](Self::load_state) for checkpoints.
///
/// `targets` hold mlml's codes as floats: **1 observed positive, -1 observed negative, 0
/// unobserved** (see [`targets_from_labels`]). Each loss documents how it reads 0 and -1.
pub trait MultiLabelLoss<B: SigmoidBackend>: std::fmt::Debug + Send {
    /// The registry name (`hill`, `ll-ct`, ...).
    fn name(&self) -> &'static str;

    /// The scalar loss of a batch, reduced as the loss's reference code reduces it.
    ///
    /// # Shapes
    /// - logits: `[batch, n_classes]`
    /// - targets: `[batch, n_classes]`
    /// - output: `[1]`
    ///
    /// # Errors
    /// Logits and targets of different shapes, rows that do not fit the batch or the training
    /// set (for losses that key state by row), an epoch past the run's.
    fn forward(
        &mut self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 2>,
        ctx: &LossContext<'_>,
    ) -> Result<Tensor<B, 1>>;

    /// Called once per optimizer step, after the backward pass of its training batches, with
    /// the step's gradients.
    ///
    /// # Errors
    /// When the loss's own update fails (a missing gradient).
    fn on_optimizer_step(&mut self, step: &OptimizerStep<'_, B>) -> Result<()> {
        let _ = step;
        Ok(())
    }

    /// Whether [`after_epoch`](Self::after_epoch) of `epoch` needs the eval-mode probabilities
    /// of every training row (a full pass over the training set, so only when asked).
    fn wants_train_probabilities(&self, epoch: usize) -> bool {
        let _ = epoch;
        false
    }

    /// Called after each training epoch. Returns a line for the log when something happened.
    ///
    /// # Errors
    /// When asked-for probabilities are missing or do not fit the training set.
    fn after_epoch(&mut self, end: &EpochEnd<'_>) -> Result<Option<String>> {
        let _ = end;
        Ok(None)
    }

    /// Trainable parts beyond the model's parameters; the loss optimises them itself in
    /// [`on_optimizer_step`](Self::on_optimizer_step).
    fn extra_trainables(&self) -> Vec<ExtraTrainable> {
        Vec::new()
    }

    /// State to checkpoint (empty for stateless losses).
    fn state(&self) -> LossState {
        LossState::default()
    }

    /// Restores what [`MultiLabelLoss::state`] returned.
    ///
    /// # Errors
    /// When the state does not fit the loss.
    fn load_state(&mut self, state: &LossState) -> Result<()> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(LossError::State {
                loss: self.name(),
                message: format!("a stateless loss got state written by '{}'", state.loss),
            })
        }
    }
}

/// Logits and targets must have the same `[batch, n_classes]` shape.
pub(crate) fn check_shapes<B: SigmoidBackend>(
    loss: &'static str,
    logits: &Tensor<B, 2>,
    targets: &Tensor<B, 2>,
) -> Result<()> {
    let (l, t) = (logits.dims(), targets.dims());
    if l == t {
        Ok(())
    } else {
        Err(LossError::Shape {
            loss,
            message: format!(
                "logits are {} x {} but targets are {} x {}",
                l[0], l[1], t[0], t[1]
            ),
        })
    }
}

/// A stateful loss's check of a training batch: one dataset row per batch row, each a row of
/// the training set.
pub(crate) fn check_training_rows(
    loss: &'static str,
    rows: &[usize],
    batch: usize,
    n_train: usize,
) -> Result<()> {
    if rows.len() != batch {
        return Err(LossError::Shape {
            loss,
            message: format!(
                "needs the dataset row of each of the {batch} batch rows, got {} rows",
                rows.len()
            ),
        });
    }
    if let Some(&row) = rows.iter().find(|&&r| r >= n_train) {
        return Err(LossError::Shape {
            loss,
            message: format!("training row {row} is outside the {n_train}-row training set"),
        });
    }
    Ok(())
}

/// The target tensor of a batch: rows `rows` of `labels` as float codes (1, -1, 0).
///
/// # Panics
/// When a row index is out of range.
pub fn targets_from_labels<B: SigmoidBackend>(
    labels: &LabelMatrix,
    rows: &[usize],
    device: &B::Device,
) -> Tensor<B, 2> {
    let c = labels.n_classes();
    let mut values = Vec::with_capacity(rows.len() * c);
    for &r in rows {
        values.extend(labels.row(r).iter().map(|v| f32::from(*v)));
    }
    Tensor::from_data(TensorData::new(values, [rows.len(), c]), device)
}

/// Observed positives (code 1).
pub fn positive_mask<B: SigmoidBackend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(1.0)
}

/// Unobserved entries (code 0).
pub fn unobserved_mask<B: SigmoidBackend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(0.0)
}

/// Observed negatives (code -1).
pub fn negative_mask<B: SigmoidBackend>(targets: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    targets.clone().equal_elem(-1.0)
}

/// `-ln(x + 1e-5)`: the single-positive line's `neg_log`, epsilon inside the log (not a clamp,
/// not log-sigmoid: the values differ near saturation and the reference's are these).
pub(crate) fn neg_log<B: SigmoidBackend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    log_eps(x).neg()
}

/// `ln(x + 1e-5)`, [`neg_log`] before its negation. The losses built on the single-positive
/// line's logs reduce their negated elements and negate the scalar: negation is exact, so the
/// value is the same with one pass fewer per log.
pub(crate) fn log_eps<B: SigmoidBackend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.add_scalar(1e-5).log()
}

/// `ln(p + 1e-5)` where `positive`, `ln(1 - p + 1e-5)` elsewhere: the two logs of BCE as one
/// log of the selected argument (the same values, one log pass instead of two).
pub(crate) fn log_likelihood<B: SigmoidBackend>(
    p: Tensor<B, 2>,
    positive: Tensor<B, 2, Bool>,
) -> Tensor<B, 2> {
    log_eps(p.clone().neg().add_scalar(1.0).mask_where(positive, p))
}

/// PyTorch's `binary_cross_entropy_with_logits` per element with a 0/1 target:
/// `(1 - t) z - log_sigmoid(z)`, the stable form.
pub(crate) fn bce_with_logits<B: SigmoidBackend>(
    logits: Tensor<B, 2>,
    target: Tensor<B, 2>,
) -> Tensor<B, 2> {
    target.neg().add_scalar(1.0).mul(logits.clone()) - log_sigmoid(logits)
}

/// Where `mask` is false, replaces `x` by `fill` *before* an operation that is only meant for
/// the masked entries, so that neither its value nor its gradient can turn into NaN elsewhere
/// (`0 * inf`). The gradient to `x` through the unmasked entries is zero.
pub(crate) fn only_where<B: SigmoidBackend>(
    x: Tensor<B, 2>,
    mask: Tensor<B, 2, Bool>,
    fill: f32,
) -> Tensor<B, 2> {
    x.mask_fill(mask.bool_not(), fill)
}

/// Sum of all elements divided by `N * C`: the single-positive line's reduction.
pub(crate) fn mean_all<B: SigmoidBackend>(matrix: Tensor<B, 2>) -> Tensor<B, 1> {
    matrix.mean()
}

/// The hyperparameter `C` of a loss: the configured class count, or the batch's.
pub(crate) fn class_count(configured: Option<usize>, logits_dims: [usize; 2]) -> usize {
    configured.unwrap_or(logits_dims[1])
}
