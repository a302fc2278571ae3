//! A whole run, as `mlml train` starts and `mlml resume` continues it: the data read and split,
//! the run directory written (its files named in one place, [`RunDir`]), Cole et al.'s linear
//! phase first for `linear-init`, the loop, and the selected model's figures and scores in a
//! typed [`Report`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use mlml_data::formats::write_atomic;
use mlml_data::LabelMatrix;
use mlml_metrics::{
    at_k, evaluate, mean_average_precision, ApDefinition, AtK, Evaluation, MapOptions,
    PredictionRule,
};
use serde::{Deserialize, Serialize};

use crate::error::{bail, Context, Result};
use crate::run_config::RunConfig;
use crate::run_data::{AnySource, Prober, SelectionSplit, Splits, Standardization};
use crate::FeatureSet;
use crate::{
    load_best, predict, Classifier, ConvBackend, EpochRecord, Mode, Observer, Progress, Source,
    Start, TrainBackend,
};

/// The files of a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The resolved config the run was started with (`config.toml`).
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The class names, in output order (`classes.json`).
    pub fn classes(&self) -> PathBuf {
        self.root.join("classes.json")
    }

    /// The training file's labels as the run observes them (`observed-labels.npy` and its
    /// sidecar): the rows `mlml suggest` numbers, the set `mlml-data review apply` adds to.
    pub fn observed_labels(&self) -> PathBuf {
        self.root.join("observed-labels.npy")
    }

    /// The training rows' statistics the inputs are standardised with (`standardization.json`).
    pub fn standardization(&self) -> PathBuf {
        self.root.join("standardization.json")
    }

    /// Every epoch's figures and the loss's small state (`progress.json`).
    pub fn progress(&self) -> PathBuf {
        self.root.join("progress.json")
    }

    /// Everything a resume needs, in one atomic file (`checkpoint.bin`).
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.bin")
    }

    /// The selected model's figures (`report.json`).
    pub fn report(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// One epoch record a line, rewritten as each epoch ends (`metrics.jsonl`).
    pub fn metrics_jsonl(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// The same as a table (`metrics.csv`).
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// Training loss, validation mAP and learning rate per epoch (`curves.png`).
    pub fn curves(&self) -> PathBuf {
        self.root.join("curves.png")
    }

    /// The selected model's validation probabilities `[rows, C]` (`val_scores.npy`).
    pub fn val_scores(&self) -> PathBuf {
        self.root.join("val_scores.npy")
    }

    /// The selected model's test probabilities `[rows, C]` (`test_scores.npy`).
    pub fn test_scores(&self) -> PathBuf {
        self.root.join("test_scores.npy")
    }

    /// The linear phase of a `linear-init` run, a run directory of its own.
    pub fn linear_phase(&self) -> RunDir {
        RunDir::new(self.root.join("linear-phase"))
    }

    /// Whether a run was started here.
    pub fn holds_a_run(&self) -> bool {
        self.config().is_file()
    }

    /// The config a run was started with.
    ///
    /// # Errors
    /// No run here, or a config that does not read.
    pub fn read_config(&self) -> Result<RunConfig> {
        if !self.holds_a_run() {
            bail!("{}: no run here (no config.toml)", self.root.display());
        }
        crate::run_config::read_config(&self.config(), &[])
    }

    /// Writes the resolved config, unless the run already has one.
    ///
    /// # Errors
    /// A folder or file that cannot be written.
    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        std::fs::create_dir_all(&self.root).context(self.root.display())?;
        if !self.holds_a_run() {
            let text = toml::to_string_pretty(config).context("writing the resolved config")?;
            write_atomic(&self.config(), text.as_bytes())?;
        }
        Ok(())
    }

    /// The class names of the run.
    ///
    /// # Errors
    /// A missing or unreadable file.
    pub fn read_classes(&self) -> Result<Vec<String>> {
        read_json(&self.classes())
    }

    /// The standardisation the run learned on its training rows (`None` when its inputs are
    /// not standardised).
    ///
    /// # Errors
    /// An unreadable file.
    pub fn read_standardization(&self) -> Result<Option<Standardization>> {
        let path = self.standardization();
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// The progress the run has written (the default before its first epoch).
    ///
    /// # Errors
    /// An unreadable file.
    pub fn read_progress(&self) -> Result<Progress> {
        let path = self.progress();
        if !path.is_file() {
            return Ok(Progress::default());
        }
        read_json(&path)
    }

    /// The report of a run that has finished (or stopped after an epoch).
    ///
    /// # Errors
    /// No report yet, or one that does not read.
    pub fn read_report(&self) -> Result<Report> {
        if !self.report().is_file() {
            bail!(
                "{}: no report.json (the run has not finished, or this is not a run directory)",
                self.root.display()
            );
        }
        read_json(&self.report())
    }

    /// `metrics.jsonl` and `metrics.csv` of every epoch so far.
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write_metrics(&self, progress: &Progress) -> Result<()> {
        let mut jsonl = Vec::new();
        let mut csv = String::from("epoch,train_loss,val_map,val_map_ranked,lr\n");
        for epoch in &progress.epochs {
            serde_json::to_writer(&mut jsonl, epoch).expect("records serialise");
            jsonl.push(b'\n');
            csv.push_str(&format!(
                "{},{},{},{},{}\n",
                epoch.epoch, epoch.train_loss, epoch.val_map, epoch.val_map_ranked, epoch.lr
            ));
        }
        write_atomic(&self.metrics_jsonl(), &jsonl)?;
        write_atomic(&self.metrics_csv(), csv.as_bytes())?;
        Ok(())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).context(path.display())?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not the expected JSON", path.display()))
}

/// A split's figures of one model, as `report.json` holds them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitFigures {
    /// mAP (%), sklearn's AP.
    pub map: f64,
    /// mAP (%), the ASL code's ranked AP.
    pub map_ranked: f64,
    /// Per-class F1 (%) at threshold 0.5.
    pub cf1: f64,
    /// Overall F1 (%) at threshold 0.5.
    pub of1: f64,
    /// Rows scored.
    pub rows: usize,
    /// Precision and recall at top-1, 3 and 5 (as fractions), Cole et al.'s per-sample means.
    pub at_k: Vec<AtK>,
    /// AP (%, sklearn's) and positives of each class.
    pub per_class: Vec<ClassAp>,
}

