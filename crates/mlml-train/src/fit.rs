//! The training loop: any [`Source`], any model of [`ModelConfig`], any registered loss. It
//! drives the loss lifecycle, validates every epoch, selects the best epoch by validation mAP,
//! writes an atomic checkpoint after every epoch and resumes from one.
//!
//! Gradients are produced and applied in one place ([`step`]), where a data-parallel
//! all-reduce would go.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::TrainBackend;
use burn::module::Param;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use mlml_data::formats::write_atomic;
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{
    gradient_lookup, targets_from_labels, EpochEnd, LossContext, LossState, MultiLabelLoss,
    OptimizerStep, Preset, StateTensor,
};
use mlml_metrics::{mean_average_precision, ApDefinition, MapOptions};
use mlml_models::ConvBackend;
use serde::{Deserialize, Serialize};

use crate::ema::{detached_copy, ModelEma};
use crate::error::{Result, TrainError};
use crate::model::{Classifier, ModelConfig};
use crate::optim::{torch_sgd, TorchAdam, TorchAdamConfig};
use crate::schedule::{OneCycle, OneCycleConfig};
use crate::source::{Pass, Source};

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
    /// Checks the settings against each other; [`train`] calls it first.
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

/// What a display sees of a run as it goes.
pub trait Observer {
    /// After optimizer step `batch` (1-based) of `batches` in `epoch`, on `samples` rows.
    fn batch_done(&mut self, epoch: usize, batch: usize, batches: usize, samples: usize) {
        let _ = (epoch, batch, batches, samples);
    }

    /// After an epoch's validation and checkpoint.
    fn epoch_done(&mut self, record: &EpochRecord) {
        let _ = record;
    }

    /// After [`Self::epoch_done`], the whole progress so far (every epoch of a resumed run
    /// too): what a display writes per-epoch files from.
    fn progress_recorded(&mut self, progress: &Progress) {
        let _ = progress;
    }
}

/// Sees nothing.
impl Observer for () {}

impl<F: FnMut(&EpochRecord)> Observer for F {
    fn epoch_done(&mut self, record: &EpochRecord) {
        self(record);
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    #[serde(with = "crate::finite")]
    pub train_loss: f64,
    /// Validation mAP (%), sklearn's AP (the single-positive line's definition), of the
    /// weights that count this epoch (the EMA when it scores higher).
    #[serde(with = "crate::finite")]
    pub val_map: f64,
    /// Validation mAP (%), the ASL code's ranked AP, of the same weights.
    #[serde(with = "crate::finite")]
    pub val_map_ranked: f64,
    /// The learning rate of the epoch's last step.
    #[serde(default, with = "crate::finite")]
    pub lr: f64,
    /// Validation mAP (%, sklearn AP) of the weight average, when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::finite::option"
    )]
    pub val_map_ema: Option<f64>,
    /// What the loss reported after the epoch (EM+APL's round).
    pub loss_note: Option<String>,
}

/// Where a run stands, written after every epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs done.
    pub epochs_done: usize,
    /// The epoch with the best validation mAP so far (0: none yet).
    pub best_epoch: usize,
    /// Its validation mAP.
    #[serde(with = "crate::finite")]
    pub best_val_map: f64,
    /// Whether the best model is the weight average of that epoch.
    #[serde(default)]
    pub best_is_ema: bool,
    /// Whether the run stopped early (`training.patience` or `training.stop_below_best`).
    #[serde(default)]
    pub stopped_early: bool,
    /// Why it stopped early, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Every finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// The loss's state after the last finished epoch.
    pub loss_state: LossState,
    /// The loss's state after the best epoch, with `training.keep_best_loss_state`.
    #[serde(default, skip_serializing_if = "LossState::is_empty")]
    pub best_loss_state: LossState,
}

/// What a run ends with.
#[derive(Debug)]
pub struct Run<B: Backend> {
    /// The model of the best validation epoch.
    pub best: Classifier<B>,
    /// The model after the last epoch.
    pub last: Classifier<B>,
    /// Per-epoch figures and the selection.
    pub progress: Progress,
    /// Epochs already done when this call started (0 unless it resumed a checkpoint).
    pub resumed_at: usize,
    /// Training samples per second in this call, steady state: each epoch's first two
    /// batches (start-up, pipeline warm-up) are left out.
    pub train_samples_per_second: f64,
}

