//! `mlml`: train on the embedded feature sets and inspect the losses.
//!
//! Exit codes: 0 done, 1 error, 2 usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mlml_losses::registry::{self, Preset, LOSSES};
use mlml_train::{Observer, TrainBackend};

mod backend;
mod bench;
mod chart;
mod display;
mod grid;
mod scoring;
mod stdout;
mod suggest;

use scoring::{open_run, EvalSplit};
use stdout::print;

use backend::{dispatch, Device, Job, Placement};

use mlml_train::run::{self, RunDir};
use mlml_train::run_config::{dry_run_json, read_config, RunConfig};

/// mimalloc keeps freed large blocks for reuse, where glibc unmaps every buffer above 32 MiB
/// (a 448 px batch) and the next one faults its pages in again (`docs/benchmarks.md`, image
/// pipeline); `main` tells it to keep them across training steps.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

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
    /// Train from a TOML config: feature vectors, an image array or image files.
    Train {
        /// The experiment's config (`configs/...toml`).
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, e.g. `--set training.lr=0.01` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The run directory. It must not hold a run yet: continue one with `mlml resume RUN`.
        #[arg(long, required_unless_present = "dry_run")]
        out: Option<PathBuf>,
        /// Print the fully resolved run (every config key, and the loss's hyperparameters
        /// after its defaults, preset and overrides) and exit without reading any data.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print JSON.
        #[arg(long, requires = "dry_run")]
        json: bool,
        /// Stop after this many epochs in all (the run can be resumed).
        #[arg(long)]
        stop_after_epochs: Option<usize>,
        /// Where to run: cpu (burn's Flex backend), or wgpu, wgpu:N, cuda, cuda:N in a binary
        /// built with that feature (N: which GPU; wgpu alone takes its default adapter).
        /// Default: the config's training.devices, else cpu.
        #[arg(long)]
        device: Option<Device>,
        /// Train data-parallel on these devices of one backend, e.g. cuda:0,cuda:1 (or
        /// cpu,cpu): each takes its shard of every batch (training.batch_size stays the whole
        /// batch) and the gradients are summed across them. Overrides training.devices.
        #[arg(long, value_delimiter = ',', conflicts_with = "device")]
        devices: Option<Vec<Device>>,
    },
    /// Continue a run from its last checkpoint, with the config it was started with.
    Resume {
        /// The run directory.
        run_dir: PathBuf,
        /// Stop after this many epochs in all.
        #[arg(long)]
        stop_after_epochs: Option<usize>,
        /// Where to run: cpu (burn's Flex backend), or wgpu, wgpu:N, cuda, cuda:N in a binary
        /// built with that feature (N: which GPU; wgpu alone takes its default adapter).
        #[arg(long)]
        device: Option<Device>,
        /// Continue data-parallel on these devices (see `mlml train --devices`).
        #[arg(long, value_delimiter = ',', conflicts_with = "device")]
        devices: Option<Vec<Device>>,
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
    /// split: mAP in both definitions, CP/CR/CF1 and OP/OR/OF1 at the threshold and at top-3,
    /// precision and recall at top-1, 3 and 5 (Cole et al.'s), per class.
    Eval {
        /// The run directory.
        run_dir: PathBuf,
        /// Which split.
        #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
        split: EvalSplit,
        /// A label is predicted when its probability is above this.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where to run: cpu (burn's Flex backend), or wgpu, wgpu:N, cuda, cuda:N in a binary
        /// built with that feature (N: which GPU; wgpu alone takes its default adapter).
        #[arg(long, default_value = "cpu")]
        device: Device,
    },
    /// Rank the entries a run's training labels left unobserved by its selected model: the
    /// likeliest missing positives first (or, with --negatives, the surest negatives), as a TSV
    /// `row image class score rank` for review and `mlml-data review apply`.
    Suggest {
        #[command(flatten)]
        args: suggest::SuggestArgs,
        /// Where to run: cpu (burn's Flex backend), or wgpu, wgpu:N, cuda, cuda:N in a binary
        /// built with that feature (N: which GPU; wgpu alone takes its default adapter).
        #[arg(long, default_value = "cpu")]
        device: Device,
    },
    /// Scores of new inputs by a run's selected model: the labels over the threshold and the
    /// top k, per row.
    Predict {
        /// The run directory.
        run_dir: PathBuf,
        /// Image files and folders of them (a run trained on image files; a folder's .jpg,
        /// .jpeg and .png files, recursively, in path order), or one `.npy` file: an `[n, d]`
        /// feature matrix or a `u8` image array, as the run was trained on.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Labels with a probability above this are predicted.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// How many of the highest-scoring labels to list.
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also draw the inputs (up to 48) with their top labels and scores (a PNG).
        #[arg(long)]
        grid: Option<PathBuf>,
        /// Where to run: cpu (burn's Flex backend), or wgpu, wgpu:N, cuda, cuda:N in a binary
        /// built with that feature (N: which GPU; wgpu alone takes its default adapter).
        #[arg(long, default_value = "cpu")]
        device: Device,
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
    /// Time an image backbone's training step (forward, AN loss, backward, Adam, as `mlml
    /// train` takes it) and its inference on a device: images per second.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        /// Where to run, as for eval.
        #[arg(long, default_value = "cpu")]
        device: Device,
    },
    /// The registered losses, their defaults and their per-dataset presets.
    Losses {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    mlml_ops::allocator::keep_freed_memory();
    let cli = Cli::parse();
    // Progress and notes go to stderr as plain lines, filtered by RUST_LOG (default `info`;
    // `RUST_LOG=warn` keeps only warnings, `RUST_LOG=mlml=debug` adds a line per batch).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // burn's GPU runtimes log each device they open at info level.
                tracing_subscriber::EnvFilter::new("info,cubecl=warn,wgpu=warn,naga=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .init();
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
            dry_run,
            json,
            stop_after_epochs,
            device,
            devices,
        } => {
            let resolved = read_config(&config, &set)?;
            if dry_run {
                return print_dry_run(&resolved, json);
            }
            let out = out.expect("clap requires --out without --dry-run");
            if out.join("config.toml").exists() {
                bail!(
                    "{} already holds a run; continue it with `mlml resume {}` or choose another --out",
                    out.display(),
                    out.display()
                );
            }
            let missing = resolved.data.missing_paths();
            if !missing.is_empty() {
                bail!(
                    "{}: the data is not where the config says:\n  {}",
                    config.display(),
                    missing.join("\n  ")
                );
            }
            let devices = training_devices(device, devices, &resolved)?;
            backend::built_in(backend::one_backend(&devices)?)?;
            dispatch(
                &devices,
                Work::Train {
                    config: &resolved,
                    out: &out,
                    stop_after: stop_after_epochs,
                },
            )
        }
        Command::Resume {
            run_dir,
            stop_after_epochs,
            device,
            devices,
        } => {
            let (_, resolved) = open_run(&run_dir)?;
            let devices = training_devices(device, devices, &resolved)?;
            dispatch(
                &devices,
                Work::Train {
                    config: &resolved,
                    out: &run_dir,
                    stop_after: stop_after_epochs,
                },
            )
        }
        Command::Chart {
            results,
            title,
            output,
        } => results_chart(&results, &title, &output),
        Command::Eval {
            run_dir,
            split,
            threshold,
            json,
            device,
        } => dispatch(
            &[device],
            Work::Eval {
                run_dir: &run_dir,
                split,
                threshold,
                json,
            },
        ),
        Command::Predict {
            run_dir,
            inputs,
            threshold,
            top_k,
            json,
            grid,
            device,
        } => dispatch(
            &[device],
            Work::Predict {
                run_dir: &run_dir,
                inputs: &inputs,
                threshold,
                top_k,
                json,
                grid: grid.as_deref(),
            },
        ),
        Command::Suggest { args, device } => dispatch(&[device], Work::Suggest(&args)),
        Command::Compare { runs, json, plot } => compare(&runs, json, plot.as_deref()),
        Command::Inspect { run_dir, json } => inspect(&run_dir, json),
        Command::Losses { json } => losses(json),
        Command::Bench { args, device } => {
            let config = args.config()?;
            dispatch(
                &[device],
                Work::Bench {
                    config: &config,
                    json: args.json,
                },
            )
        }
    }
}

