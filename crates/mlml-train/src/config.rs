//! How a run trains: the `[training]` section of a run's config, checked before a run starts.

use mlml_losses::Preset;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::precision::Precision;

/// How the learning rate moves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// `lr` throughout.
    #[default]
    Constant,
    /// PyTorch's `OneCycleLR` with `max_lr = lr` and Adam's beta1 cycling 0.95 -> 0.85 ->
    /// 0.95, built for `epochs` epochs (the ASL recipe builds it for 80 and stops at
    /// `training.epochs`, 31 there).
    OneCycle {
        /// Epochs the schedule is built for (at least `training.epochs`).
        epochs: usize,
        /// Share of the steps spent warming up (ASL: 0.2).
        pct_start: f64,
    },
    /// Cosine annealing from `lr` to `min_lr` over the run's steps (`training.epochs` x steps
    /// per epoch), stepped after every batch as PyTorch's `CosineAnnealingLR(T_max = steps)`
    /// stepped per batch.
    Cosine {
        /// The learning rate the curve ends at.
        #[serde(default)]
        min_lr: f64,
    },
}

/// Which optimizer updates the weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// PyTorch's `Adam` (epsilon 1e-8; `weight_decay` is coupled L2 on >= 2-D parameters, as the
    /// ASL recipe's parameter groups).
    #[default]
    #[serde(rename = "adam")]
    Adam,
    /// PyTorch's `AdamW` (decoupled weight decay, on >= 2-D parameters).
    #[serde(rename = "adamw")]
    AdamW,
    /// PyTorch's `SGD` through burn's `Sgd`: `momentum` (no dampening), `nesterov`, and
    /// `weight_decay` as L2 on every parameter, as `torch.optim.SGD` with one group.
    #[serde(rename = "sgd")]
    Sgd,
}

/// How a run trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Registry name of the loss.
    pub loss: String,
    /// The loss's hyperparameters beyond its defaults and preset.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub loss_overrides: serde_json::Value,
    /// Per-dataset preset of the loss's dataset-dependent values.
    pub preset: Option<Preset>,
    /// Epochs (T).
    pub epochs: usize,
    /// Rows per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// The learning rate (the peak of a one-cycle schedule, the start of a cosine one).
    pub lr: f64,
    /// The head's learning rate is `lr * head_lr_mult` (the single-positive recipes: 10), for
    /// image models trained end to end.
    pub head_lr_mult: f64,
    /// Weight decay, as `optimizer` applies it.
    pub weight_decay: f64,
    /// SGD's momentum (default 0.9); only with `optimizer = "sgd"`.
    pub momentum: Option<f64>,
    /// SGD's Nesterov momentum; only with `optimizer = "sgd"`.
    pub nesterov: bool,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Decay of an exponential moving average of the weights (the ASL recipe: 0.9997); each
    /// epoch both the average and the raw weights are validated and the better one counts.
    pub ema_decay: Option<f64>,
    /// Epochs at the start with the image backbone frozen, only the head training (GR Loss's
    /// `linear_init`; its schedules take the same number, `loss_overrides.linear_init`).
    pub linear_init_epochs: usize,
    /// Stop when the validation mAP has not risen for this many epochs (`None`: run every
    /// epoch). Zhou et al. stop at the first epoch that does not improve: 1.
    pub patience: Option<usize>,
    /// Stop when the validation mAP falls more than this many points (mAP in percent) below
    /// the best so far (`None`: never): Large Loss Matters stops at 3, GR Loss at 2.
    pub stop_below_best: Option<f64>,
    /// Leave out each epoch's last batch when it is short (PyTorch's `drop_last`; Cole et
    /// al.'s loaders). Set from the run config's `data.drop_last`.
    #[serde(skip)]
    pub drop_last: bool,
    /// The linear phase of `model.mode = "linear-init"` (Cole et al.'s fixed hyperparameters
    /// for AN-LS and ROLE are filled in by the run config; other losses must give them).
    pub linear_phase: Option<LinearPhase>,
    /// Keep the loss's state of the best epoch beside the last one (the linear phase of a
    /// `linear-init` run hands ROLE's best-epoch estimate on).
    #[serde(skip)]
    pub keep_best_loss_state: bool,
    /// Seed of the initialisation, the shuffling, the augmentation and the loss's own
    /// randomness.
    pub seed: u64,
    /// Devices to train on, data-parallel, as `mlml train --devices` names them (`["cuda:0",
    /// "cuda:1"]`, `["cpu", "cpu"]`); empty: the one `--device`. `batch_size` stays the whole
    /// batch. The `mlml` binary reads it; the library takes devices as values
    /// ([`crate::train_parallel`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// The float type the training convolutions compute in: `"f32"` (default), `"f16"` (with
    /// dynamic loss scaling) or `"bf16"`, with f32 weights, optimizer state, BatchNorm and loss
    /// as PyTorch's AMP; on the GPU backends only.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            loss: "an".into(),
            loss_overrides: serde_json::Value::Null,
            preset: None,
            epochs: 20,
            batch_size: 64,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            head_lr_mult: 1.0,
            weight_decay: 0.0,
            momentum: None,
            nesterov: false,
            schedule: Schedule::Constant,
            ema_decay: None,
            patience: None,
            stop_below_best: None,
            drop_last: false,
            linear_phase: None,
            keep_best_loss_state: false,
            linear_init_epochs: 0,
            seed: 0,
            devices: Vec::new(),
            precision: Precision::F32,
        }
    }
}