/// One class's AP in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    /// The class name.
    pub class: String,
    /// AP (%).
    pub ap: f64,
    /// Positives in the split.
    pub positives: usize,
}

/// What every evaluation of a model reports: mAP in both AP definitions and P/R/F1 at the
/// selection (and top-3), per class.
pub struct EvaluationTables {
    /// sklearn's AP (the single-positive line's definition), with the P/R/F1 tables.
    pub evaluation: Evaluation,
    /// mAP (%), the ASL code's ranked AP.
    pub map_ranked: f64,
}

/// The figures of `scores` against `labels`, labels predicted by `selection`.
///
/// # Errors
/// Scores that do not fit the labels.
pub fn evaluation_tables(
    scores: &[f32],
    labels: &LabelMatrix,
    selection: PredictionRule,
) -> Result<EvaluationTables> {
    let options = |definition| MapOptions {
        definition,
        skip_empty: false,
    };
    Ok(EvaluationTables {
        evaluation: evaluate(scores, labels, options(ApDefinition::Sklearn), selection)?,
        map_ranked: mean_average_precision(scores, labels, options(ApDefinition::Ranked))?.map,
    })
}

/// A split's report figures.
///
/// # Errors
/// Scores that do not fit the labels.
pub fn split_figures(scores: &[f32], labels: &LabelMatrix) -> Result<SplitFigures> {
    let f = evaluation_tables(scores, labels, PredictionRule::default())?;
    Ok(SplitFigures {
        map: f.evaluation.map.map,
        map_ranked: f.map_ranked,
        cf1: f.evaluation.threshold.cf1,
        of1: f.evaluation.threshold.of1,
        rows: labels.n_samples(),
        at_k: cole_at_k(scores, labels)?,
        per_class: f
            .evaluation
            .classes
            .iter()
            .map(|c| ClassAp {
                class: c.name.clone(),
                ap: c.ap,
                positives: c.positives,
            })
            .collect(),
    })
}