/// The files of a run directory: one checkpoint file, written atomically, holds everything a
/// resume needs (so a crash can never pair one epoch's weights with another epoch's progress);
/// `progress.json` repeats its figures for people and scripts.
struct RunFiles {
    checkpoint: PathBuf,
    progress: PathBuf,
}

impl RunFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            checkpoint: dir.join("checkpoint.bin"),
            progress: dir.join("progress.json"),
        }
    }
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"MLMLCKP3";

/// `MAGIC`, then each part as a little-endian u64 length and its bytes.
fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = CHECKPOINT_MAGIC.to_vec();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn unpack(path: &Path, bytes: &[u8], count: usize) -> Result<Vec<Vec<u8>>> {
    let bad = |what: &str| checkpoint_error(path, format!("not an mlml checkpoint: {what}"));
    let mut rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC)
        .ok_or_else(|| bad("no magic (or one of another mlml version)"))?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_at_checked(8).ok_or_else(|| bad("truncated"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| bad("a part is too large"))?;
        let (part, tail) = tail.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        parts.push(part.to_vec());
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(parts)
}

type Recorder_ = BinBytesRecorder<FullPrecisionSettings>;

fn checkpoint_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A checkpoint file read back: the progress (with the loss's tensors) and the records of the
/// model, the optimizer, the best model and the weight average (empty without one), still
/// encoded.
struct CheckpointParts {
    progress: Progress,
    model: Vec<u8>,
    optimizer: Vec<u8>,
    best: Vec<u8>,
    ema: Vec<u8>,
}

fn read_checkpoint(path: &Path) -> Result<CheckpointParts> {
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e))?;
    let [text, model, optimizer, best, ema, tensors]: [Vec<u8>; 6] =
        unpack(path, &bytes, 6)?.try_into().expect("six parts");
    let mut progress: Progress =
        serde_json::from_slice(&text).map_err(|e| checkpoint_error(path, e))?;
    let mut all = decode_tensors(&tensors)
        .map_err(|e| checkpoint_error(path, format!("the loss's tensors: {e}")))?;
    let best_tensors = all.split_off(BEST_PREFIX);
    progress.loss_state.tensors = all;
    progress.best_loss_state.tensors = best_tensors
        .into_iter()
        .map(|(k, v)| (k[BEST_PREFIX.len()..].to_string(), v))
        .collect();
    Ok(CheckpointParts {
        progress,
        model,
        optimizer,
        best,
        ema,
    })
}

/// The progress with each loss tensor's values left out (its shape kept): what
/// `progress.json` and the checkpoint's JSON part hold. ROLE on COCO keeps about 16 M floats,
/// which go to the checkpoint's binary part instead.
fn without_tensor_values(progress: &Progress) -> Progress {
    let shapes_only = |state: &LossState| LossState {
        loss: state.loss.clone(),
        values: state.values.clone(),
        tensors: state
            .tensors
            .iter()
            .map(|(name, tensor)| {
                let shape = StateTensor {
                    shape: tensor.shape.clone(),
                    values: Vec::new(),
                };
                (name.clone(), shape)
            })
            .collect(),
    };
    Progress {
        loss_state: shapes_only(&progress.loss_state),
        best_loss_state: shapes_only(&progress.best_loss_state),
        ..progress.clone()
    }
}

/// The key prefix of the best epoch's loss tensors in a checkpoint's binary part (`~` sorts
/// after every name a loss gives its tensors).
const BEST_PREFIX: &str = "~best/";

/// The loss tensors a checkpoint stores: the last epoch's, and the best epoch's under
/// [`BEST_PREFIX`].
fn checkpoint_tensors(progress: &Progress) -> std::collections::BTreeMap<String, StateTensor> {
    let mut all = progress.loss_state.tensors.clone();
    for (name, tensor) in &progress.best_loss_state.tensors {
        all.insert(format!("{BEST_PREFIX}{name}"), tensor.clone());
    }
    all
}

