//! Training on feature vectors (the embedded scene and yeast sets, pre-extracted backbone
//! features): an MLP and any registered loss, driving the loss lifecycle as a generic loop
//! does, with validation every epoch, model selection by validation mAP, atomic checkpoints
//! every epoch and resume.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use mlml_data::formats::{npy, write_atomic, ZeroMeans};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{
    gradient_lookup, targets_from_labels, EpochEnd, LossContext, LossState, OptimizerStep, Preset,
};
use mlml_metrics::{mean_average_precision, ApDefinition, MapOptions};
use mlml_models::{Mlp, MlpConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::{AdamL2, AdamL2Config};

/// Feature vectors with their labels.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    /// Row-major `[n, dim]`.
    pub features: Vec<f32>,
    /// Features per row.
    pub dim: usize,
    /// Labels (1 / -1 / 0), one row per feature row.
    pub labels: LabelMatrix,
}

impl FeatureSet {
    /// Reads an f32-convertible `[n, d]` feature matrix and a `[n, C]` label matrix (`.npy`),
    /// with class names.
    ///
    /// # Errors
    /// Unreadable files, or shapes that disagree.
    pub fn from_npy(
        features: &Path,
        labels: &Path,
        classes: Vec<String>,
        zero_means: ZeroMeans,
    ) -> Result<Self> {
        let x = npy::read_f32(features)?;
        let y = npy::read_labels(labels, zero_means)?;
        if x.shape.len() != 2 || x.shape[0] != y.n_samples || y.n_classes != classes.len() {
            return Err(TrainError::Config(format!(
                "{}: features {:?} do not fit {}: labels {} x {} with {} class names",
                features.display(),
                x.shape,
                labels.display(),
                y.n_samples,
                y.n_classes,
                classes.len()
            )));
        }
        let ids = (0..y.n_samples).map(|i| format!("row{i}")).collect();
        Ok(Self {
            dim: x.shape[1],
            features: x.values,
            labels: LabelMatrix::new(classes, ids, y.values)?,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.n_samples()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `rows` (ascending), with their labels.
    ///
    /// # Panics
    /// When a row is out of range.
    pub fn select(&self, rows: &[usize]) -> Self {
        let mut keep = vec![false; self.len()];
        for &r in rows {
            keep[r] = true;
        }
        let mut labels = self.labels.clone();
        labels.retain_rows(|i| keep[i]);
        let features = (0..self.len())
            .filter(|&i| keep[i])
            .flat_map(|i| {
                self.features[i * self.dim..(i + 1) * self.dim]
                    .iter()
                    .copied()
            })
            .collect();
        Self {
            features,
            dim: self.dim,
            labels,
        }
    }

    /// The same features with other labels (a partial-label version of the same rows).
    ///
    /// # Errors
    /// Labels of another shape.
    pub fn with_labels(&self, labels: LabelMatrix) -> Result<Self> {
        if labels.n_samples() != self.len() || labels.n_classes() != self.labels.n_classes() {
            return Err(TrainError::Config(format!(
                "labels are {} x {}, the set is {} x {}",
                labels.n_samples(),
                labels.n_classes(),
                self.len(),
                self.labels.n_classes()
            )));
        }
        Ok(Self {
            labels,
            ..self.clone()
        })
    }

    /// Per-feature mean and standard deviation (population, as scikit-learn's scaler; a
    /// constant feature gets 1).
    pub fn standardization(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.len().max(1) as f64;
        let mut mean = vec![0.0f64; self.dim];
        let mut square = vec![0.0f64; self.dim];
        for row in self.features.chunks_exact(self.dim) {
            for (j, x) in row.iter().enumerate() {
                mean[j] += f64::from(*x);
                square[j] += f64::from(*x) * f64::from(*x);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|s| s / n).collect();
        let std = square
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = (s / n - m * m).max(0.0);
                if var > 0.0 {
                    var.sqrt() as f32
                } else {
                    1.0
                }
            })
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// Standardises in place with given statistics (the training set's).
    pub fn standardize(&mut self, mean: &[f32], std: &[f32]) {
        for row in self.features.chunks_exact_mut(self.dim) {
            for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                *x = (*x - m) / s;
            }
        }
    }
}

/// How a feature run trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureTraining {
    /// Registry name of the loss.
    pub loss: String,
    /// The loss's hyperparameters beyond its defaults and preset.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub loss_overrides: serde_json::Value,
    /// Per-dataset preset of the loss's dataset-dependent values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Epochs (T).
    pub epochs: usize,
    /// Rows per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Coupled L2 weight decay on the weight matrices.
    pub weight_decay: f64,
    /// Hidden layer sizes of the MLP (empty: a linear model).
    pub hidden: Vec<usize>,
    /// Seed of the initialisation, the shuffling and the loss's own randomness.
    pub seed: u64,
}

impl Default for FeatureTraining {
    fn default() -> Self {
        Self {
            loss: "an".into(),
            loss_overrides: serde_json::Value::Null,
            preset: None,
            epochs: 20,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            hidden: vec![256],
            seed: 0,
        }
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation mAP (%), sklearn's AP (the single-positive line's definition).
    pub val_map: f64,
    /// Validation mAP (%), the ASL code's ranked AP.
    pub val_map_ranked: f64,
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
    pub best_val_map: f64,
    /// Every finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// The loss's state after the last finished epoch.
    pub loss_state: LossState,
}

/// What a run ends with.
#[derive(Debug)]
pub struct FeatureRun<B: Backend> {
    /// The model of the best validation epoch.
    pub best: Mlp<B>,
    /// The model after the last epoch.
    pub last: Mlp<B>,
    /// Per-epoch figures and the selection.
    pub progress: Progress,
    /// Epochs already done when this call started (0 unless it resumed a checkpoint).
    pub resumed_at: usize,
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

const CHECKPOINT_MAGIC: &[u8; 8] = b"MLMLCKP1";

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
        .ok_or_else(|| bad("no magic"))?;
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

/// A checkpoint file read back: the progress and the records of the model, the optimizer and
/// the best model, still encoded (their modules decide the types).
struct CheckpointParts {
    progress: Progress,
    model: Vec<u8>,
    optimizer: Vec<u8>,
    best: Vec<u8>,
}

fn read_checkpoint(path: &Path) -> Result<CheckpointParts> {
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e))?;
    let [text, model, optimizer, best]: [Vec<u8>; 4] =
        unpack(path, &bytes, 4)?.try_into().expect("four parts");
    Ok(CheckpointParts {
        progress: serde_json::from_slice(&text).map_err(|e| checkpoint_error(path, e))?,
        model,
        optimizer,
        best,
    })
}

