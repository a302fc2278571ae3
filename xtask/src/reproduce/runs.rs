//! Running `mlml`: building it, one training run and its figures, a job of every row and
//! seed, Cole et al.'s sweep of a row, and the data imports of a paper setting.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use super::options::Options;
use super::report::{summarise, Row, RunSummary};
use super::settings::{PaperRun, TrainLabels, FULL_LABEL_ROW};
use crate::recipes::{self, Recipe};
use crate::{cargo, project_root};

/// What the runs of one setting share.
pub(super) struct SettingRuns<'a> {
    pub(super) mlml: &'a Path,
    pub(super) config: &'a str,
    /// `--set`s of every run, after the row's.
    pub(super) extra: &'a [String],
    /// `--set`s of one row's runs (its recipe), after the seed's.
    pub(super) row_sets: &'a dyn Fn(&str) -> Vec<String>,
    /// Whether the seed also draws the labels (the embedded settings); a paper setting keeps
    /// its protocol's one draw from the config.
    pub(super) seed_draws_labels: bool,
    pub(super) device: &'a str,
    pub(super) runs: &'a Path,
}

impl SettingRuns<'_> {
    /// Trains every loss with every seed (`<runs>/seed-<s>/<loss>`): one row of figures per loss
    /// that finished at least once, and a line per failed run.
    pub(super) fn every_loss(&self, losses: &[String], seeds: usize) -> (Vec<Row>, Vec<String>) {
        let (mut rows, mut failures) = (Vec::new(), Vec::new());
        let total = losses.len() * seeds;
        let mut done = 0;
        for loss in losses {
            let mut figures = Vec::new();
            for seed in 0..seeds {
                done += 1;
                let label = format!("[{done}/{total}] {loss}, seed {seed}");
                let dir = self
                    .runs
                    .join(format!("seed-{seed}"))
                    .join(loss.replace(' ', "_"));
                // The recipe, then the setting's data and (with --smoke) the smoke overrides,
                // which win.
                let mut sets = seed_sets(seed, self.seed_draws_labels);
                sets.extend((self.row_sets)(loss));
                sets.extend_from_slice(self.extra);
                match train_once(
                    self.mlml,
                    self.config,
                    loss,
                    &sets,
                    self.device,
                    &dir,
                    &label,
                ) {
                    Ok(report) => figures.push(report),
                    Err(message) => failures.push(format!("{loss}, seed {seed}: {message}")),
                }
            }
            if !figures.is_empty() {
                rows.push(summarise(loss, &figures));
            }
        }
        finish_progress();
        (rows, failures)
    }
}

/// `Ok` when every run finished, else the failed runs.
pub(super) fn all_ran(failures: &[String]) -> Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} run(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ))
    }
}

pub(super) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                project_root().join(p)
            }
        })
        .unwrap_or_else(|| project_root().join("target"))
}

/// The `mlml` binary `--mlml` names, or the one built for `--backend`.
pub(super) fn mlml_binary(options: &Options) -> Result<PathBuf, String> {
    match &options.mlml {
        Some(path) => Ok(path.clone()),
        None => build_mlml(&options.backend),
    }
}

