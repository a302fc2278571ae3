//! `mlml`: train on the embedded feature sets and inspect the losses.
//!
//! Exit codes: 0 done, 1 error, 2 usage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use burn::backend::{Autodiff, Flex};
use clap::{Parser, Subcommand};
use mlml_data::formats::ZeroMeans;
use mlml_data::generate::{single_positive, spml_split, SinglePositiveParams, SplitParams};
use mlml_losses::registry::{self, Preset, LOSSES};
use mlml_train::features::{train_features, FeatureSet, FeatureTraining, Progress};
use serde::{Deserialize, Serialize};

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
    /// The registered losses, their defaults and their per-dataset presets.
    Losses {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LabelProtocol {
    /// Every label (the full-label upper bound).
    Full,
    /// One observed positive per row, uniformly chosen (ChaCha8 with `label_seed`).
    SinglePositive,
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
            let path = run_dir.join("config.toml");
            if !path.is_file() {
                bail!("{}: no run here (no config.toml)", run_dir.display());
            }
            let resolved = read_config(&path, &[])?;
            train(&resolved, &run_dir, stop_after_epochs)
        }
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

fn load_classes(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

fn train(config: &RunConfig, out: &Path, stop_after: Option<usize>) -> Result<()> {
    let d = &config.data;
    let all = FeatureSet::from_npy(
        &d.train_features,
        &d.train_labels,
        load_classes(&d.classes)?,
        ZeroMeans::Negative,
    )?;
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
    if d.labels == LabelProtocol::SinglePositive {
        let params = SinglePositiveParams {
            seed: d.label_seed,
            ..Default::default()
        };
        let (observed, _) = single_positive(&train_set.labels, &params)?;
        train_set = train_set.with_labels(observed)?;
    }
    let t = &config.training;
    eprintln!(
        "mlml: {} on {} training rows ({} labels) and {} validation rows, {} epochs, cpu (flex)",
        t.loss,
        train_set.len(),
        match d.labels {
            LabelProtocol::Full => "full",
            LabelProtocol::SinglePositive => "single-positive",
        },
        val_set.len(),
        t.epochs
    );
    let run = train_features::<Autodiff<Flex>>(
        t,
        &train_set,
        &val_set,
        Some(out),
        stop_after,
        &Default::default(),
    )?;
    write_outputs(out, config, &run.progress)?;
    let p = &run.progress;
    println!(
        "{}: {} of {} epochs; best validation mAP {:.2} at epoch {} ({})",
        out.display(),
        p.epochs_done,
        t.epochs,
        p.best_val_map,
        p.best_epoch,
        out.join("report.json").display()
    );
    Ok(())
}

fn write_outputs(out: &Path, config: &RunConfig, progress: &Progress) -> Result<()> {
    let mut jsonl = Vec::new();
    for epoch in &progress.epochs {
        serde_json::to_writer(&mut jsonl, epoch)?;
        jsonl.push(b'\n');
    }
    mlml_data::formats::write_atomic(&out.join("metrics.jsonl"), &jsonl)?;
    let report = serde_json::json!({
        "loss": config.training.loss,
        "epochs_done": progress.epochs_done,
        "epochs": config.training.epochs,
        "best_epoch": progress.best_epoch,
        "best_val_map": progress.best_val_map,
        "selection": "first epoch with the highest validation mAP (sklearn AP)",
        "backend": "flex",
        "device": "cpu",
    });
    mlml_data::formats::write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(())
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
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&rows)?)
    } else {
        rows.iter().try_for_each(|r| {
            writeln!(
                stdout,
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
    };
    match written {
        // A reader that stops early (`mlml losses | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
