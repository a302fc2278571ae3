//! The run directory's checkpoint: one file, written atomically after every epoch, that holds
//! everything a resume needs: the progress as JSON, the model, optimizer, best-model and
//! weight-average records, and the loss's tensors as raw f32.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::Backend;
use mlml_data::formats::write_atomic;
use mlml_losses::{LossState, StateTensor};

use crate::error::{Result, TrainError};
use crate::model::{Classifier, ModelConfig};
use crate::records::Progress;

/// The files of a run directory: one checkpoint file, written atomically, holds everything a
/// resume needs (so a crash can never pair one epoch's weights with another epoch's progress);
/// `progress.json` repeats its figures for people and scripts.
pub(crate) struct RunFiles {
    pub(crate) checkpoint: PathBuf,
    progress: PathBuf,
}

impl RunFiles {
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self {
            checkpoint: dir.join("checkpoint.bin"),
            progress: dir.join("progress.json"),
        }
    }

    /// Writes the checkpoint, then `progress.json`, each atomically: a crash before the
    /// checkpoint's rename leaves the previous epoch's whole, and the interrupted epoch is redone.
    pub(crate) fn save(&self, progress: &Progress, models: &ModelBytes) -> Result<()> {
        let light = without_tensor_values(progress);
        let text = serde_json::to_vec(&light).expect("progress serialises");
        write_atomic(
            &self.checkpoint,
            &pack(&[
                &text,
                &models.model,
                &models.optimizer,
                &models.best,
                &models.ema,
                &encode_tensors(progress),
            ]),
        )?;
        write_atomic(
            &self.progress,
            &serde_json::to_vec_pretty(&light).expect("progress serialises"),
        )?;
        Ok(())
    }
}

/// The encoded records a checkpoint holds beside the progress (`ema` empty without a weight
/// average).
pub(crate) struct ModelBytes {
    pub(crate) model: Vec<u8>,
    pub(crate) optimizer: Vec<u8>,
    pub(crate) best: Vec<u8>,
    pub(crate) ema: Vec<u8>,
}

/// A record encoded as the checkpoint stores it.
pub(crate) fn record_bytes<B: Backend, R: Record<B>>(path: &Path, record: R) -> Result<Vec<u8>> {
    CheckpointRecorder::default()
        .record(record, ())
        .map_err(|e| checkpoint_error(path, e))
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
        let len = next_len(&mut rest).map_err(|e| bad(&e))?;
        parts.push(next_bytes(&mut rest, len).map_err(|e| bad(&e))?.to_vec());
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(parts)
}

/// How the checkpoint's model, optimizer and weight-average parts are encoded.
pub(crate) type CheckpointRecorder = BinBytesRecorder<FullPrecisionSettings>;

pub(crate) fn checkpoint_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A checkpoint file read back: the progress (with the loss's tensors) and the records of the
/// model, the optimizer, the best model and the weight average (empty without one), still
/// encoded.
pub(crate) struct CheckpointParts {
    pub(crate) progress: Progress,
    pub(crate) model: Vec<u8>,
    pub(crate) optimizer: Vec<u8>,
    pub(crate) best: Vec<u8>,
    pub(crate) ema: Vec<u8>,
}

pub(crate) fn read_checkpoint(path: &Path) -> Result<CheckpointParts> {
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

/// The loss tensors a checkpoint stores as bytes: the last epoch's, and the best epoch's under
/// [`BEST_PREFIX`]; per tensor its name, its shape and its f32 values, each length a
/// little-endian u64. Written from the progress in place (ROLE's state on COCO is tens of MB).
fn encode_tensors(progress: &Progress) -> Vec<u8> {
    let (last, best) = (
        &progress.loss_state.tensors,
        &progress.best_loss_state.tensors,
    );
    let mut out = Vec::new();
    let put = |n: usize, out: &mut Vec<u8>| out.extend_from_slice(&(n as u64).to_le_bytes());
    put(last.len() + best.len(), &mut out);
    let named = last.iter().map(|(name, t)| (String::new(), name, t)).chain(
        best.iter()
            .map(|(name, t)| (BEST_PREFIX.to_string(), name, t)),
    );
    for (prefix, name, tensor) in named {
        put(prefix.len() + name.len(), &mut out);
        out.extend_from_slice(prefix.as_bytes());
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

fn decode_tensors(bytes: &[u8]) -> std::result::Result<BTreeMap<String, StateTensor>, String> {
    let mut rest = bytes;
    // Written by `encode_tensors`; every length is checked against what is left.
    let mut tensors = BTreeMap::new();
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

pub(crate) fn load_into<B: Backend, M: Module<B>>(
    path: &Path,
    model: M,
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<M> {
    let record = CheckpointRecorder::default()
        .load(bytes, device)
        .map_err(|e| checkpoint_error(path, e))?;
    Ok(crate::fit::holding_backend_rng(|| {
        model.load_record(record)
    }))
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
