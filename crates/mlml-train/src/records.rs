//! What a run records: each epoch's figures, where the run stands, what it ends with, and what
//! a display sees as it goes.

use burn::tensor::backend::Backend;
use mlml_losses::LossState;
use serde::{Deserialize, Serialize};

use crate::model::Classifier;

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
    /// The f16 loss scale after the last finished epoch (`training.precision = "f16"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::LossScale>,
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
    /// [`Run::best`]'s probabilities on the validation rows (rows in the source's order, classes
    /// innermost), as its epoch scored them; `None` when that epoch ran before a resume.
    pub best_val_scores: Option<Vec<f32>>,
}
