//! `mlml`: train on the embedded feature sets and inspect the losses.
//!
//! Exit codes: 0 done, 1 error, 2 usage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::{Autodiff, Flex};
use clap::{Parser, Subcommand};
use mlml_data::formats::ZeroMeans;
use mlml_data::generate::{
    drop_positives, single_positive, spml_split, DropParams, SinglePositiveParams, SplitParams,
};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{self, Preset, LOSSES};
use mlml_metrics::{
    evaluate, mean_average_precision, ApDefinition, Evaluation, MapOptions, Selection,
};
use mlml_train::features::{
    load_best, predict, train_features_observed, FeatureSet, FeatureTraining, Progress,
};
use serde::{Deserialize, Serialize};

mod chart;

#[derive(Parser)]
#[command(
    name = "mlml",
    version,
    about = "Multi-label classification with missing labels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train from a TOML config (feature datasets; images come with the image pipeline).
    Train {
        /// The experiment's config (`configs/...toml`).
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. `--set training.lr=0.01` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The run directory (must not hold a run yet; see --resume).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many epochs in all (the run can be resumed).
        #[arg(long)]
        stop_after_epochs: Option<usize>,
    },
    /// Continue a run from its last checkpoint, with the config it was started with.
    Resume {
        /// The run directory.
        run_dir: PathBuf,
        /// Stop after this many epochs in all.
        #[arg(long)]
        stop_after_epochs: Option<usize>,
    },
    /// A PNG bar chart of the mAP per loss of a results file (`docs/results/<setting>.json`,
    /// as `cargo xtask reproduce` writes it), with error bars over seeds.
    Chart {
        /// A JSON list of rows with `loss`, `map` and optionally `map_std`.
        #[arg(long)]
        results: PathBuf,
        /// The chart's title.
        #[arg(long, default_value = "test mAP per loss")]
        title: String,
        /// The PNG to write.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Evaluate a run's selected model (the best validation epoch) on its validation or test
    /// split: mAP in both definitions, CP/CR/CF1 and OP/OR/OF1 at 0.5 and at top-3, per class.
    Eval {
        /// The run directory.
        run_dir: PathBuf,
        /// Which split.
        #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
        split: EvalSplit,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Scores of new feature rows by a run's selected model: the labels over the threshold and
    /// the top k, per row.
    Predict {
        /// The run directory.
        run_dir: PathBuf,
        /// An `[n, d]` feature matrix (`.npy`) with the run's feature width.
        features: PathBuf,
        /// Labels with a probability above this are predicted.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// How many of the highest-scoring labels to list.
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A table of runs' figures (best epoch, validation and test mAP, CF1, OF1, seconds), and a
    /// PNG bar chart of their mAP with `--plot`.
    Compare {
        /// Run directories (each with its report.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also draw the runs' test mAP (validation mAP when a run has no test split) to a PNG.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Where a run stands: its config, epochs done, best epoch and the state of its loss.
    Inspect {
        /// The run directory.
        run_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The registered losses, their defaults and their per-dataset presets.
    Losses {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum EvalSplit {
    /// The 20 % of the training file held out for model selection.
    Val,
    /// The config's test files.
    Test,
}

/// A run's config: the data and how to train.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunConfig {
    data: DataConfig,
    #[serde(default)]
    training: FeatureTraining,
}

/// Which labels the training rows keep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LabelProtocol {
    /// Every label (the full-label upper bound).
    Full,
    /// One observed positive per row, uniformly chosen (ChaCha8 with `label_seed`).
    SinglePositive,
    /// This fraction of the positives kept (at least one per row), the rest unobserved, as
    /// the Hill / SPLC partial-label settings ("40 % of positives left"): `{ partial = 0.4 }`.
    Partial(f64),
}

impl LabelProtocol {
    fn describe(self) -> String {
        match self {
            LabelProtocol::Full => "full".into(),
            LabelProtocol::SinglePositive => "single-positive".into(),
            LabelProtocol::Partial(keep) => {
                format!("partial ({:.0} % of positives kept)", 100.0 * keep)
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataConfig {
    /// `[n, d]` feature matrix (`.npy`).
    train_features: PathBuf,
    /// `[n, C]` full 0/1 labels (`.npy`).
    train_labels: PathBuf,
    /// One class name per line.
    classes: PathBuf,
    #[serde(default = "single_positive_protocol")]
    labels: LabelProtocol,
    #[serde(default)]
    label_seed: u64,
    /// `[m, d]` test features (`.npy`); with `test_labels`, the report gives the test figures
    /// of the selected epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    test_features: Option<PathBuf>,
    /// `[m, C]` full 0/1 test labels (`.npy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    test_labels: Option<PathBuf>,
    /// Fraction of the training file held out for validation (the single-positive split).
    #[serde(default = "default_val_fraction")]
    val_fraction: f64,
    #[serde(default = "default_split_seed")]
    split_seed: u64,
}

fn single_positive_protocol() -> LabelProtocol {
    LabelProtocol::SinglePositive
}

fn default_val_fraction() -> f64 {
    0.2
}

fn default_split_seed() -> u64 {
    1200
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mlml: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            set,
            out,
            stop_after_epochs,
        } => {
            let resolved = read_config(&config, &set)?;
            if out.join("config.toml").exists() {
                bail!(
                    "{} already holds a run; continue it with `mlml resume {}` or choose another --out",
                    out.display(),
                    out.display()
                );
            }
            std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
            let text = toml::to_string_pretty(&resolved).context("writing the resolved config")?;
            mlml_data::formats::write_atomic(&out.join("config.toml"), text.as_bytes())?;
            train(&resolved, &out, stop_after_epochs)
        }
        Command::Resume {
            run_dir,
            stop_after_epochs,
        } => {
            let (_, resolved) = open_run(&run_dir)?;
            train(&resolved, &run_dir, stop_after_epochs)
        }
        Command::Chart {
            results,
            title,
            output,
        } => results_chart(&results, &title, &output),
        Command::Eval {
            run_dir,
            split,
            json,
        } => eval(&run_dir, split, json),
        Command::Predict {
            run_dir,
            features,
            threshold,
            top_k,
            json,
        } => predict_cmd(&run_dir, &features, threshold, top_k, json),
        Command::Compare { runs, json, plot } => compare(&runs, json, plot.as_deref()),
        Command::Inspect { run_dir, json } => inspect(&run_dir, json),
        Command::Losses { json } => losses(json),
    }
}

/// Reads a config, applies `--set` overrides, and checks every key.
fn read_config(path: &Path, overrides: &[String]) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--set {item}: expected KEY=VALUE"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut node = &mut table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set {key}: '{part}' is not a table"))?;
        }
        node.insert(parts[parts.len() - 1].to_string(), value);
    }
    let config: RunConfig = toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("{}: bad config", path.display()))?;
    Ok(config)
}