/// The loss's tensors as bytes: per tensor its name, its shape and its f32 values, each
/// length a little-endian u64.
fn encode_tensors(tensors: &std::collections::BTreeMap<String, StateTensor>) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |n: usize, out: &mut Vec<u8>| out.extend_from_slice(&(n as u64).to_le_bytes());
    put(tensors.len(), &mut out);
    for (name, tensor) in tensors {
        put(name.len(), &mut out);
        out.extend_from_slice(name.as_bytes());
        put(tensor.shape.len(), &mut out);
        for &d in &tensor.shape {
            put(d, &mut out);
        }
        put(tensor.values.len(), &mut out);
        out.reserve(4 * tensor.values.len());
        for v in &tensor.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn decode_tensors(
    bytes: &[u8],
) -> std::result::Result<std::collections::BTreeMap<String, StateTensor>, String> {
    let mut rest = bytes;
    // Written by `encode_tensors`; every length is checked against what is left.
    let mut tensors = std::collections::BTreeMap::new();
    let n = next_len(&mut rest)?;
    for _ in 0..n {
        let len = next_len(&mut rest)?;
        let name = String::from_utf8(next_bytes(&mut rest, len)?.to_vec())
            .map_err(|_| "a tensor name is not UTF-8".to_string())?;
        let ndim = next_len(&mut rest)?;
        let shape = (0..ndim)
            .map(|_| next_len(&mut rest))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let len = next_len(&mut rest)?;
        let raw = next_bytes(
            &mut rest,
            len.checked_mul(4).ok_or("a length is too large")?,
        )?;
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        tensors.insert(name, StateTensor { shape, values });
    }
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(tensors)
}

fn next_bytes<'a>(rest: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    let (head, tail) = rest.split_at_checked(n).ok_or("truncated")?;
    *rest = tail;
    Ok(head)
}

fn next_len(rest: &mut &[u8]) -> std::result::Result<usize, String> {
    let v = u64::from_le_bytes(next_bytes(rest, 8)?.try_into().expect("8 bytes"));
    usize::try_from(v).map_err(|_| "a length is too large".to_string())
}

fn load_into<B: Backend, M: Module<B>>(
    path: &Path,
    model: M,
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<M> {
    let record = Recorder_::default()
        .load(bytes, device)
        .map_err(|e| checkpoint_error(path, e))?;
    Ok(model.load_record(record))
}

/// The model of the best validation epoch and the progress stored in a run directory's
/// checkpoint, for a run with model `model` on inputs of `input_size` and `classes` labels.
///
/// # Errors
/// No checkpoint, a file that is not one, or a model of another shape.
pub fn load_best<B: Backend>(
    run_dir: &Path,
    model: &ModelConfig,
    input_size: usize,
    classes: usize,
    device: &B::Device,
) -> Result<(Classifier<B>, Progress)> {
    let path = RunFiles::in_dir(run_dir).checkpoint;
    let parts = read_checkpoint(&path)?;
    // The stored weights replace these; random ones avoid reading a weights file again.
    let skeleton = ModelConfig {
        weights: crate::model::Weights::Random,
        ..model.clone()
    }
    .init::<B>(input_size, classes, device)?;
    Ok((
        load_into(&path, skeleton, parts.best, device)?,
        parts.progress,
    ))
}

/// Serialises seeding the backend and drawing from it: burn's backends keep one generator per
/// process, so two runs initialising at once (tests, or a library user's threads) would
/// otherwise interleave their draws and neither would get its seed's weights.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The module `init` builds, with the backend seeded by `seed` and no other seeded draw in
/// between. burn initialises parameters lazily, at their first use; every parameter is
/// touched here, under the lock, so that its draw happens now.
///
/// # Errors
/// `init`'s.
pub fn seeded_init<B: Backend, M: Module<B>>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> Result<M>,
) -> Result<M> {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    let _guard = BACKEND_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    B::seed(device, seed);
    let module = init()?;
    module.visit(&mut Touch);
    Ok(module)
}

/// Sigmoid probabilities `[n, C]`, row-major in the source's row order, of a model in eval
/// mode. Rows the source skipped (bad images) score 0.
///
/// # Errors
/// A batch the source cannot build, or an input the model does not take.
pub fn predict<B: ConvBackend, S: Source>(
    model: &Classifier<B>,
    source: &S,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let c = source.labels().n_classes();
    let mut out = vec![0.0f32; source.len() * c];
    for batch in source.batches::<B>(Pass::Eval, batch_size, device)? {
        let (rows, input) = batch?;
        if rows.is_empty() {
            continue;
        }
        let p = sigmoid(model.logits(input)?)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        for (&r, scores) in rows.iter().zip(p.chunks_exact(c)) {
            out[r * c..(r + 1) * c].copy_from_slice(scores);
        }
    }
    Ok(out)
}