/// How the linear phase of a `linear-init` run trains: Adam, no schedule, no weight decay,
/// the head alone on the frozen backbone's features (Cole et al.'s `linear_init`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearPhase {
    /// Epochs (Cole et al.'s linear phase: 25).
    #[serde(default = "linear_phase_epochs")]
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Rows per batch.
    pub batch_size: usize,
}

fn linear_phase_epochs() -> usize {
    25
}

impl LinearPhase {
    /// The training config of the linear phase of a run trained with `config`: its loss,
    /// preset, overrides and seed; Adam at the phase's rate, nothing else; the best epoch's loss
    /// state kept for the hand-over.
    pub fn training(&self, config: &TrainingConfig) -> TrainingConfig {
        TrainingConfig {
            loss: config.loss.clone(),
            loss_overrides: config.loss_overrides.clone(),
            preset: config.preset,
            seed: config.seed,
            epochs: self.epochs,
            lr: self.lr,
            batch_size: self.batch_size,
            keep_best_loss_state: true,
            ..TrainingConfig::default()
        }
    }
}

impl TrainingConfig {
    /// Checks the settings against each other; [`train`](crate::train) calls it first.
    ///
    /// # Errors
    /// The first setting out of range or at odds with another, named by its config key.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 || self.lr.is_nan() || self.lr <= 0.0 {
            return Err(TrainError::Config(format!(
                "epochs ({}), batch_size ({}) and lr ({}) must be positive",
                self.epochs, self.batch_size, self.lr
            )));
        }
        if self.linear_init_epochs >= self.epochs {
            return Err(TrainError::Config(format!(
                "training.linear_init_epochs ({}) must be below training.epochs ({})",
                self.linear_init_epochs, self.epochs
            )));
        }
        if let Some(n) = self
            .loss_overrides
            .get("linear_init")
            .and_then(|v| v.as_u64())
        {
            if n as usize != self.linear_init_epochs {
                return Err(TrainError::Config(format!(
                    "training.loss_overrides.linear_init is {n} but training.linear_init_epochs is {}: the loss's schedule and the frozen epochs must agree",
                    self.linear_init_epochs
                )));
            }
        }
        if self.patience == Some(0) {
            return Err(TrainError::Config(
                "training.patience must be at least 1 (leave it out to run every epoch)".into(),
            ));
        }
        if let Some(points) = self.stop_below_best {
            if !(points.is_finite() && points >= 0.0) {
                return Err(TrainError::Config(format!(
                    "training.stop_below_best must be a number of mAP points of at least 0, got {points}"
                )));
            }
        }
        if let Some(decay) = self.ema_decay {
            if !(0.0..1.0).contains(&decay) {
                return Err(TrainError::Config(format!(
                    "training.ema_decay must be in [0, 1), got {decay}"
                )));
            }
        }
        match self.schedule {
            Schedule::Constant => {}
            Schedule::OneCycle { epochs, pct_start } => {
                if epochs < self.epochs || !(pct_start > 0.0 && pct_start < 1.0) {
                    return Err(TrainError::Config(format!(
                        "training.schedule.one-cycle: epochs ({epochs}) must be at least training.epochs ({}) and pct_start ({pct_start}) in (0, 1)",
                        self.epochs
                    )));
                }
                if self.optimizer == OptimizerKind::Sgd {
                    return Err(TrainError::Config(
                        "training.schedule.one-cycle cycles Adam's beta1 as PyTorch's OneCycleLR does; with optimizer = \"sgd\" it would have to cycle SGD's momentum, which burn's Sgd fixes when it is built: use adam or adamw, or the cosine schedule".into(),
                    ));
                }
            }
            Schedule::Cosine { min_lr } => {
                if !(0.0..=self.lr).contains(&min_lr) {
                    return Err(TrainError::Config(format!(
                        "training.schedule.cosine.min_lr ({min_lr}) must be in [0, training.lr = {}]",
                        self.lr
                    )));
                }
            }
        }
        if !(self.head_lr_mult.is_finite() && self.head_lr_mult > 0.0) {
            return Err(TrainError::Config(format!(
                "training.head_lr_mult must be positive, got {}",
                self.head_lr_mult
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::Config(format!(
                "training.weight_decay must be at least 0, got {}",
                self.weight_decay
            )));
        }
        if self.optimizer != OptimizerKind::Sgd && (self.momentum.is_some() || self.nesterov) {
            return Err(TrainError::Config(
                "training.momentum and training.nesterov are SGD's: set training.optimizer = \"sgd\" or leave them out (Adam's momentum is its beta1)".into(),
            ));
        }
        if let Some(momentum) = self.momentum {
            if !(0.0..1.0).contains(&momentum) {
                return Err(TrainError::Config(format!(
                    "training.momentum must be in [0, 1), got {momentum}"
                )));
            }
        }
        if self.nesterov && self.momentum == Some(0.0) {
            return Err(TrainError::Config(
                "training.nesterov needs a momentum above 0".into(),
            ));
        }
        Ok(())
    }
}