/// The model of the best validation epoch and the progress stored in a run directory's
/// checkpoint, for a run trained with `config` on `dim` features and `classes` labels.
///
/// # Errors
/// No checkpoint, a file that is not one, or a model of another shape.
pub fn load_best<B: Backend>(
    run_dir: &Path,
    config: &FeatureTraining,
    dim: usize,
    classes: usize,
    device: &B::Device,
) -> Result<(Mlp<B>, Progress)> {
    let path = RunFiles::in_dir(run_dir).checkpoint;
    let parts = read_checkpoint(&path)?;
    let model: Mlp<B> = MlpConfig::new(dim, classes)
        .with_hidden(config.hidden.clone())
        .init(device);
    let record = Recorder_::default()
        .load(parts.best, device)
        .map_err(|e| checkpoint_error(&path, e))?;
    Ok((model.load_record(record), parts.progress))
}

/// Sigmoid probabilities `[n, C]`, row-major, of a model in eval mode.
pub fn predict<B: Backend>(model: &Mlp<B>, set: &FeatureSet, device: &B::Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(set.len() * set.labels.n_classes());
    for chunk in set.features.chunks(1024 * set.dim) {
        let rows = chunk.len() / set.dim;
        let x = Tensor::<B, 2>::from_data(TensorData::new(chunk.to_vec(), [rows, set.dim]), device);
        let p = sigmoid(model.forward(x));
        out.extend(
            p.into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32"),
        );
    }
    out
}

/// Trains an MLP on `train` (its labels are the observed ones) and selects the epoch by the
/// mAP on `val` (clean labels), with the loss's whole lifecycle. With `run_dir`, writes an
/// atomic checkpoint after every epoch and resumes from one found there; `stop_after` ends
/// the run after that many epochs in all (as an interrupted run would). On the CPU backend a
/// resumed run ends with the same weights as an uninterrupted one.
///
/// # Errors
/// Bad settings, a loss that cannot be built, a non-finite loss (epoch and batch named), or
/// checkpoint files that cannot be written or read.
pub fn train_features<B: AutodiffBackend>(
    config: &FeatureTraining,
    train: &FeatureSet,
    val: &FeatureSet,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
) -> Result<FeatureRun<B::InnerBackend>> {
    train_features_observed::<B>(config, train, val, run_dir, stop_after, device, &mut |_| {})
}