/// Precision and recall at k = 1, 3, 5 (those up to the class count).
///
/// # Errors
/// Scores that do not fit the labels.
pub fn cole_at_k(scores: &[f32], labels: &LabelMatrix) -> Result<Vec<AtK>> {
    [1, 3, 5]
        .into_iter()
        .filter(|&k| k <= labels.n_classes())
        .map(|k| Ok(at_k(scores, labels, k)?))
        .collect()
}

/// Probabilities `[rows, C]` as a float32 `.npy`, rows in the split's dataset order.
fn write_scores(path: &Path, scores: &[f32], rows: usize) -> Result<()> {
    let classes = scores.len().checked_div(rows).unwrap_or(0);
    write_atomic(
        path,
        &mlml_data::formats::npy::f32_bytes(&[rows, classes], scores),
    )?;
    Ok(())
}

/// Hits and misses of the linear probe's feature cache.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheCounts {
    /// Splits read from the cache.
    pub hits: usize,
    /// Splits extracted.
    pub misses: usize,
}

/// What a run ends with, as `report.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The loss.
    pub loss: String,
    /// The training rows' labels protocol, in words.
    pub labels: String,
    /// Epochs done.
    pub epochs_done: usize,
    /// Epochs of the config.
    pub epochs: usize,
    /// The selected epoch.
    pub best_epoch: usize,
    /// Its validation mAP (%).
    pub best_val_map: f64,
    /// How the epoch was selected, in words.
    pub selection: String,
    /// Wall time of this call.
    pub seconds: f64,
    /// Training images per second in steady state (image models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images_per_second: Option<f64>,
    /// Training rows per second in steady state (feature models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_rows_per_second: Option<f64>,
    /// The selected model on the validation rows (absent in reports of mlml before 0.1's
    /// issue 26).
    #[serde(default)]
    pub val: Option<SplitFigures>,
    /// The selected model on the test rows, when there are some.
    pub test: Option<SplitFigures>,
    /// Why the run stopped early.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Images left out (`data.bad_images = "skip"`), with the decoder's messages.
    #[serde(default)]
    pub skipped_images: Vec<String>,
    /// The backend it ran on.
    pub backend: String,
    /// The device it ran on (the devices, comma-separated, of a data-parallel run).
    pub device: String,
    /// The hardware's name as its driver gives it (`"NVIDIA H100 80GB HBM3"`, `"llvmpipe (LLVM
    /// 15.0.6, 256 bits)"`, the CPU's model); empty in reports written before it was recorded.
    #[serde(default)]
    pub adapter: String,
    /// How many devices trained it, data-parallel (1 in reports written before there could be
    /// more).
    #[serde(default = "one_device")]
    pub devices: usize,
    /// What the rows are.
    pub data: String,
    /// The network.
    pub backbone: String,
    /// How it trained.
    pub mode: Mode,
    /// The linear probe's feature cache.
    #[serde(default)]
    pub feature_cache: Option<CacheCounts>,
}

impl Report {
    /// Writes `report.json`.
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write(&self, dir: &RunDir) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("reports serialise");
        write_atomic(&dir.report(), text.as_bytes())?;
        Ok(())
    }
}

fn one_device() -> usize {
    1
}

/// Where a run runs, for its report.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    /// The backend's name.
    pub backend: &'a str,
    /// The device's name (the devices', comma-separated).
    pub device: &'a str,
    /// The hardware's name as its driver gives it: the CPU's model, wgpu's adapter, the CUDA
    /// device's name.
    pub adapter: &'a str,
}

/// An observer that also rewrites the run directory's metrics files as each epoch ends.
struct MetricsFiles<'a> {
    dir: &'a RunDir,
    inner: &'a mut dyn Observer,
}

impl Observer for MetricsFiles<'_> {
    fn batch_done(&mut self, epoch: usize, batch: usize, batches: usize, samples: usize) {
        self.inner.batch_done(epoch, batch, batches, samples);
    }

    fn epoch_done(&mut self, record: &EpochRecord) {
        self.inner.epoch_done(record);
    }

    fn progress_recorded(&mut self, progress: &Progress) {
        if let Err(e) = self.dir.write_metrics(progress) {
            tracing::warn!("mlml: the per-epoch metrics files: {e}");
        }
        self.inner.progress_recorded(progress);
    }
}