/// The devices a run trains on: `--devices`, else `--device`, else the config's
/// `training.devices`, else the CPU. [`dispatch`] checks that they are of one backend.
fn training_devices(
    device: Option<Device>,
    devices: Option<Vec<Device>>,
    config: &RunConfig,
) -> Result<Vec<Device>> {
    Ok(match (devices, device) {
        (Some(devices), _) => devices,
        (None, Some(device)) => vec![device],
        (None, None) if config.training.devices.is_empty() => vec![Device::default()],
        (None, None) => config
            .training
            .devices
            .iter()
            .map(|name| {
                name.parse::<Device>()
                    .map_err(|e| anyhow::anyhow!("training.devices: {e}"))
            })
            .collect::<Result<_>>()?,
    })
}

fn print_dry_run(config: &RunConfig, json: bool) -> Result<()> {
    let resolved = dry_run_json(config)?;
    if json {
        return print(&serde_json::to_string_pretty(&resolved)?);
    }
    let settings = &resolved["loss"]["settings"];
    print(&format!(
        "{}\n# the loss's hyperparameters after its defaults, preset and overrides\n[loss.{}]\n{}",
        toml::to_string_pretty(config)
            .context("writing the config")?
            .trim_end(),
        config.training.loss,
        settings
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join("\n"))
            .unwrap_or_default()
    ))
}