/// [`train_features`], calling `on_epoch` with each finished epoch's figures (after its
/// checkpoint is written), for progress displays.
///
/// # Errors
/// As [`train_features`].
pub fn train_features_observed<B: AutodiffBackend>(
    config: &FeatureTraining,
    train: &FeatureSet,
    val: &FeatureSet,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<FeatureRun<B::InnerBackend>> {
    if config.epochs == 0 || config.batch_size == 0 || config.lr.is_nan() || config.lr <= 0.0 {
        return Err(TrainError::Config(format!(
            "epochs ({}), batch_size ({}) and lr ({}) must be positive",
            config.epochs, config.batch_size, config.lr
        )));
    }
    if train.dim != val.dim || train.labels.n_classes() != val.labels.n_classes() {
        return Err(TrainError::Config(format!(
            "train has {} features and {} classes, val {} and {}",
            train.dim,
            train.labels.n_classes(),
            val.dim,
            val.labels.n_classes()
        )));
    }
    let c = train.labels.n_classes();
    let setup = LossSetup::<B> {
        epochs: config.epochs,
        train_labels: &train.labels,
        seed: config.seed,
        device: device.clone(),
    };
    let mut loss = registry::build(&config.loss, config.preset, &config.loss_overrides, &setup)?;
    B::seed(device, config.seed);
    let mut model: Mlp<B> = MlpConfig::new(train.dim, c)
        .with_hidden(config.hidden.clone())
        .init(device);
    let mut optimizer: OptimizerAdaptor<AdamL2, Mlp<B>, B> = OptimizerAdaptor::from(
        AdamL2Config::new()
            .with_weight_decay(config.weight_decay)
            .init(),
    );
    let files = run_dir.map(RunFiles::in_dir);
    let recorder = Recorder_::default();
    let mut progress = Progress::default();
    let mut best: Mlp<B::InnerBackend> = model.valid();
    if let Some(files) = files.as_ref().filter(|f| f.checkpoint.is_file()) {
        let path = &files.checkpoint;
        let parts = read_checkpoint(path)?;
        progress = parts.progress;
        let record = recorder
            .load(parts.model, device)
            .map_err(|e| checkpoint_error(path, e))?;
        model = model.load_record(record);
        let record = recorder
            .load(parts.optimizer, device)
            .map_err(|e| checkpoint_error(path, e))?;
        optimizer = optimizer.load_record(record);
        loss.load_state(&progress.loss_state)?;
        let record = recorder
            .load(parts.best, device)
            .map_err(|e| checkpoint_error(path, e))?;
        best = model.valid().load_record(record);
    }
    let resumed_at = progress.epochs_done;
    let last_epoch = stop_after.map_or(config.epochs, |s| s.min(config.epochs));
    let n = train.len();
    for epoch in progress.epochs_done + 1..=last_epoch {
        let order = mlml_data::rng::epoch_order(config.seed, epoch, n);
        let mut total = 0.0f64;
        let mut batches = 0usize;
        for (b, rows) in order.chunks(config.batch_size).enumerate() {
            let x: Vec<f32> = rows
                .iter()
                .flat_map(|&r| &train.features[r * train.dim..(r + 1) * train.dim])
                .copied()
                .collect();
            let input =
                Tensor::<B, 2>::from_data(TensorData::new(x, [rows.len(), train.dim]), device);
            let targets = targets_from_labels::<B>(&train.labels, rows, device);
            let logits = model.forward(input);
            let value = loss.forward(logits, targets, &LossContext::train(epoch, rows)?)?;
            let scalar: f32 = value.clone().into_scalar().elem::<f32>();
            if !scalar.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: b + 1,
                    value: scalar,
                });
            }
            total += f64::from(scalar);
            batches += 1;
            let grads = value.backward();
            {
                let lookup = gradient_lookup::<B>(&grads);
                loss.on_optimizer_step(&OptimizerStep {
                    lr: config.lr,
                    gradient: &lookup,
                })?;
            }
            let grads = GradientsParams::from_grads(grads, &model);
            model = optimizer.step(config.lr, model, grads);
        }
        let eval_model = model.valid();
        // The inner backend shares the autodiff backend's device type.
        let inner_device = device;
        let train_probabilities = loss
            .wants_train_probabilities(epoch)
            .then(|| predict(&eval_model, train, inner_device));
        let loss_note = loss.after_epoch(&EpochEnd {
            epoch,
            train_probabilities: train_probabilities.as_deref(),
        })?;
        let scores = predict(&eval_model, val, inner_device);
        let map = |definition| {
            mean_average_precision(
                &scores,
                &val.labels,
                MapOptions {
                    definition,
                    skip_empty: false,
                },
            )
            .map(|r| r.map)
        };
        let record = EpochRecord {
            epoch,
            train_loss: total / batches.max(1) as f64,
            val_map: map(ApDefinition::Sklearn)?,
            val_map_ranked: map(ApDefinition::Ranked)?,
            loss_note,
        };
        // The first epoch with the strictly highest validation mAP, as Cole et al. select.
        if progress.best_epoch == 0 || record.val_map > progress.best_val_map {
            progress.best_epoch = epoch;
            progress.best_val_map = record.val_map;
            best = eval_model.clone();
        }
        progress.epochs.push(record);
        progress.epochs_done = epoch;
        progress.loss_state = loss.state();
        if let Some(files) = &files {
            // One atomic file: a crash before its rename leaves the previous epoch's checkpoint
            // whole, and the interrupted epoch is redone.
            let path = &files.checkpoint;
            let text = serde_json::to_vec_pretty(&progress).expect("progress serialises");
            let model_bytes = recorder
                .record(model.clone().into_record(), ())
                .map_err(|e| checkpoint_error(path, e))?;
            let optimizer_bytes = recorder
                .record(optimizer.to_record(), ())
                .map_err(|e| checkpoint_error(path, e))?;
            let best_bytes = recorder
                .record(best.clone().into_record(), ())
                .map_err(|e| checkpoint_error(path, e))?;
            write_atomic(
                path,
                &pack(&[&text, &model_bytes, &optimizer_bytes, &best_bytes]),
            )?;
            write_atomic(&files.progress, &text)?;
        }
        on_epoch(progress.epochs.last().expect("pushed above"));
    }
    Ok(FeatureRun {
        best,
        last: model.valid(),
        progress,
        resumed_at,
    })
}