/// A display for one phase of a run: its epochs, and whether its batches hold images.
pub type ObserverFor<'a> = dyn Fn(&RunConfig) -> Box<dyn Observer> + 'a;

/// Trains the run of `config` in `dir` (resuming what is there) and writes its report; a
/// `linear-init` run trains its linear phase first, in `dir/linear-phase`. Returns the report and
/// the progress.
///
/// # Errors
/// Data that cannot be read, a run that cannot start or go on, files that cannot be written.
pub fn train_run<B: TrainBackend>(
    config: &RunConfig,
    dir: &RunDir,
    stop_after: Option<usize>,
    devices: &[B::Device],
    placement: Placement<'_>,
    observer: &ObserverFor<'_>,
) -> Result<(Report, Progress)> {
    if devices.is_empty() {
        bail!("no device to train on");
    }
    // Before anything is written: a start that fails leaves no run directory behind.
    config.training.precision.check::<B>(&devices[0])?;
    let from = if config.model.mode == Mode::LinearInit {
        linear_phase::<B>(config, dir, devices, placement, observer)?
    } else {
        Start::default()
    };
    train_phase::<B>(config, dir, stop_after, devices, placement, observer, &from)
}

/// Cole et al.'s linear phase of a `linear-init` run (a run of its own: resumed, or read back
/// when it is done): a linear head on the frozen backbone's features, whose best epoch's layer
/// (folded with the features' standardisation) starts the end-to-end phase, with ROLE's label
/// estimate of that epoch.
fn linear_phase<B: TrainBackend>(
    config: &RunConfig,
    dir: &RunDir,
    devices: &[B::Device],
    placement: Placement<'_>,
    observer: &ObserverFor<'_>,
) -> Result<Start> {
    let phase = config
        .training
        .linear_phase
        .as_ref()
        .context("model.mode = \"linear-init\" needs training.linear_phase")?;
    let linear = RunConfig {
        data: config.data.clone(),
        model: config.model.linear_phase(),
        training: phase.training(&config.training),
    };
    // The run's own config first, so that a run stopped in its linear phase can be resumed.
    dir.write_config(config)?;
    let phase_dir = dir.linear_phase();
    tracing::info!(
        "mlml: linear-init, phase 1 of 2: a linear head on frozen {} features, {} epochs, lr {}, batch {} ({})",
        config.model.backbone.name(),
        phase.epochs,
        phase.lr,
        phase.batch_size,
        phase_dir.root().display()
    );
    train_phase::<B>(
        &linear,
        &phase_dir,
        None,
        devices,
        placement,
        observer,
        &Start::default(),
    )?;
    let classes = phase_dir.read_classes()?;
    let standardization = phase_dir
        .read_standardization()?
        .context("the linear phase's features have no standardization.json")?;
    let (head, progress) = load_best::<B::InnerBackend>(
        phase_dir.root(),
        &linear.model.trained(),
        standardization.mean.len(),
        classes.len(),
        &devices[0],
    )?;
    let Classifier::Mlp(mlp) = head else {
        bail!("the linear phase trained no linear head");
    };
    let layer = &mlp.layers[0];
    let floats = |t: burn::tensor::Tensor<B::InnerBackend, 2>| -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32")
    };
    let weight = floats(layer.weight.val());
    let bias = layer
        .bias
        .as_ref()
        .map(|b| floats(b.val().unsqueeze()))
        .unwrap_or_else(|| vec![0.0; classes.len()]);
    let mut from = Start::from_standardized_linear(
        &weight,
        &bias,
        &standardization.mean,
        &standardization.std,
    );
    from.loss_state = mlml_losses::linear_init_state(&progress.best_loss_state);
    tracing::info!(
        "mlml: linear-init, phase 2 of 2: end to end from the linear phase's epoch {} (val mAP {:.2}){}",
        progress.best_epoch,
        progress.best_val_map,
        if from.loss_state.is_some() { ", with its label estimate" } else { "" }
    );
    Ok(from)
}