/// A run directory's config file and the config it holds.
fn open_run(run_dir: &Path) -> Result<(PathBuf, RunConfig)> {
    let path = run_dir.join("config.toml");
    if !path.is_file() {
        bail!("{}: no run here (no config.toml)", run_dir.display());
    }
    let config = read_config(&path, &[])?;
    Ok((path, config))
}

fn load_classes(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// The training rows' observed labels under the config's protocol.
fn observed_labels(d: &DataConfig, full: &LabelMatrix) -> Result<LabelMatrix> {
    Ok(match d.labels {
        LabelProtocol::Full => full.clone(),
        LabelProtocol::SinglePositive => {
            let params = SinglePositiveParams {
                seed: d.label_seed,
                ..Default::default()
            };
            single_positive(full, &params)?.0
        }
        LabelProtocol::Partial(keep) => {
            if !(keep > 0.0 && keep <= 1.0) {
                bail!("data.labels: the partial fraction of positives kept must be in (0, 1], got {keep}");
            }
            let params = DropParams {
                ratio: 1.0 - keep,
                min_positives: 1,
                observe_negatives: 0.0,
                seed: d.label_seed,
            };
            drop_positives(full, &params)?.0
        }
    })
}

/// What every evaluation of a model reports: mAP in both AP definitions and P/R/F1 at 0.5
/// (and top-3), per class.
struct Figures {
    /// sklearn's AP (the single-positive line's definition), with the P/R/F1 tables.
    evaluation: Evaluation,
    /// mAP (%), the ASL code's ranked AP.
    map_ranked: f64,
}

fn figures(scores: &[f32], labels: &LabelMatrix) -> Result<Figures> {
    let options = |definition| MapOptions {
        definition,
        skip_empty: false,
    };
    Ok(Figures {
        evaluation: evaluate(
            scores,
            labels,
            options(ApDefinition::Sklearn),
            Selection::default(),
        )?,
        map_ranked: mean_average_precision(scores, labels, options(ApDefinition::Ranked))?.map,
    })
}

/// Test-split figures of one model.
#[derive(Clone, Debug, Serialize)]
struct TestFigures {
    /// mAP (%), sklearn's AP.
    map: f64,
    /// mAP (%), the ASL code's ranked AP.
    map_ranked: f64,
    /// Per-class F1 (%) at threshold 0.5.
    cf1: f64,
    /// Overall F1 (%) at threshold 0.5.
    of1: f64,
    rows: usize,
}

fn test_figures(scores: &[f32], labels: &LabelMatrix) -> Result<TestFigures> {
    let f = figures(scores, labels)?;
    Ok(TestFigures {
        map: f.evaluation.map.map,
        map_ranked: f.map_ranked,
        cf1: f.evaluation.threshold.cf1,
        of1: f.evaluation.threshold.of1,
        rows: labels.n_samples(),
    })
}

/// The splits of a run: training rows with the protocol's labels, validation and test rows
/// with full labels, all standardised with the training rows' statistics.
struct Splits {
    train: FeatureSet,
    val: FeatureSet,
    test: Option<FeatureSet>,
    /// The training rows' per-feature mean and standard deviation.
    standardization: (Vec<f32>, Vec<f32>),
}

fn prepare(config: &RunConfig) -> Result<Splits> {
    let d = &config.data;
    let classes = load_classes(&d.classes)?;
    let all = FeatureSet::from_npy(
        &d.train_features,
        &d.train_labels,
        classes.clone(),
        ZeroMeans::Negative,
    )?;
    let test = match (&d.test_features, &d.test_labels) {
        (Some(x), Some(y)) => Some(FeatureSet::from_npy(x, y, classes, ZeroMeans::Negative)?),
        (None, None) => None,
        _ => bail!("data.test_features and data.test_labels go together: give both or neither"),
    };
    let split = spml_split(
        all.len(),
        &SplitParams {
            val_frac: d.val_fraction,
            seed: d.split_seed,
            ..Default::default()
        },
    )?;
    let (mut train_set, mut val_set) = (all.select(&split.train), all.select(&split.val));
    let (mean, std) = train_set.standardization();
    train_set.standardize(&mean, &std);
    val_set.standardize(&mean, &std);
    let test = test.map(|mut t| {
        t.standardize(&mean, &std);
        t
    });
    if test.as_ref().is_some_and(|t| t.dim != train_set.dim) {
        bail!(
            "{}: the test features have another width than the training features",
            d.test_features
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
    }
    let train = train_set.with_labels(observed_labels(d, &train_set.labels)?)?;
    Ok(Splits {
        train,
        val: val_set,
        test,
        standardization: (mean, std),
    })
}

fn train(config: &RunConfig, out: &Path, stop_after: Option<usize>) -> Result<()> {
    let d = &config.data;
    let Splits {
        train: train_set,
        val: val_set,
        test,
        ..
    } = prepare(config)?;
    let t = &config.training;
    eprintln!(
        "mlml: {} on {} training rows ({} labels) and {} validation rows, {} epochs, cpu (flex)",
        t.loss,
        train_set.len(),
        d.labels.describe(),
        val_set.len(),
        t.epochs
    );
    let start = Instant::now();
    let run = train_features_observed::<Autodiff<Flex>>(
        t,
        &train_set,
        &val_set,
        Some(out),
        stop_after,
        &Default::default(),
        &mut |e| {
            eprintln!(
                "mlml: epoch {}/{}: train loss {:.5}, val mAP {:.2}{}",
                e.epoch,
                t.epochs,
                e.train_loss,
                e.val_map,
                e.loss_note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let p = &run.progress;
    let epochs_now = p.epochs_done - run.resumed_at.min(p.epochs_done);
    let test_figures = match &test {
        Some(test) => Some(test_figures(
            &predict(&run.best, test, &Default::default()),
            &test.labels,
        )?),
        None => None,
    };
    write_outputs(
        out,
        config,
        p,
        &serde_json::json!({
            "seconds": seconds,
            "train_rows_per_second": (epochs_now * train_set.len()) as f64 / seconds.max(1e-9),
            "test": test_figures,
        }),
    )?;
    println!(
        "{}: {} of {} epochs; best validation mAP {:.2} at epoch {}{} ({})",
        out.display(),
        p.epochs_done,
        t.epochs,
        p.best_val_map,
        p.best_epoch,
        test_figures
            .as_ref()
            .map(|f| format!(
                "; test mAP {:.2}, CF1 {:.2}, OF1 {:.2}",
                f.map, f.cf1, f.of1
            ))
            .unwrap_or_default(),
        out.join("report.json").display()
    );
    Ok(())
}

fn write_outputs(
    out: &Path,
    config: &RunConfig,
    progress: &Progress,
    extra: &serde_json::Value,
) -> Result<()> {
    let mut jsonl = Vec::new();
    let mut csv = String::from("epoch,train_loss,val_map,val_map_ranked\n");
    for epoch in &progress.epochs {
        serde_json::to_writer(&mut jsonl, epoch)?;
        jsonl.push(b'\n');
        csv.push_str(&format!(
            "{},{},{},{}\n",
            epoch.epoch, epoch.train_loss, epoch.val_map, epoch.val_map_ranked
        ));
    }
    mlml_data::formats::write_atomic(&out.join("metrics.jsonl"), &jsonl)?;
    mlml_data::formats::write_atomic(&out.join("metrics.csv"), csv.as_bytes())?;
    let per_epoch = |f: fn(&mlml_train::features::EpochRecord) -> f64| {
        progress.epochs.iter().map(f).collect::<Vec<f64>>()
    };
    chart::epoch_panels(
        &out.join("curves.png"),
        &format!(
            "{} ({})",
            config.training.loss,
            config.data.labels.describe()
        ),
        &[
            chart::Curve {
                name: "train loss",
                values: per_epoch(|e| e.train_loss),
            },
            chart::Curve {
                name: "validation mAP (%)",
                values: per_epoch(|e| e.val_map),
            },
        ],
    )?;
    let mut report = serde_json::json!({
        "loss": config.training.loss,
        "labels": config.data.labels.describe(),
        "epochs_done": progress.epochs_done,
        "epochs": config.training.epochs,
        "best_epoch": progress.best_epoch,
        "best_val_map": progress.best_val_map,
        "selection": "first epoch with the highest validation mAP (sklearn AP); test figures are that epoch's",
        "backend": "flex",
        "device": "cpu",
    });
    if let (Some(report), Some(extra)) = (report.as_object_mut(), extra.as_object()) {
        report.extend(extra.clone());
    }
    mlml_data::formats::write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(())
}

fn eval(run_dir: &Path, split: EvalSplit, json: bool) -> Result<()> {
    let (config_path, config) = open_run(run_dir)?;
    let splits = prepare(&config)?;
    let set = match split {
        EvalSplit::Val => &splits.val,
        EvalSplit::Test => splits.test.as_ref().with_context(|| {
            format!(
                "{}: the run has no test split (data.test_features / data.test_labels); use --split val",
                config_path.display()
            )
        })?,
    };
    let device = Default::default();
    let (model, progress) = load_best::<Flex>(
        run_dir,
        &config.training,
        splits.train.dim,
        splits.train.labels.n_classes(),
        &device,
    )?;
    let Figures {
        evaluation: sklearn,
        map_ranked,
    } = figures(&predict(&model, set, &device), &set.labels)?;
    let split_name = match split {
        EvalSplit::Val => "val",
        EvalSplit::Test => "test",
    };
    if json {
        return print(&serde_json::to_string_pretty(&serde_json::json!({
            "run": run_dir.display().to_string(),
            "split": split_name,
            "rows": set.len(),
            "best_epoch": progress.best_epoch,
            "map": sklearn.map.map,
            "map_ranked": map_ranked,
            "evaluation": sklearn,
        }))?);
    }
    print(&format!(
        "{} on {split_name} ({} rows), the model of epoch {} (best validation mAP):\n\
         mAP {:.2} (sklearn AP) / {:.2} (ranked AP)\n{sklearn}",
        run_dir.display(),
        set.len(),
        progress.best_epoch,
        sklearn.map.map,
        map_ranked,
    ))
}

fn predict_cmd(
    run_dir: &Path,
    features: &Path,
    threshold: f32,
    top_k: usize,
    json: bool,
) -> Result<()> {
    let (_, config) = open_run(run_dir)?;
    let splits = prepare(&config)?;
    let x = mlml_data::formats::npy::read_f32(features)?;
    if x.shape.len() != 2 || x.shape[1] != splits.train.dim {
        bail!(
            "{}: features of shape {:?}, the run was trained on {} features per row",
            features.display(),
            x.shape,
            splits.train.dim
        );
    }
    let classes = splits.train.labels.classes().to_vec();
    let n = x.shape[0];
    let unlabelled =
        LabelMatrix::unobserved(classes.clone(), (0..n).map(|i| format!("row{i}")).collect())?;
    let mut set = FeatureSet {
        features: x.values,
        dim: splits.train.dim,
        labels: unlabelled,
    };
    let (mean, std) = &splits.standardization;
    set.standardize(mean, std);
    let device = Default::default();
    let (model, _) = load_best::<Flex>(run_dir, &config.training, set.dim, classes.len(), &device)?;
    let scores = predict(&model, &set, &device);
    let c = classes.len();
    // Per row: the labels over the threshold and the top k, as class indices.
    let picks: Vec<(Vec<usize>, Vec<usize>)> = scores
        .chunks_exact(c)
        .map(|row| {
            let mut order: Vec<usize> = (0..c).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order.truncate(top_k);
            ((0..c).filter(|&j| row[j] > threshold).collect(), order)
        })
        .collect();
    let score = |i: usize, j: usize| scores[i * c + j];
    if json {
        let rows: Vec<serde_json::Value> = picks
            .iter()
            .enumerate()
            .map(|(i, (predicted, top))| {
                serde_json::json!({
                    "row": i,
                    "predicted": predicted.iter().map(|&j| &classes[j]).collect::<Vec<_>>(),
                    "top": top
                        .iter()
                        .map(|&j| serde_json::json!({"class": classes[j], "score": score(i, j)}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        return print(&serde_json::to_string_pretty(&rows)?);
    }
    let mut text = format!("row\tpredicted (p > {threshold})\ttop {top_k}");
    for (i, (predicted, top)) in picks.iter().enumerate() {
        let predicted: Vec<&str> = predicted.iter().map(|&j| classes[j].as_str()).collect();
        let top: Vec<String> = top
            .iter()
            .map(|&j| format!("{}:{:.3}", classes[j], score(i, j)))
            .collect();
        text.push_str(&format!(
            "\n{i}\t{}\t{}",
            predicted.join(","),
            top.join(" ")
        ));
    }
    print(&text)
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// Writes to stdout; a reader that stops early (`mlml ... | head`) is not an error.
fn print(text: &str) -> Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn compare(runs: &[PathBuf], json: bool, plot: Option<&Path>) -> Result<()> {
    let mut rows = Vec::new();
    for run in runs {
        let path = run.join("report.json");
        if !path.is_file() {
            bail!(
                "{}: no report.json (the run has not finished an epoch, or this is not a run directory)",
                run.display()
            );
        }
        let report = read_json(&path)?;
        let figure = |key: &str| report["test"][key].as_f64();
        rows.push(serde_json::json!({
            "run": run.display().to_string(),
            "loss": report["loss"],
            "labels": report["labels"],
            "epochs_done": report["epochs_done"],
            "best_epoch": report["best_epoch"],
            "best_val_map": report["best_val_map"],
            "test_map": figure("map"),
            "test_cf1": figure("cf1"),
            "test_of1": figure("of1"),
            "seconds": report["seconds"],
        }));
    }
    if let Some(plot) = plot {
        let bars: Vec<chart::Bar> = rows
            .iter()
            .map(|r| chart::Bar {
                label: r["run"].as_str().unwrap_or_default().to_string(),
                value: r["test_map"]
                    .as_f64()
                    .or_else(|| r["best_val_map"].as_f64())
                    .unwrap_or(f64::NAN),
                std: 0.0,
            })
            .collect();
        chart::bar_chart(
            plot,
            "mAP per run",
            "test mAP (%; validation without a test split)",
            &bars,
        )?;
    }
    if json {
        return print(&serde_json::to_string_pretty(&rows)?);
    }
    let number = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    let mut table =
        String::from("run\tloss\tlabels\tbest epoch\tval mAP\ttest mAP\tCF1\tOF1\tseconds");
    for r in &rows {
        table.push_str(&format!(
            "\n{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}",
            r["run"].as_str().unwrap_or_default(),
            r["loss"].as_str().unwrap_or_default(),
            r["labels"].as_str().unwrap_or_default(),
            r["best_epoch"],
            r["epochs_done"],
            number(&r["best_val_map"]),
            number(&r["test_map"]),
            number(&r["test_cf1"]),
            number(&r["test_of1"]),
            number(&r["seconds"]),
        ));
    }
    print(&table)
}

fn inspect(run_dir: &Path, json: bool) -> Result<()> {
    let (config_path, config) = open_run(run_dir)?;
    let progress_path = run_dir.join("progress.json");
    let progress: Progress = if progress_path.is_file() {
        serde_json::from_value(read_json(&progress_path)?)
            .with_context(|| format!("{}: not a progress file", progress_path.display()))?
    } else {
        Progress::default()
    };
    let state = &progress.loss_state;
    let tensors: Vec<serde_json::Value> = state
        .tensors
        .iter()
        .map(|(name, t)| serde_json::json!({ "name": name, "shape": t.shape }))
        .collect();
    let summary = serde_json::json!({
        "run": run_dir.display().to_string(),
        "config": config,
        "epochs_done": progress.epochs_done,
        "epochs": config.training.epochs,
        "best_epoch": progress.best_epoch,
        "best_val_map": progress.best_val_map,
        "checkpoint": run_dir.join("checkpoint.bin").is_file(),
        "loss_state": { "loss": state.loss, "values": state.values, "tensors": tensors },
    });
    if json {
        return print(&serde_json::to_string_pretty(&summary)?);
    }
    let mut text = format!(
        "{}: {} on {} labels, {} of {} epochs done{}",
        run_dir.display(),
        config.training.loss,
        config.data.labels.describe(),
        progress.epochs_done,
        config.training.epochs,
        if progress.best_epoch > 0 {
            format!(
                "; best validation mAP {:.2} at epoch {}",
                progress.best_val_map, progress.best_epoch
            )
        } else {
            String::new()
        }
    );
    if state.is_empty() {
        text.push_str("\nloss state: none (a stateless loss, or no epoch done)");
    } else {
        text.push_str(&format!(
            "\nloss state ({}): values {}",
            state.loss, state.values
        ));
        for (name, t) in &state.tensors {
            text.push_str(&format!("\n  tensor {name} {}", serde_json::json!(t.shape)));
        }
    }
    text.push_str(&format!(
        "\nconfig ({}):\n{}",
        config_path.display(),
        toml::to_string_pretty(&config).context("writing the config")?
    ));
    print(text.trim_end())
}

fn results_chart(results: &Path, title: &str, output: &Path) -> Result<()> {
    let rows = read_json(results)?;
    let bars = rows
        .as_array()
        .with_context(|| format!("{}: expected a JSON list of rows", results.display()))?
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let field = |key: &str| row[key].as_f64();
            Ok(chart::Bar {
                label: row["loss"]
                    .as_str()
                    .with_context(|| format!("{}: row {i} has no \"loss\"", results.display()))?
                    .to_string(),
                value: field("map").with_context(|| {
                    format!("{}: row {i} has no number \"map\"", results.display())
                })?,
                std: field("map_std").unwrap_or(0.0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    chart::bar_chart(output, title, "test mAP (%)", &bars)
}

fn losses(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for info in LOSSES {
        let mut presets = serde_json::Map::new();
        for preset in Preset::ALL {
            let values = registry::preset_for(info.name, preset)?;
            if !values.is_empty() {
                presets.insert(preset.name().into(), serde_json::to_value(values)?);
            }
        }
        rows.push(serde_json::json!({
            "name": info.name,
            "summary": info.summary,
            "reduction": info.reduction,
            "needs": info.needs,
            "defaults": registry::resolved_config(info.name, None)?,
            "presets": presets,
        }));
    }
    if json {
        return print(&serde_json::to_string_pretty(&rows)?);
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{:<8} {:<58} {:<9} defaults {}{}",
                r["name"].as_str().unwrap_or_default(),
                r["summary"].as_str().unwrap_or_default(),
                r["reduction"].as_str().unwrap_or_default(),
                r["defaults"],
                match r["presets"].as_object() {
                    Some(p) if !p.is_empty() => format!(
                        "; presets: {}",
                        p.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    _ => String::new(),
                }
            )
        })
        .collect();
    print(&lines.join("\n"))
}