/// Builds `mlml` (with the backend's cargo feature) and `mlml-data` in release mode.
pub(super) fn build_mlml(backend: &str) -> Result<PathBuf, String> {
    let features = format!("mlml-cli/{backend}");
    let mut args = vec!["build", "--release", "-p", "mlml-cli", "-p", "mlml-data"];
    if backend != "cpu" {
        args.extend(["--features", features.as_str()]);
    }
    cargo(&args)?;
    let path = target_dir()
        .join("release")
        .join(format!("mlml{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("built mlml-cli but found no {}", path.display()))
    }
}

pub(super) fn registered_losses(mlml: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(mlml)
        .args(["losses", "--json"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`mlml losses --json` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`mlml losses --json` printed no JSON: {e}"))?;
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect())
}

/// The `--set`s of seed `seed`: the initialisation's and, where the setting draws its labels per
/// seed (the embedded settings), the label draw's.
pub(super) fn seed_sets(seed: usize, draws_labels: bool) -> Vec<String> {
    let mut sets = vec![format!("training.seed={seed}")];
    if draws_labels {
        sets.push(format!("data.label_seed={seed}"));
    }
    sets
}

/// The arguments of `mlml train` for a row (`loss`, or the full-label row) with the config's
/// `--set`s `sets` (later ones win), into `dir`.
pub(super) fn train_args(
    config: &str,
    loss: &str,
    sets: &[String],
    device: &str,
    dir: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "train".into(),
        "--config".into(),
        project_root().join(config).display().to_string(),
        "--device".into(),
        device.into(),
    ];
    if let Some(dir) = dir {
        args.extend(["--out".into(), dir.display().to_string()]);
    }
    let mut set = |kv: String| {
        args.push("--set".into());
        args.push(kv);
    };
    if loss == FULL_LABEL_ROW {
        set("training.loss=\"bce\"".into());
        set("data.labels=\"full\"".into());
    } else {
        set(format!("training.loss=\"{loss}\""));
    }
    for kv in sets {
        set(kv.clone());
    }
    args
}

/// One `mlml train` run of `loss` with the config's `--set`s `sets` (later ones win).
pub(super) fn train_once(
    mlml: &Path,
    config: &str,
    loss: &str,
    sets: &[String],
    device: &str,
    dir: &Path,
    label: &str,
) -> Result<RunSummary, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let args = train_args(config, loss, sets, device, Some(dir));
    let start = Instant::now();
    let mut child = Command::new(mlml)
        .args(&args)
        .current_dir(project_root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
    let mut last_lines = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(epoch) = line
                .strip_prefix("mlml: epoch ")
                .and_then(|r| r.split(':').next())
            {
                progress(&format!("{label}: epoch {epoch}"));
            }
            last_lines.push(line);
            if last_lines.len() > 5 {
                last_lines.remove(0);
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(last_lines.join(" | "));
    }
    let path = dir.join("report.json");
    let report: RunReport = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", path.display())))?;
    let test = report
        .test
        .ok_or_else(|| format!("{}: no test figures", path.display()))?;
    let figures = RunSummary {
        map: test.map,
        cf1: test.cf1,
        of1: test.of1,
        seconds: start.elapsed().as_secs_f64(),
        val_map: report.best_val_map,
        best_epoch: report.best_epoch as f64,
    };
    if [figures.map, figures.cf1, figures.of1, figures.val_map]
        .iter()
        .all(|x| x.is_finite())
    {
        Ok(figures)
    } else {
        Err(format!("{}: a figure is not finite", path.display()))
    }
}

/// What reproduce reads of a run's `report.json` (written by `mlml train`).
#[derive(serde::Deserialize)]
struct RunReport {
    best_val_map: f64,
    best_epoch: usize,
    test: Option<SplitReport>,
}

#[derive(serde::Deserialize)]
struct SplitReport {
    map: f64,
    cf1: f64,
    of1: f64,
}

/// On a terminal, one line rewritten in place; otherwise nothing (the table follows).
pub(super) fn progress(text: &str) {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
    }
}

pub(super) fn finish_progress() {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K");
    }
}