/// A command's work, run by [`backend::dispatch`] on the backend `--device` names.
enum Work<'a> {
    Train {
        config: &'a RunConfig,
        out: &'a Path,
        stop_after: Option<usize>,
    },
    Eval {
        run_dir: &'a Path,
        split: EvalSplit,
        threshold: f32,
        json: bool,
    },
    Predict {
        run_dir: &'a Path,
        inputs: &'a [PathBuf],
        threshold: f32,
        top_k: usize,
        json: bool,
        grid: Option<&'a Path>,
    },
    Suggest(&'a suggest::SuggestArgs),
    Bench {
        config: &'a mlml_train::bench::BenchConfig,
        json: bool,
    },
}

impl Job for Work<'_> {
    type Output = ();

    fn run<B: TrainBackend>(self, devices: Vec<B::Device>, placement: Placement) -> Result<()> {
        // Only training uses several devices; the other commands get one.
        let device = devices[0].clone();
        match self {
            Work::Train {
                config,
                out,
                stop_after,
            } => train::<B>(config, out, stop_after, &devices, placement),
            Work::Eval {
                run_dir,
                split,
                threshold,
                json,
            } => scoring::eval::<B::InnerBackend>(run_dir, split, threshold, json, &device),
            Work::Predict {
                run_dir,
                inputs,
                threshold,
                top_k,
                json,
                grid,
            } => scoring::predict_cmd::<B::InnerBackend>(
                run_dir,
                inputs,
                scoring::PredictOutput {
                    threshold,
                    top_k,
                    json,
                    grid,
                },
                &device,
            ),
            Work::Suggest(args) => suggest::suggest_cmd::<B::InnerBackend>(args, &device),
            Work::Bench { config, json } => {
                bench::bench_cmd::<B>(config, json, &device, &placement)
            }
        }
    }
}