/// mAP (%) in both definitions of scores on a source with clean labels.
fn validation_maps(scores: &[f32], labels: &mlml_data::LabelMatrix) -> Result<(f64, f64)> {
    let map = |definition| {
        mean_average_precision(
            scores,
            labels,
            MapOptions {
                definition,
                skip_empty: false,
            },
        )
        .map(|r| r.map)
    };
    Ok((map(ApDefinition::Sklearn)?, map(ApDefinition::Ranked)?))
}

/// How a step's gradients reach the optimizer.
#[derive(Clone, Copy, Debug)]
struct Groups {
    /// The backbone frozen (GR's linear-init epochs): only the head's gradients reach the
    /// optimizer, while the backbone still runs in training mode (BatchNorm statistics move),
    /// as the reference's `requires_grad = False` does.
    head_only: bool,
    /// The head's learning rate over the backbone's.
    head_lr_mult: f64,
}

/// One optimizer step: the loss, its gradients, the loss's after-step hook, the update. The one
/// place where gradients are produced and applied.
#[allow(clippy::too_many_arguments)]
fn step<B: TrainBackend, O: Optimizer<Classifier<B>, B>>(
    model: Classifier<B>,
    optimizer: &mut O,
    loss: &mut Box<dyn MultiLabelLoss<B>>,
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
    context: &LossContext<'_>,
    lr: f64,
    epoch: usize,
    batch: usize,
    groups: Groups,
) -> Result<(Classifier<B>, f32)> {
    let value = loss.forward(logits, targets, context)?;
    let scalar: f32 = value.clone().into_scalar().elem::<f32>();
    if !scalar.is_finite() {
        return Err(TrainError::NonFinite {
            epoch,
            batch,
            value: scalar,
        });
    }
    let mut grads = value.backward();
    {
        let lookup = gradient_lookup::<B>(&grads);
        loss.on_optimizer_step(&OptimizerStep {
            lr,
            gradient: &lookup,
        })?;
    }
    let split = match &model {
        Classifier::Image(m) if groups.head_only || groups.head_lr_mult != 1.0 => {
            let head = GradientsParams::from_module(&mut grads, &m.head);
            let backbone =
                (!groups.head_only).then(|| GradientsParams::from_module(&mut grads, &m.backbone));
            Some((backbone, head))
        }
        _ => None,
    };
    let model = match split {
        // Two parameter groups, as the reference's optimizer has: each parameter's update
        // depends on its own gradient and state only, so two steps make one.
        Some((backbone, head)) => {
            let model = match backbone {
                Some(backbone) => optimizer.step(lr, model, backbone),
                None => model,
            };
            optimizer.step(lr * groups.head_lr_mult, model, head)
        }
        None => {
            let grads = GradientsParams::from_grads(grads, &model);
            optimizer.step(lr, model, grads)
        }
    };
    Ok((model, scalar))
}

/// Where a run starts other than from its config's weights: the end-to-end phase of a
/// `linear-init` run. A checkpoint in the run directory takes precedence (a resumed run).
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// The head's linear layer: weight `[features, classes]` row-major and bias `[classes]`.
    pub head: Option<(Vec<f32>, Vec<f32>)>,
    /// The loss's state to start from (ROLE's label estimate).
    pub loss_state: Option<LossState>,
}

impl Start {
    /// The start from a linear layer trained on standardised features `(x - mean) / std`, for
    /// a network whose head sees `x` itself: `W' = W / std` (per input), `b' = b - W' mean`.
    pub fn from_standardized_linear(
        weight: &[f32],
        bias: &[f32],
        mean: &[f32],
        std: &[f32],
    ) -> Self {
        let classes = bias.len();
        let mut folded = weight.to_vec();
        let mut shift = bias.iter().map(|&b| f64::from(b)).collect::<Vec<f64>>();
        for (i, row) in folded.chunks_exact_mut(classes).enumerate() {
            for (j, w) in row.iter_mut().enumerate() {
                *w /= std[i];
                shift[j] -= f64::from(*w) * f64::from(mean[i]);
            }
        }
        Self {
            head: Some((folded, shift.into_iter().map(|b| b as f32).collect())),
            loss_state: None,
        }
    }
}