/// One row trained at every point of Cole et al.'s batch x lr grid (seed 0): the run with the
/// best validation mAP is the row, as their sweep reports it.
pub(super) fn sweep_row(job: &SettingRuns<'_>, loss: &str, recipe: &Recipe) -> Result<Row, String> {
    let mut best: Option<(RunSummary, usize, &str)> = None;
    for (i, &(batch, lr)) in recipes::COLE_GRID.iter().enumerate() {
        let label = format!(
            "[{}/{}] {loss}: batch {batch}, lr {lr}",
            i + 1,
            recipes::COLE_GRID.len()
        );
        let mut sets = seed_sets(0, job.seed_draws_labels);
        sets.extend(recipe.sets());
        sets.push(format!("training.batch_size={batch}"));
        sets.push(format!("training.lr={lr}"));
        sets.extend_from_slice(job.extra);
        let dir = job
            .runs
            .join("sweep")
            .join(format!("{loss}-b{batch}-lr{lr}"));
        let figures = train_once(job.mlml, job.config, loss, &sets, job.device, &dir, &label)?;
        if best
            .as_ref()
            .is_none_or(|(b, _, _)| figures.val_map > b.val_map)
        {
            best = Some((figures, batch, lr));
        }
    }
    finish_progress();
    let (figures, batch, lr) = best.expect("the grid has points");
    let mut row = summarise(loss, &[figures]);
    row.sweep_choice = Some(format!(
        "batch {batch}, lr {lr} (best validation mAP of {} runs)",
        recipes::COLE_GRID.len()
    ));
    Ok(row)
}

/// `mlml-data import ARGS INPUT -o OUTPUT`; its stderr becomes the error.
pub(super) fn run_import(
    mlml_data: &Path,
    args: &[&str],
    input: &Path,
    output: &Path,
) -> Result<(), String> {
    let out = Command::new(mlml_data)
        .arg("import")
        .args(args)
        .arg(input)
        .arg("-o")
        .arg(output)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mlml_data.display()))?;
    if !out.status.success() {
        return Err(format!(
            "mlml-data import of {} for {}: {}",
            input.display(),
            output.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The `--set`s that give a paper setting its training labels and the sentence that names
/// them; a release list found in `data` is imported beside the training set `train` and its
/// observed labels replace the training rows' (the validation rows carved from `train` keep
/// the full annotation).
pub(super) fn train_labels(
    run: &PaperRun,
    data: &Path,
    mlml_data: &Path,
    train: &Path,
) -> Result<(Vec<String>, String), String> {
    Ok(match run.labels {
        TrainLabels::SinglePositive => (
            Vec::new(),
            "the single-positive protocol's one draw (MT19937 with seed 1200 on the whole \
             training file, in Cole et al.'s row order)"
                .into(),
        ),
        TrainLabels::Full => (
            vec!["data.labels=\"full\"".into()],
            "every label of the annotation file".into(),
        ),
        TrainLabels::Release { percent, file } if data.join(file).is_file() => {
            // The release numbers COCO's classes as the annotation file orders them: its class
            // list is the imported training set's.
            let sidecar = train.with_extension("meta.json");
            let meta: Value = std::fs::read_to_string(&sidecar)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| format!("{}: unreadable", sidecar.display()))?;
            let classes: Vec<&str> = meta["classes"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let class_file = train.with_file_name("classes.txt");
            std::fs::write(&class_file, classes.join("\n") + "\n")
                .map_err(|e| format!("{}: {e}", class_file.display()))?;
            let release = train.with_file_name(format!("train-{percent}left.tsv"));
            let classes = class_file.display().to_string();
            let args = [
                "--format",
                "hill",
                "--classes",
                &classes,
                "--image-prefix",
                "train2014",
            ];
            run_import(mlml_data, &args, &data.join(file), &release)?;
            (
                vec![
                    "data.labels=\"observed-set\"".into(),
                    format!("data.observed_set={:?}", release.display().to_string()),
                ],
                format!(
                    "the release's own list {file} (from --data) on the training rows; the \
                     validation rows carved from train2014 keep their full labels"
                ),
            )
        }
        TrainLabels::Release { percent, file } => (
            vec![
                format!("data.labels={{ release-rule = {percent} }}"),
                "data.label_seed=0".into(),
            ],
            format!(
                "the release's per-image rule for {percent} % left ({} of an image's n \
                 positives kept, chosen uniformly), redrawn with ChaCha8 seed 0; put the \
                 release's {file} (robust-loss-mlml, dataset/) in --data to train on its own draw",
                if percent == 40 {
                    "floor(n/5)+1"
                } else {
                    "floor(n/2)+1"
                }
            ),
        ),
    })
}
