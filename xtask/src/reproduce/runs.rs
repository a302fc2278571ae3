//! Running `mlml`: building it, one training run and its figures, a job of every row and
//! seed, Cole et al.'s sweep of a row, and the data imports of a paper setting.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
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
    pub(super) row_sets: &'a (dyn Fn(&str) -> Vec<String> + Sync),
    /// Whether the seed also draws the labels (the embedded settings); a paper setting keeps
    /// its protocol's one draw from the config.
    pub(super) seed_draws_labels: bool,
    pub(super) device: &'a str,
    pub(super) runs: &'a Path,
    pub(super) parallel: Parallel,
}

/// How many runs go side by side, and the threads each may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Parallel {
    pub(super) jobs: usize,
    /// `None`: the run's own default (every core).
    pub(super) threads: Option<usize>,
}

impl Parallel {
    /// `jobs` runs side by side (`None`: one per four cores, since a small network's step stops
    /// gaining from threads well before 16), the cores shared evenly between them.
    pub(super) fn new(jobs: Option<usize>) -> Parallel {
        Self::for_cores(
            jobs,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
    }

    fn for_cores(jobs: Option<usize>, cores: usize) -> Parallel {
        let jobs = jobs.unwrap_or(cores / 4).max(1);
        Parallel {
            jobs,
            threads: (jobs > 1).then(|| (cores / jobs).max(1)),
        }
    }

    /// The table's words for it.
    pub(super) fn describe(&self) -> String {
        match self.threads {
            None => "one run at a time".into(),
            Some(t) => format!("{} runs side by side, {t} threads each", self.jobs),
        }
    }
}

impl SettingRuns<'_> {
    /// Trains every loss with every seed (`<runs>/seed-<s>/<loss>`), `parallel.jobs` runs at a
    /// time: one row of figures per loss that finished at least once, and a line per failed run.
    pub(super) fn every_loss(&self, losses: &[String], seeds: usize) -> (Vec<Row>, Vec<String>) {
        let work: Vec<(usize, usize)> = (0..losses.len())
            .flat_map(|l| (0..seeds).map(move |s| (l, s)))
            .collect();
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<RunSummary, String>>>> =
            Mutex::new(vec![None; work.len()]);
        let clock = Mutex::new(Clock::new(work.len(), self.parallel.jobs));
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.jobs.min(work.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(l, seed)) = work.get(i) else {
                        break;
                    };
                    let loss = &losses[l];
                    let label = format!("{loss}, seed {seed}");
                    let dir = self
                        .runs
                        .join(format!("seed-{seed}"))
                        .join(loss.replace(' ', "_"));
                    // The recipe, then the setting's data and (with --smoke) the smoke
                    // overrides, which win.
                    let mut sets = seed_sets(seed, self.seed_draws_labels);
                    sets.extend((self.row_sets)(loss));
                    sets.extend_from_slice(self.extra);
                    let run = TrainRun {
                        mlml: self.mlml,
                        config: self.config,
                        loss,
                        sets: &sets,
                        device: self.device,
                        dir: &dir,
                        threads: self.parallel.threads,
                    };
                    lock(&clock).start(i);
                    let result = run.train(&|epoch| lock(&clock).show(&label, epoch));
                    lock(&clock).finish(i, &label, &result);
                    lock(&results)[i] = Some(result);
                });
            }
        });
        finish_progress();
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let (mut rows, mut failures) = (Vec::new(), Vec::new());
        for (l, loss) in losses.iter().enumerate() {
            let mut figures = Vec::new();
            for (&(_, seed), result) in work.iter().zip(&results).filter(|((wl, _), _)| *wl == l) {
                match result {
                    Some(Ok(summary)) => figures.push(summary.clone()),
                    Some(Err(message)) => failures.push(format!("{loss}, seed {seed}: {message}")),
                    None => failures.push(format!("{loss}, seed {seed}: did not run")),
                }
            }
            if !figures.is_empty() {
                rows.push(summarise(loss, &figures));
            }
        }
        (rows, failures)
    }
}

/// A mutex whose holder panicked still holds good figures: the runs are separate processes.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The runs' progress and the time left, from the mean time of the runs finished so far.
struct Clock {
    total: usize,
    jobs: usize,
    finished: usize,
    seconds: Vec<f64>,
    running: Vec<(usize, Instant)>,
}