/// `model` with its head's linear layer set to `weight` and `bias`.
fn with_head<B: Backend>(
    model: Classifier<B>,
    weight: &[f32],
    bias: &[f32],
    device: &B::Device,
) -> Result<Classifier<B>> {
    let Classifier::Image(mut m) = model else {
        return Err(TrainError::Config(
            "a starting head needs an image model trained end to end".into(),
        ));
    };
    let [d, c] = m.head.linear.weight.dims();
    if weight.len() != d * c || bias.len() != c {
        return Err(TrainError::Config(format!(
            "the starting head has {} weights and {} biases, the model's head is [{d}, {c}]",
            weight.len(),
            bias.len()
        )));
    }
    let w = Tensor::<B, 2>::from_data(TensorData::new(weight.to_vec(), [d, c]), device);
    m.head.linear.weight = Param::initialized(m.head.linear.weight.id, w.require_grad());
    let b = Tensor::<B, 1>::from_data(TensorData::new(bias.to_vec(), [c]), device);
    m.head.linear.bias = Some(match m.head.linear.bias.take() {
        Some(old) => Param::initialized(old.id, b.require_grad()),
        None => Param::from_tensor(b),
    });
    Ok(Classifier::Image(m))
}

/// [`train_from`] with the config's own start.
///
/// # Errors
/// As [`train_from`].
#[allow(clippy::too_many_arguments)]
pub fn train<B: TrainBackend, S: Source>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<Run<B::InnerBackend>> {
    train_from::<B, S>(
        config,
        model_config,
        train,
        val,
        run_dir,
        stop_after,
        device,
        observer,
        &Start::default(),
    )
}

/// Trains `model` on `train` (its labels are the observed ones) and selects the epoch by the
/// mAP on `val` (clean labels), with the loss's whole lifecycle. With `run_dir`, writes an
/// atomic checkpoint after every epoch and resumes from one found there; `stop_after` ends
/// the run after that many epochs in all (as an interrupted run would); `observer` sees every
/// optimizer step and each finished epoch's figures (after its checkpoint is written); a
/// closure `|record| ...` observes epochs only. On the CPU backend a resumed run
/// ends with the same weights as an uninterrupted one.
///
/// # Errors
/// Bad settings, a model or loss that cannot be built, a batch that cannot be built (a bad
/// image, named), a non-finite loss (epoch and batch named), or checkpoint files that cannot
/// be written or read.
#[allow(clippy::too_many_arguments)]
pub fn train_from<B: TrainBackend, S: Source>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    observer: &mut dyn Observer,
    start: &Start,
) -> Result<Run<B::InnerBackend>> {
    config.validate()?;
    if train.input_size() != val.input_size()
        || train.labels().n_classes() != val.labels().n_classes()
    {
        return Err(TrainError::Config(format!(
            "train has input size {} and {} classes, val {} and {}",
            train.input_size(),
            train.labels().n_classes(),
            val.input_size(),
            val.labels().n_classes()
        )));
    }
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::Config(format!(
            "{} training and {} validation rows: both need at least one",
            train.len(),
            val.len()
        )));
    }
    let c = train.labels().n_classes();
    let setup = LossSetup::<B> {
        epochs: config.epochs,
        train_labels: train.labels(),
        seed: config.seed,
        device: device.clone(),
    };
    let mut loss = registry::build(&config.loss, config.preset, &config.loss_overrides, &setup)?;
    let mut model: Classifier<B> = seeded_init::<B, _>(device, config.seed, || {
        model_config.init(train.input_size(), c, device)
    })?;
    if let Some((weight, bias)) = &start.head {
        model = with_head(model, weight, bias, device)?;
    }
    if let Some(state) = &start.loss_state {
        loss.load_state(state)?;
    }
    if config.head_lr_mult != 1.0 && !matches!(model, Classifier::Image(_)) {
        return Err(TrainError::Config(format!(
            "training.head_lr_mult ({}) applies to image models trained end to end; this model ({}) is one part",
            config.head_lr_mult,
            if model_config.is_probe() { "a linear probe's head" } else { "an MLP" }
        )));
    }
    let steps_per_epoch = if config.drop_last {
        train.len() / config.batch_size
    } else {
        train.len().div_ceil(config.batch_size)
    };
    if steps_per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "data.drop_last with training.batch_size {} and {} training rows leaves no batch",
            config.batch_size,
            train.len()
        )));
    }
    if let Schedule::OneCycle { epochs, pct_start } = config.schedule {
        OneCycleConfig::new(config.lr, epochs * steps_per_epoch)
            .with_pct_start(pct_start)
            .check()
            .map_err(|e| TrainError::Config(format!("training.schedule.one-cycle: {e}")))?;
    }
    let total_steps = config.epochs * steps_per_epoch;
    let rates = |beta_1| match config.schedule {
        Schedule::Constant => LearningRates::Constant(config.lr),
        Schedule::OneCycle { epochs, pct_start } => LearningRates::OneCycle(
            OneCycleConfig::new(config.lr, epochs * steps_per_epoch)
                .with_pct_start(pct_start)
                .init(beta_1),
        ),
        Schedule::Cosine { min_lr } => LearningRates::Cosine {
            lr: config.lr,
            min_lr,
            total_steps,
        },
    };
    let run = Loop {
        config,
        steps_per_epoch,
        train,
        val,
        run_dir,
        stop_after,
        device,
    };
    match config.optimizer {
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            let adam = TorchAdamConfig::new()
                .with_weight_decay(config.weight_decay)
                .with_decoupled_weight_decay(config.optimizer == OptimizerKind::AdamW)
                .init();
            let rates = rates(Some(adam.beta_1()));
            let optimizer: OptimizerAdaptor<TorchAdam, Classifier<B>, B> =
                OptimizerAdaptor::from(adam);
            run.fit(model, optimizer, rates, loss, observer)
        }
        OptimizerKind::Sgd => {
            let optimizer = torch_sgd(
                config.momentum.unwrap_or(0.9),
                config.nesterov,
                config.weight_decay,
            )
            .init::<B, Classifier<B>>();
            run.fit(model, optimizer, rates(None), loss, observer)
        }
    }
}

