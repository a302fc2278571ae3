//! `mlml eval` and `mlml predict`: a run's selected model on its validation or test rows, or on
//! new inputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mlml_metrics::PredictionRule;
use mlml_train::run::{self, cole_at_k, evaluation_tables, EvaluationTables, RunDir};
use mlml_train::run_config::RunConfig;
use mlml_train::run_data::Prober;
use mlml_train::{load_best, predict, ConvBackend, Source};

use crate::grid::{row_image, write_grid, Tile};
use crate::stdout::print;

/// Which rows `mlml eval` scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSplit {
    /// The 20 % of the training file held out for model selection.
    Val,
    /// The config's test files.
    Test,
}

/// A run directory's config file and the config it holds.
pub fn open_run(run_dir: &Path) -> Result<(PathBuf, RunConfig)> {
    let dir = RunDir::new(run_dir);
    Ok((dir.config(), dir.read_config()?))
}

pub fn eval<B: ConvBackend>(
    run_dir: &Path,
    split: EvalSplit,
    threshold: f32,
    json: bool,
    device: &B::Device,
) -> Result<()> {
    if !(threshold.is_finite() && (0.0..1.0).contains(&threshold)) {
        bail!("--threshold {threshold}: expected a probability in [0, 1)");
    }
    let (config_path, config) = open_run(run_dir)?;
    let t = &config.training;
    let prober = Prober::<B>::new(&config.data, &config.model, t.seed, t.batch_size, device);
    let set = match split {
        EvalSplit::Val => config.data.prepare(prober.as_ref())?.val,
        EvalSplit::Test => config
            .data
            .test_rows(prober.as_ref(), RunDir::new(run_dir).read_standardization()?.as_ref())?
            .with_context(|| {
                format!(
                    "{}: the run has no test split (data.test_features, test_images or test_set); use --split val",
                    config_path.display()
                )
            })?,
    };
    let (model, progress) = load_best::<B>(
        run_dir,
        &config.model.trained(),
        set.input_size(),
        set.labels().n_classes(),
        device,
    )?;
    let scores = predict(&model, &set, config.training.batch_size, device)?;
    let EvaluationTables {
        evaluation: sklearn,
        map_ranked,
    } = evaluation_tables(
        &scores,
        set.labels(),
        PredictionRule::Threshold {
            value: threshold,
            strict: true,
        },
    )?;
    let at_k = cole_at_k(&scores, set.labels())?;
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
            "threshold": threshold,
            "at_k": at_k,
            "evaluation": sklearn,
        }))?);
    }
    let at_k_line = at_k
        .iter()
        .map(|a| {
            format!(
                "P@{k} {:.2} R@{k} {:.2}",
                100.0 * a.precision,
                100.0 * a.recall,
                k = a.k
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    print(&format!(
        "{} on {split_name} ({} rows), the model of epoch {} (best validation mAP):\n\
         mAP {:.2} (sklearn AP) / {:.2} (ranked AP); threshold {threshold}\n\
         {at_k_line} (per-sample means, %)\n{sklearn}",
        run_dir.display(),
        set.len(),
        progress.best_epoch,
        sklearn.map.map,
        map_ranked,
    ))
}

/// How `mlml predict` reports.
pub struct PredictOutput<'a> {
    pub threshold: f32,
    pub top_k: usize,
    pub json: bool,
    pub grid: Option<&'a Path>,
}

/// The image files of `inputs`: files as given, folders expanded to their .jpg, .jpeg and .png
/// files, recursively, in path order.
fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list the folder", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{}: cannot list the folder", dir.display()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, found)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files)?;
            if files.len() == before {
                bail!(
                    "{}: no .jpg, .jpeg or .png file in the folder",
                    input.display()
                );
            }
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

pub fn predict_cmd<B: ConvBackend>(
    run_dir: &Path,
    inputs: &[PathBuf],
    output: PredictOutput<'_>,
    device: &B::Device,
) -> Result<()> {
    let PredictOutput {
        threshold,
        top_k,
        json,
        grid,
    } = output;
    let (_, config) = open_run(run_dir)?;
    let classes = RunDir::new(run_dir).read_classes()?;
    let inputs = expand_inputs(inputs)?;
    let (set, names) = run::prediction_rows::<B>(
        &RunDir::new(run_dir),
        &config,
        &inputs,
        classes.clone(),
        device,
    )?;
    let (model, _) = load_best::<B>(
        run_dir,
        &config.model.trained(),
        set.input_size(),
        classes.len(),
        device,
    )?;
    let scores = predict(&model, &set, config.training.batch_size, device)?;
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
    if let Some(grid) = grid {
        let tiles = picks
            .iter()
            .enumerate()
            .take(48)
            .map(|(i, (_, top))| {
                let mut caption: Vec<String> = top
                    .iter()
                    .take(3)
                    .map(|&j| format!("{} {:.2}", classes[j], score(i, j)))
                    .collect();
                caption.insert(0, name_tail(&names[i]));
                Ok(Tile {
                    image: row_image(&set, i)?,
                    caption,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        write_grid(grid, &tiles, 128)?;
    }
    if json {
        let rows: Vec<serde_json::Value> = picks
            .iter()
            .enumerate()
            .map(|(i, (predicted, top))| {
                serde_json::json!({
                    "row": i,
                    "input": names[i],
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
            "\n{}\t{}\t{}",
            names[i],
            predicted.join(","),
            top.join(" ")
        ));
    }
    print(&text)
}

/// The last part of an input's name, for a caption.
fn name_tail(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned())
}