impl Clock {
    fn new(total: usize, jobs: usize) -> Clock {
        Clock {
            total,
            jobs,
            finished: 0,
            seconds: Vec::new(),
            running: Vec::new(),
        }
    }

    fn start(&mut self, run: usize) {
        self.running.push((run, Instant::now()));
    }

    /// Seconds left: the runs not started at the mean run's time, the running ones at what the
    /// mean leaves them, shared among the jobs. `None` before a run has finished.
    fn seconds_left(&self) -> Option<f64> {
        if self.seconds.is_empty() {
            return None;
        }
        let mean = self.seconds.iter().sum::<f64>() / self.seconds.len() as f64;
        let waiting = self.total - self.finished - self.running.len();
        let running: f64 = self
            .running
            .iter()
            .map(|(_, t)| (mean - t.elapsed().as_secs_f64()).max(0.0))
            .sum();
        Some((waiting as f64 * mean + running) / self.jobs as f64)
    }

    fn bar(&self) -> String {
        const WIDTH: usize = 24;
        let filled = WIDTH * self.finished / self.total.max(1);
        format!(
            "[{}{}] {}/{}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.finished,
            self.total
        )
    }

    fn left(&self) -> String {
        self.seconds_left()
            .map(|s| format!(" · about {} left", duration(s)))
            .unwrap_or_default()
    }

    /// The line rewritten in place on a terminal.
    fn show(&self, label: &str, epoch: &str) {
        progress(&format!(
            "{} · {label}: epoch {epoch}{}",
            self.bar(),
            self.left()
        ));
    }

    /// A finished run: its figures on a line of their own, terminal or log.
    fn finish(&mut self, run: usize, label: &str, result: &Result<RunSummary, String>) {
        self.running.retain(|(r, _)| *r != run);
        self.finished += 1;
        let what = match result {
            Ok(summary) => {
                self.seconds.push(summary.seconds);
                format!(
                    "test mAP {:.2}, {:.0} s{}",
                    summary.map,
                    summary.seconds,
                    if summary.reused {
                        " (finished before: reused)"
                    } else {
                        ""
                    }
                )
            }
            Err(_) => "failed".into(),
        };
        finish_progress();
        eprintln!(
            "[{}/{}] {label}: {what}{}",
            self.finished,
            self.total,
            self.left()
        );
    }
}

/// `s` seconds as a person reads them.
fn duration(s: f64) -> String {
    if s < 60.0 {
        return format!("{s:.0} s");
    }
    let minutes = (s / 60.0).round() as u64;
    match minutes {
        0..=90 => format!("{minutes} min"),
        _ => format!("{} h {:02} min", minutes / 60, minutes % 60),
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

pub(crate) fn target_dir() -> PathBuf {
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

/// One `mlml train` run of `loss` with the config's `--set`s `sets` (later ones win), into `dir`.
pub(super) struct TrainRun<'a> {
    pub(super) mlml: &'a Path,
    pub(super) config: &'a str,
    pub(super) loss: &'a str,
    pub(super) sets: &'a [String],
    pub(super) device: &'a str,
    pub(super) dir: &'a Path,
    /// `RAYON_NUM_THREADS` of the run; `None`: every core.
    pub(super) threads: Option<usize>,
}

/// Beside a finished run's `report.json`: what made it, so that a later reproduce with the same
/// arguments and the same `mlml` binary takes its figures instead of training again.
const FINISHED: &str = "reproduce.json";

impl TrainRun<'_> {
    /// Trains (or reuses the same run finished before) and reads its figures; `on_epoch` hears
    /// each finished epoch as `N/M`.
    pub(super) fn train(&self, on_epoch: &dyn Fn(&str)) -> Result<RunSummary, String> {
        let args = train_args(
            self.config,
            self.loss,
            self.sets,
            self.device,
            Some(self.dir),
        );
        let made_by = serde_json::json!({ "args": args, "mlml": binary_stamp(self.mlml) });
        if let Some(seconds) = finished_before(self.dir, &made_by) {
            return read_summary(self.dir, seconds, true);
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(self.dir)
                .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        }
        let start = Instant::now();
        let mut command = Command::new(self.mlml);
        command
            .args(&args)
            .current_dir(project_root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(threads) = self.threads {
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.mlml.display()))?;
        let mut last_lines = Vec::new();
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(epoch) = line
                    .strip_prefix("mlml: epoch ")
                    .and_then(|r| r.split(':').next())
                {
                    on_epoch(epoch);
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
        let seconds = start.elapsed().as_secs_f64();
        let summary = read_summary(self.dir, seconds, false)?;
        let mut record = made_by;
        record["seconds"] = seconds.into();
        let path = self.dir.join(FINISHED);
        std::fs::write(&path, record.to_string())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(summary)
    }
}

/// The binary's size and modification time: a rebuilt `mlml` does not reuse older runs.
fn binary_stamp(mlml: &Path) -> String {
    let meta = std::fs::metadata(mlml).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{} bytes, modified {modified}", meta.map_or(0, |m| m.len()))
}

/// The wall time of the run in `dir` if it finished from the same arguments and binary.
fn finished_before(dir: &Path, made_by: &Value) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(FINISHED)).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    let same = record["args"] == made_by["args"] && record["mlml"] == made_by["mlml"];
    (same && dir.join("report.json").is_file())
        .then(|| record["seconds"].as_f64())
        .flatten()
}