/// The learning rate of each optimizer step.
enum LearningRates {
    Constant(f64),
    OneCycle(OneCycle),
    Cosine {
        lr: f64,
        min_lr: f64,
        total_steps: usize,
    },
}

impl LearningRates {
    /// The learning rate of 0-based step `step` of the run (for a one-cycle schedule, it also
    /// sets Adam's beta1 for that step).
    fn at(&self, step: usize) -> f64 {
        match self {
            Self::Constant(lr) => *lr,
            Self::OneCycle(schedule) => schedule.lr_at(step),
            Self::Cosine {
                lr,
                min_lr,
                total_steps,
            } => cosine_lr(*lr, *min_lr, *total_steps, step),
        }
    }
}

/// Why a run stops after `epoch` (its record already in `progress`), or `None` to go on: the
/// last epoch is never an early stop.
fn early_stop(config: &TrainingConfig, progress: &Progress, epoch: usize) -> Option<String> {
    if epoch >= config.epochs {
        return None;
    }
    if let Some(patience) = config.patience {
        if epoch - progress.best_epoch >= patience {
            return Some(format!(
                "no better validation mAP for {patience} epoch(s) (training.patience)"
            ));
        }
    }
    let val_map = progress.epochs.last().map(|r| r.val_map)?;
    if let Some(points) = config.stop_below_best {
        if progress.best_val_map - val_map > points {
            return Some(format!(
                "validation mAP {val_map:.2} is more than {points} points below the best, {:.2} at epoch {} (training.stop_below_best)",
                progress.best_val_map, progress.best_epoch
            ));
        }
    }
    None
}

/// PyTorch's `CosineAnnealingLR(T_max = total_steps, eta_min = min_lr)` at 0-based `step`
/// (`step <= total_steps`), in the closed form its docs give and burn's
/// `CosineAnnealingLrScheduler` computes.
pub fn cosine_lr(lr: f64, min_lr: f64, total_steps: usize, step: usize) -> f64 {
    let pct = step as f64 / total_steps.max(1) as f64;
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * pct).cos())
}

/// What the epochs of a run share, whichever optimizer it has.
struct Loop<'a, B: TrainBackend, S: Source> {
    config: &'a TrainingConfig,
    steps_per_epoch: usize,
    train: &'a S,
    val: &'a S,
    run_dir: Option<&'a Path>,
    stop_after: Option<usize>,
    device: &'a B::Device,
}