/// `mlml train` and `mlml resume`: the run through the library, then its curves and a line.
fn train<B: TrainBackend>(
    config: &RunConfig,
    out: &Path,
    stop_after: Option<usize>,
    devices: &[B::Device],
    placement: Placement,
) -> Result<()> {
    let dir = RunDir::new(out);
    let display = |phase: &RunConfig| -> Box<dyn Observer> {
        let unit = if phase.model.takes_images() {
            "images"
        } else {
            "rows"
        };
        Box::new(display::EpochDisplay::new(phase.training.epochs, unit))
    };
    let (report, p) = run::train_run::<B>(
        config,
        &dir,
        stop_after,
        devices,
        run::Placement {
            backend: placement.backend,
            device: &placement.device,
            adapter: &placement.adapter,
        },
        &display,
    )?;
    let per_epoch =
        |f: fn(&mlml_train::EpochRecord) -> f64| p.epochs.iter().map(f).collect::<Vec<f64>>();
    chart::epoch_panels(
        &dir.curves(),
        &format!("{} ({})", report.loss, report.labels),
        &[
            chart::Curve {
                name: "train loss",
                values: per_epoch(|e| e.train_loss),
            },
            chart::Curve {
                name: "validation mAP (%)",
                values: per_epoch(|e| e.val_map),
            },
            chart::Curve {
                name: "learning rate",
                values: per_epoch(|e| e.lr),
            },
        ],
    )?;
    println!(
        "{}: {} of {} epochs; best validation mAP {:.2} at epoch {}{}{} ({})",
        out.display(),
        p.epochs_done,
        report.epochs,
        p.best_val_map,
        p.best_epoch,
        if p.best_is_ema { " (EMA weights)" } else { "" },
        report
            .test
            .as_ref()
            .map(|f| format!(
                "; test mAP {:.2}, CF1 {:.2}, OF1 {:.2}",
                f.map, f.cf1, f.of1
            ))
            .unwrap_or_default(),
        dir.report().display()
    );
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// One run in `mlml compare`.
#[derive(serde::Serialize)]
struct CompareRow {
    run: String,
    loss: String,
    labels: String,
    epochs_done: usize,
    best_epoch: usize,
    best_val_map: f64,
    test_map: Option<f64>,
    test_cf1: Option<f64>,
    test_of1: Option<f64>,
    seconds: f64,
}

fn compare(runs: &[PathBuf], json: bool, plot: Option<&Path>) -> Result<()> {
    let mut rows = Vec::new();
    for run in runs {
        let report = RunDir::new(run).read_report()?;
        let test = report.test.as_ref();
        rows.push(CompareRow {
            run: run.display().to_string(),
            loss: report.loss,
            labels: report.labels,
            epochs_done: report.epochs_done,
            best_epoch: report.best_epoch,
            best_val_map: report.best_val_map,
            test_map: test.map(|t| t.map),
            test_cf1: test.map(|t| t.cf1),
            test_of1: test.map(|t| t.of1),
            seconds: report.seconds,
        });
    }
    if let Some(plot) = plot {
        let bars: Vec<chart::Bar> = rows
            .iter()
            .map(|r| chart::Bar {
                label: r.run.clone(),
                value: r.test_map.unwrap_or(r.best_val_map),
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
    let number = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    let mut table =
        String::from("run\tloss\tlabels\tbest epoch\tval mAP\ttest mAP\tCF1\tOF1\tseconds");
    for r in &rows {
        table.push_str(&format!(
            "\n{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}",
            r.run,
            r.loss,
            r.labels,
            r.best_epoch,
            r.epochs_done,
            number(Some(r.best_val_map)),
            number(r.test_map),
            number(r.test_cf1),
            number(r.test_of1),
            number(Some(r.seconds)),
        ));
    }
    print(&table)
}

fn inspect(run_dir: &Path, json: bool) -> Result<()> {
    let (config_path, config) = open_run(run_dir)?;
    let progress = RunDir::new(run_dir).read_progress()?;
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
        "checkpoint": RunDir::new(run_dir).checkpoint().is_file(),
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