/// The figures of the run in `dir`, from its `report.json`.
fn read_summary(dir: &Path, seconds: f64, reused: bool) -> Result<RunSummary, String> {
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
        seconds,
        val_map: report.best_val_map,
        best_epoch: report.best_epoch as f64,
        reused,
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
        let run = TrainRun {
            mlml: job.mlml,
            config: job.config,
            loss,
            sets: &sets,
            device: job.device,
            dir: &dir,
            threads: None,
        };
        let figures = run.train(&|epoch| progress(&format!("{label}: epoch {epoch}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_share_the_cores_and_default_to_one_per_four() {
        let p = |jobs, cores| {
            let p = Parallel::for_cores(jobs, cores);
            (p.jobs, p.threads)
        };
        assert_eq!(p(None, 2), (1, None));
        assert_eq!(p(None, 16), (4, Some(4)));
        assert_eq!(p(Some(3), 16), (3, Some(5)));
        assert_eq!(p(Some(4), 2), (4, Some(1)));
        assert_eq!(
            Parallel::for_cores(Some(1), 16).describe(),
            "one run at a time"
        );
    }

    #[test]
    fn time_left_counts_waiting_runs_at_the_mean_shared_among_the_jobs() {
        let mut clock = Clock::new(10, 2);
        assert_eq!(clock.seconds_left(), None);
        clock.finished = 2;
        clock.seconds = vec![100.0, 300.0];
        // Eight runs wait at 200 s each, two at a time.
        assert_eq!(clock.seconds_left(), Some(800.0));
        clock.start(2);
        let left = clock.seconds_left().unwrap();
        assert!((799.0..=800.0).contains(&left), "{left}");
        assert_eq!(
            clock.bar(),
            format!("[{}{}] 2/10", "#".repeat(4), "-".repeat(20))
        );
        assert_eq!(duration(40.0), "40 s");
        assert_eq!(duration(800.0), "13 min");
        assert_eq!(duration(3.0 * 3600.0 + 60.0), "3 h 01 min");
    }

    #[test]
    fn a_finished_run_is_reused_only_with_the_same_arguments_and_binary() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("an");
        std::fs::create_dir_all(&run).unwrap();
        let made_by = serde_json::json!({ "args": ["train", "--set", "a=1"], "mlml": "1 bytes" });
        let mut record = made_by.clone();
        record["seconds"] = 12.5.into();
        std::fs::write(run.join(FINISHED), record.to_string()).unwrap();
        // No report: the run did not finish.
        assert_eq!(finished_before(&run, &made_by), None);
        std::fs::write(
            run.join("report.json"),
            r#"{"best_val_map": 70.0, "best_epoch": 3, "test": {"map": 69.5, "cf1": 40.0, "of1": 41.0}}"#,
        )
        .unwrap();
        assert_eq!(finished_before(&run, &made_by), Some(12.5));
        let summary = read_summary(&run, 12.5, true).unwrap();
        assert_eq!(
            (summary.map, summary.best_epoch, summary.reused),
            (69.5, 3.0, true)
        );
        let other_args =
            serde_json::json!({ "args": ["train", "--set", "a=2"], "mlml": "1 bytes" });
        assert_eq!(finished_before(&run, &other_args), None);
        let rebuilt = serde_json::json!({ "args": ["train", "--set", "a=1"], "mlml": "2 bytes" });
        assert_eq!(finished_before(&run, &rebuilt), None);
    }
}