impl<B: TrainBackend, S: Source> Loop<'_, B, S> {
    fn fit<O: Optimizer<Classifier<B>, B>>(
        self,
        mut model: Classifier<B>,
        mut optimizer: O,
        rates: LearningRates,
        mut loss: Box<dyn MultiLabelLoss<B>>,
        observer: &mut dyn Observer,
    ) -> Result<Run<B::InnerBackend>> {
        let Loop {
            config,
            steps_per_epoch,
            train,
            val,
            run_dir,
            stop_after,
            device,
        } = self;
        let mut ema = config
            .ema_decay
            .map(|d| ModelEma::<B, Classifier<B>>::new(&model, d));
        let files = run_dir.map(RunFiles::in_dir);
        let recorder = Recorder_::default();
        let mut progress = Progress::default();
        let mut best: Classifier<B::InnerBackend> = model.valid();
        if let Some(files) = files.as_ref().filter(|f| f.checkpoint.is_file()) {
            let path = &files.checkpoint;
            let parts = read_checkpoint(path)?;
            progress = parts.progress;
            model = load_into(path, model, parts.model, device)?;
            let record = recorder
                .load(parts.optimizer, device)
                .map_err(|e| checkpoint_error(path, e))?;
            optimizer = optimizer.load_record(record);
            loss.load_state(&progress.loss_state)?;
            best = load_into(path, model.valid(), parts.best, device)?;
            if let Some(ema) = ema.as_mut() {
                let average = load_into(path, model.valid(), parts.ema, device)?;
                *ema = ModelEma::from_average(average, ema.decay());
            }
        }
        let resumed_at = progress.epochs_done;
        if progress.stopped_early {
            return Ok(Run {
                best,
                last: model.valid(),
                progress,
                resumed_at,
                train_samples_per_second: 0.0,
            });
        }
        let last_epoch = stop_after.map_or(config.epochs, |s| s.min(config.epochs));
        let (mut steady_seconds, mut steady_samples) = (0.0f64, 0usize);
        for epoch in progress.epochs_done + 1..=last_epoch {
            let mut total = 0.0f64;
            let mut batches = 0usize;
            let mut lr = config.lr;
            let pass = Pass::Train {
                epoch,
                seed: config.seed,
            };
            let mut steady_from: Option<Instant> = None;
            for (b, batch) in train
                .batches::<B>(pass, config.batch_size, device)?
                .enumerate()
            {
                let (rows, input) = batch?;
                // `drop_last`: the short batch is read but not trained on, so that the source
                // finishes its pass (an image source lists its skipped files at the end).
                if rows.is_empty() || b >= steps_per_epoch {
                    continue;
                }
                if b == 2 {
                    steady_from = Some(Instant::now());
                }
                lr = rates.at((epoch - 1) * steps_per_epoch + b);
                let targets = targets_from_labels::<B>(train.labels(), &rows, device);
                let logits = model.logits(input)?;
                let context = LossContext::train(epoch, &rows)?;
                let (next, value) = step(
                    model,
                    &mut optimizer,
                    &mut loss,
                    logits,
                    targets,
                    &context,
                    lr,
                    epoch,
                    b + 1,
                    Groups {
                        head_only: epoch <= config.linear_init_epochs,
                        head_lr_mult: config.head_lr_mult,
                    },
                )?;
                model = next;
                if let Some(ema) = ema.as_mut() {
                    ema.update(&model);
                }
                if steady_from.is_some() {
                    steady_samples += rows.len();
                }
                observer.batch_done(epoch, b + 1, steps_per_epoch, rows.len());
                total += f64::from(value);
                batches += 1;
            }
            if let Some(start) = steady_from {
                steady_seconds += start.elapsed().as_secs_f64();
            }
            let eval_model = model.valid();
            // The inner backend shares the autodiff backend's device type.
            let inner_device = device;
            let train_probabilities = if loss.wants_train_probabilities(epoch) {
                Some(predict(
                    &eval_model,
                    train,
                    config.batch_size,
                    inner_device,
                )?)
            } else {
                None
            };
            let loss_note = loss.after_epoch(&EpochEnd {
                epoch,
                train_probabilities: train_probabilities.as_deref(),
            })?;
            let scores = predict(&eval_model, val, config.batch_size, inner_device)?;
            let (mut val_map, mut val_map_ranked) = validation_maps(&scores, val.labels())?;
            let mut counted = eval_model.clone();
            let mut counted_is_ema = false;
            let mut val_map_ema = None;
            if let Some(ema) = &ema {
                let average = ema.module().clone();
                let scores = predict(&average, val, config.batch_size, inner_device)?;
                let (map, ranked) = validation_maps(&scores, val.labels())?;
                val_map_ema = Some(map);
                if map > val_map {
                    (val_map, val_map_ranked) = (map, ranked);
                    counted = average;
                    counted_is_ema = true;
                }
            }
            let record = EpochRecord {
                epoch,
                train_loss: total / batches.max(1) as f64,
                val_map,
                val_map_ranked,
                lr,
                val_map_ema,
                loss_note,
            };
            // The first epoch with the strictly highest validation mAP, as Cole et al. select.
            if progress.best_epoch == 0 || record.val_map > progress.best_val_map {
                progress.best_epoch = epoch;
                progress.best_val_map = record.val_map;
                progress.best_is_ema = counted_is_ema;
                // The weight average's BatchNorm statistics are shared by its clones and move
                // with every update: the kept model must not.
                best = detached_copy::<B, Classifier<B>>(&counted);
            }
            progress.epochs.push(record);
            progress.epochs_done = epoch;
            progress.loss_state = loss.state();
            if config.keep_best_loss_state && progress.best_epoch == epoch {
                progress.best_loss_state = progress.loss_state.clone();
            }
            // Decided before the checkpoint, so that a resumed run knows it is over.
            progress.stop_reason = early_stop(config, &progress, epoch);
            progress.stopped_early = progress.stop_reason.is_some();
            if let Some(files) = &files {
                // One atomic file: a crash before its rename leaves the previous epoch's checkpoint
                // whole, and the interrupted epoch is redone.
                let path = &files.checkpoint;
                let light = without_tensor_values(&progress);
                let text = serde_json::to_vec(&light).expect("progress serialises");
                let encode = |bytes: std::result::Result<Vec<u8>, _>| {
                    bytes.map_err(|e| checkpoint_error(path, e))
                };
                let model_bytes = encode(recorder.record(model.clone().into_record(), ()))?;
                let optimizer_bytes = encode(recorder.record(optimizer.to_record(), ()))?;
                let best_bytes = encode(recorder.record(best.clone().into_record(), ()))?;
                let ema_bytes = match &ema {
                    Some(ema) => encode(recorder.record(ema.module().clone().into_record(), ()))?,
                    None => Vec::new(),
                };
                write_atomic(
                    path,
                    &pack(&[
                        &text,
                        &model_bytes,
                        &optimizer_bytes,
                        &best_bytes,
                        &ema_bytes,
                        &encode_tensors(&checkpoint_tensors(&progress)),
                    ]),
                )?;
                write_atomic(
                    &files.progress,
                    &serde_json::to_vec_pretty(&light).expect("progress serialises"),
                )?;
            }
            observer.epoch_done(progress.epochs.last().expect("pushed above"));
            observer.progress_recorded(&progress);
            if progress.stopped_early {
                break;
            }
        }
        Ok(Run {
            best,
            last: model.valid(),
            progress,
            resumed_at,
            train_samples_per_second: steady_samples as f64 / steady_seconds.max(1e-9),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Start;

    #[test]
    fn a_linear_layer_on_standardised_features_folds_into_one_on_raw_features() {
        // Two features, three classes; the layer saw (x - mean) / std.
        let weight = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
        let bias = [0.1f32, -0.2, 0.3];
        let (mean, std) = ([2.0f32, -1.0], [4.0f32, 0.5]);
        let start = Start::from_standardized_linear(&weight, &bias, &mean, &std);
        let (folded, shift) = start.head.unwrap();
        for x in [[0.0f32, 0.0], [3.0, -2.0], [-1.5, 7.0]] {
            let z = [(x[0] - mean[0]) / std[0], (x[1] - mean[1]) / std[1]];
            for j in 0..3 {
                let on_z = bias[j] + z[0] * weight[j] + z[1] * weight[3 + j];
                let on_x = shift[j] + x[0] * folded[j] + x[1] * folded[3 + j];
                assert!(
                    (on_z - on_x).abs() < 1e-5,
                    "{x:?} class {j}: {on_z} vs {on_x}"
                );
            }
        }
    }
}