/// One phase: the data read and split, the directory written, the loop, the report.
#[allow(clippy::too_many_arguments)]
fn train_phase<B: TrainBackend>(
    config: &RunConfig,
    dir: &RunDir,
    stop_after: Option<usize>,
    devices: &[B::Device],
    placement: Placement<'_>,
    observer: &ObserverFor<'_>,
    from: &Start,
) -> Result<(Report, Progress)> {
    let d = &config.data;
    let t = &config.training;
    // Probing, the feature cache and scoring run on the first device.
    let device = &devices[0];
    let prober = Prober::<B::InnerBackend>::new(d, &config.model, t.seed, t.batch_size, device);
    let splits = d.prepare(prober.as_ref())?;
    let observed = splits.observed_file_labels()?;
    let Splits {
        train: train_set,
        val: val_set,
        test,
        standardization,
        ..
    } = splits;
    // The run directory is written once the data has been read: a start that fails before
    // leaves nothing that would block a re-run.
    dir.write_config(config)?;
    let observed_set = mlml_data::Dataset {
        image_paths: observed.sample_ids().iter().map(PathBuf::from).collect(),
        labels: observed,
        split: Some("train".into()),
        provenance: vec![mlml_data::ProvenanceStep {
            step: "observed-by-run".into(),
            params: serde_json::json!({
                "labels": d.labels.describe(),
                "held_out_rows": "unobserved",
            }),
            report: serde_json::Value::Null,
        }],
    };
    mlml_data::formats::save(&observed_set, &dir.observed_labels())?;
    write_atomic(
        &dir.classes(),
        serde_json::to_string_pretty(train_set.labels().classes())
            .expect("names serialise")
            .as_bytes(),
    )?;
    if let Some(s) = &standardization {
        write_atomic(
            &dir.standardization(),
            serde_json::to_string_pretty(s)
                .expect("statistics serialise")
                .as_bytes(),
        )?;
    }
    if d.selection == SelectionSplit::Test {
        tracing::warn!(
            "mlml: data.selection = \"test\": the epoch is picked on the test rows (the ASL reference's protocol), so the test figures are optimistic"
        );
    }
    tracing::info!(
        "mlml: {} on {} training rows of {} ({} labels) and {} validation rows, {}{}, {} epochs, {} ({}: {})",
        t.loss,
        train_set.len(),
        train_set.kind(),
        d.labels.describe(),
        val_set.len(),
        config.model.backbone.name(),
        if config.model.is_probe() { " (linear probe: frozen features, head trained)" } else { "" },
        t.epochs,
        placement.device,
        placement.backend,
        placement.adapter
    );
    let start = Instant::now();
    let mut display = observer(config);
    let run = crate::train_parallel::<B, AnySource>(
        t,
        &config.model.trained(),
        &train_set,
        &val_set,
        Some(dir.root()),
        stop_after,
        devices,
        &mut MetricsFiles {
            dir,
            inner: display.as_mut(),
        },
        from,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let p = run.progress;
    if p.stopped_early {
        tracing::info!(
            "mlml: stopped after epoch {}: {}",
            p.epochs_done,
            p.stop_reason.as_deref().unwrap_or("early")
        );
    }
    // The selected model's scores, rows in dataset order, kept with the run: those its epoch
    // computed, unless that epoch ran before a resume.
    let val_scores = match run.best_val_scores {
        Some(scores) => scores,
        None => predict(&run.best, &val_set, t.batch_size, device)?,
    };
    write_scores(&dir.val_scores(), &val_scores, val_set.len())?;
    let val = split_figures(&val_scores, val_set.labels())?;
    let test_figures = match &test {
        Some(test) => {
            let scores = predict(&run.best, test, t.batch_size, device)?;
            write_scores(&dir.test_scores(), &scores, test.len())?;
            Some(split_figures(&scores, test.labels())?)
        }
        None => None,
    };
    let mut skipped = train_set.skipped();
    skipped.extend(val_set.skipped());
    if let Some(test) = &test {
        skipped.extend(test.skipped());
    }
    if !skipped.is_empty() {
        tracing::warn!(
            "mlml: {} bad images skipped (data.bad_images = \"skip\"), listed in report.json:",
            skipped.len()
        );
        for line in &skipped {
            tracing::warn!("  {line}");
        }
    }
    dir.write_metrics(&p)?;
    // Steady state: each epoch's first two batches are left out.
    let speed = Some(run.train_samples_per_second);
    let images = config.model.takes_images();
    let report = Report {
        loss: t.loss.clone(),
        labels: d.labels.describe(),
        epochs_done: p.epochs_done,
        epochs: t.epochs,
        best_epoch: p.best_epoch,
        best_val_map: p.best_val_map,
        selection: match d.selection {
            SelectionSplit::HeldOut => "first epoch with the highest validation mAP (sklearn AP) on rows held out of the training file; test figures are that epoch's",
            SelectionSplit::Test => "first epoch with the highest mAP ON THE TEST ROWS (data.selection = \"test\", the ASL reference's protocol): the test figures are optimistic",
        }
        .into(),
        seconds,
        train_images_per_second: speed.filter(|_| images),
        train_rows_per_second: speed.filter(|_| !images),
        val: Some(val),
        test: test_figures,
        stop_reason: p.stop_reason.clone(),
        skipped_images: skipped,
        backend: placement.backend.into(),
        device: placement.device.into(),
        adapter: placement.adapter.into(),
        devices: devices.len(),
        data: train_set.kind().into(),
        backbone: config.model.backbone.name().into(),
        mode: config.model.mode,
        feature_cache: prober.as_ref().map(|p| CacheCounts {
            hits: p.hits.get(),
            misses: p.misses.get(),
        }),
    };
    report.write(dir)?;
    Ok((report, p))
}

/// The rows `predict` scores: a feature matrix, a `u8` image array, or image files, as the
/// run was trained on; standardised as its training rows were.
///
/// # Errors
/// Inputs of another kind or shape than the run's, or files that cannot be read.
pub fn prediction_rows<B: ConvBackend>(
    dir: &RunDir,
    config: &RunConfig,
    inputs: &[PathBuf],
    classes: Vec<String>,
    device: &B::Device,
) -> Result<(AnySource, Vec<String>)> {
    let d = &config.data;
    let standardization = dir.read_standardization()?;
    let single = || -> Result<&PathBuf> {
        match inputs {
            [one] => Ok(one),
            _ => bail!(
                "this run was trained on {}: give one .npy file",
                if d.train_features.is_some() {
                    "feature vectors"
                } else {
                    "an image array"
                }
            ),
        }
    };
    let t = &config.training;
    let prober = Prober::<B>::new(d, &config.model, t.seed, t.batch_size, device);
    let mut rows = if d.train_features.is_some() {
        let path = single()?;
        let x = mlml_data::formats::npy::read_f32(path)?;
        let dim = standardization.as_ref().map_or(0, |s| s.mean.len());
        if x.shape.len() != 2 || x.shape[1] != dim {
            bail!(
                "{}: features of shape {:?}, the run was trained on {dim} features per row",
                path.display(),
                x.shape
            );
        }
        let n = x.shape[0];
        let ids = (0..n).map(|i| format!("row{i}")).collect();
        AnySource::Features(FeatureSet {
            features: x.values,
            dim,
            labels: LabelMatrix::unobserved(classes, ids)?,
        })
    } else if d.train_images.is_some() {
        AnySource::Array(crate::ImageArray::from_npy(single()?, None, classes)?)
    } else {
        let ids = inputs.iter().map(|p| p.display().to_string()).collect();
        AnySource::Files(d.image_files(inputs.to_vec(), LabelMatrix::unobserved(classes, ids)?)?)
    };
    let names = match &rows {
        AnySource::Files(_) => inputs.iter().map(|p| p.display().to_string()).collect(),
        _ => (0..rows.len()).map(|i| i.to_string()).collect(),
    };
    if let Some(prober) = &prober {
        rows = prober.features(rows, "new")?;
    }
    if let Some(s) = &standardization {
        s.apply(&mut rows);
    }
    Ok((rows, names))
}
