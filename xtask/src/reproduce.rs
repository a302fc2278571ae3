//! `cargo xtask reproduce <setting>`: trains every registered loss (and the full-label BCE upper
//! bound) on a setting with the `mlml` binary, over several seeds, and writes the table, its JSON
//! and a chart to `docs/results/`.
//!
//! It calls `mlml` rather than linking the training crate, so that xtask stays free of burn.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::recipes::{self, Dataset, Recipe, RecipeValue};
use crate::{cargo, project_root};

/// A setting on an embedded dataset.
struct Setting {
    name: &'static str,
    config: &'static str,
    summary: &'static str,
    /// Seeds when `--seeds` is not given (the default run stays under ten minutes on 2 cores).
    seeds: usize,
}

const EMBEDDED: &[Setting] = &[
    Setting {
        name: "yeast-single",
        config: "configs/yeast-single.toml",
        summary: "yeast (14 labels, 4.2 positives per row), one observed positive per training row",
        seeds: 5,
    },
    Setting {
        name: "yeast-40",
        config: "configs/yeast-40.toml",
        summary: "yeast, 40 % of the training positives kept (at least one per row)",
        seeds: 5,
    },
    Setting {
        name: "yeast-75",
        config: "configs/yeast-75.toml",
        summary: "yeast, 75 % of the training positives kept (at least one per row)",
        seeds: 5,
    },
    Setting {
        name: "scene-single",
        config: "configs/scene-single.toml",
        summary: "scene (6 labels, 1.07 positives per row), one observed positive per training row",
        seeds: 5,
    },
    Setting {
        name: "scene-40",
        config: "configs/scene-40.toml",
        summary: "scene, 40 % of the training positives kept (at least one per row)",
        seeds: 5,
    },
    Setting {
        name: "scene-75",
        config: "configs/scene-75.toml",
        summary: "scene, 75 % of the training positives kept (at least one per row)",
        seeds: 5,
    },
    Setting {
        name: "fashion-single",
        config: "configs/fashion-single.toml",
        summary:
            "the Fashion-MNIST composite (64x64 canvases, 10 labels, 2.26 positives per row), \
                  one observed positive per training row; a linear probe on the shipped \
                  EfficientNet-Lite0",
        seeds: 3,
    },
];

/// Settings of the papers, on image datasets the user downloads.
const PAPER_SETTINGS: &[(&str, &str)] = &[
    (
        "coco-single",
        "COCO 2014, one observed positive per training image (Cole et al. 2021's protocol: \
         single-positive labels, 20 % of train held out for validation, seed 1200)",
    ),
    (
        "coco-40",
        "COCO 2014, 40 % of the positives left (Zhang et al. 2021's Hill / SPLC setting)",
    ),
    (
        "coco-75",
        "COCO 2014, 75 % of the positives left (Zhang et al. 2021's Hill / SPLC setting)",
    ),
    ("coco-full", "COCO 2014, full labels"),
    (
        "voc-single",
        "PASCAL VOC 2012, one observed positive per training image (Cole et al. 2021's \
         protocol, val as the test split)",
    ),
    (
        "nus-single",
        "NUS-WIDE (81 concepts), one observed positive per training image (Cole et al. 2021's \
         protocol on the papers' formatted files: 20 % of train held out for validation, seed \
         1200; Zhou et al.'s files and Cole et al.'s re-crawl are different image sets)",
    ),
    (
        "cub-single",
        "CUB-200-2011's 312 attributes, one observed positive per training image (Cole et al. \
         2021's protocol: 20 % of train held out for validation, seed 1200)",
    ),
];

/// The full-label upper bound's row name.
const FULL_LABEL_ROW: &str = "bce (full labels)";
/// The learning recipes the sweep tries: (hidden sizes, lr, weight decay, epochs).
const SWEEP: &[(&str, f64, f64, usize)] = &[
    ("[]", 1e-2, 0.0, 50),
    ("[256]", 1e-3, 0.0, 20),
    ("[256]", 1e-3, 1e-3, 20),
    ("[512]", 1e-3, 1e-3, 20),
    ("[512]", 3e-4, 0.0, 50),
    ("[512]", 3e-4, 1e-3, 50),
    ("[512]", 3e-4, 1e-2, 50),
    ("[1024]", 1e-3, 1e-3, 20),
    ("[1024]", 3e-4, 1e-3, 50),
    ("[256, 256]", 1e-3, 1e-3, 20),
    ("[512, 512]", 1e-3, 1e-3, 20),
    ("[512, 512]", 3e-4, 1e-3, 50),
];

#[derive(Debug)]
struct Options {
    setting: String,
    /// `None`: the setting's default.
    seeds: Option<usize>,
    losses: Vec<String>,
    mlml: Option<PathBuf>,
    runs: Option<PathBuf>,
    results: PathBuf,
    sweep: bool,
    data: Option<PathBuf>,
    backend: String,
    smoke: bool,
    /// Print each row's recipe and resolved run instead of training.
    plan: bool,
    json: bool,
    /// Pick the epoch on the test split (the ASL reference's protocol).
    select_on_test: bool,
}

fn usage() -> String {
    let names: Vec<&str> = EMBEDDED.iter().map(|s| s.name).collect();
    format!(
        "usage: cargo xtask reproduce <setting> [--seeds N] [--loss NAME]... [--sweep] \
         [--backend cpu|wgpu|cuda] [--data DIR] [--smoke] [--plan [--json]] [--select-on-test] \
         [--mlml PATH] [--runs DIR] [--results DIR]\n  embedded settings: {}\n  \
         paper settings (with --data DIR; --plan needs none): {}",
        names.join(", "),
        PAPER_SETTINGS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        setting: String::new(),
        seeds: None,
        losses: Vec::new(),
        mlml: None,
        runs: None,
        results: project_root().join("docs/results"),
        sweep: false,
        data: None,
        backend: "cpu".into(),
        smoke: false,
        plan: false,
        json: false,
        select_on_test: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--seeds" => {
                let v = value("--seeds")?;
                options.seeds = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--seeds {v}: expected a positive integer"))?,
                );
            }
            "--loss" => options.losses.push(value("--loss")?),
            "--mlml" => options.mlml = Some(value("--mlml")?.into()),
            "--runs" => options.runs = Some(value("--runs")?.into()),
            "--results" => options.results = value("--results")?.into(),
            "--data" => options.data = Some(value("--data")?.into()),
            "--sweep" => options.sweep = true,
            "--smoke" => options.smoke = true,
            "--plan" => options.plan = true,
            "--json" => options.json = true,
            "--select-on-test" => options.select_on_test = true,
            "--backend" => {
                let v = value("--backend")?;
                if !["cpu", "wgpu", "cuda"].contains(&v.as_str()) {
                    return Err(format!("--backend {v}: expected cpu, wgpu or cuda"));
                }
                options.backend = v;
            }
            "-h" | "--help" => return Err(usage()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option {flag}\n{}", usage()))
            }
            name if options.setting.is_empty() => options.setting = name.to_string(),
            extra => return Err(format!("unexpected argument {extra}\n{}", usage())),
        }
    }
    if options.setting.is_empty() {
        return Err(usage());
    }
    if options.json && !options.plan {
        return Err(format!("--json goes with --plan\n{}", usage()));
    }
    Ok(options)
}

pub fn reproduce(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.select_on_test && !options.setting.starts_with("coco-") {
        return Err(
            "--select-on-test is the ASL / Hill / SPLC reference's protocol: coco-40, coco-75 and coco-full only"
                .into(),
        );
    }
    if options.plan {
        return plan(&options);
    }
    let Some(setting) = EMBEDDED.iter().find(|s| s.name == options.setting) else {
        if let (Some(run), Some(data)) = (
            PAPER_RUNS.iter().find(|r| r.name == options.setting),
            options.data.as_deref().filter(|d| d.is_dir()),
        ) {
            return run_paper_setting(run, &options, data);
        }
        if let Some((name, summary)) = PAPER_SETTINGS.iter().find(|(n, _)| *n == options.setting) {
            return Err(paper_setting_message(
                name,
                summary,
                options.data.as_deref(),
            ));
        }
        return Err(unknown_setting(&options.setting));
    };
    let mlml = mlml_binary(&options)?;
    let runs = options
        .runs
        .clone()
        .unwrap_or_else(|| target_dir().join("reproduce").join(setting.name));
    let mut losses = if options.losses.is_empty() {
        // The embedded settings' models have no class activation map to boost.
        registered_losses(&mlml)?
            .into_iter()
            .filter(|l| l != "boostlu")
            .collect()
    } else {
        options.losses.clone()
    };
    if options.losses.is_empty() && !options.sweep {
        losses.push(FULL_LABEL_ROW.to_string());
    }
    if options.sweep {
        return sweep(setting, &mlml, &runs, &losses, &options.results);
    }
    println!("{}: {}", setting.name, setting.summary);
    let seeds = options.seeds.unwrap_or(setting.seeds);
    let job = Job {
        mlml: &mlml,
        config: setting.config,
        extra: &[],
        row_sets: &|_| Vec::new(),
        seed_draws_labels: true,
        device: &options.backend,
        runs: &runs,
    };
    let (mut rows, failures) = job.every_loss(&losses, seeds);
    add_gap_recovered(&mut rows);
    let table = markdown_table(&rows, seeds);
    println!("\n{table}");
    write_results(&mlml, setting, &rows, &table, seeds, &options.results)?;
    all_ran(&failures)
}

/// What the runs of one setting share.
struct Job<'a> {
    mlml: &'a Path,
    config: &'a str,
    /// `--set`s of every run, after the row's.
    extra: &'a [String],
    /// `--set`s of one row's runs (its recipe), after the seed's.
    row_sets: &'a dyn Fn(&str) -> Vec<String>,
    /// Whether the seed also draws the labels (the embedded settings); a paper setting keeps
    /// its protocol's one draw from the config.
    seed_draws_labels: bool,
    device: &'a str,
    runs: &'a Path,
}

impl Job<'_> {
    /// Trains every loss with every seed (`<runs>/seed-<s>/<loss>`): one row of figures per loss
    /// that finished at least once, and a line per failed run.
    fn every_loss(&self, losses: &[String], seeds: usize) -> (Vec<Value>, Vec<String>) {
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
fn all_ran(failures: &[String]) -> Result<(), String> {
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

fn paper_setting_message(name: &str, summary: &str, data: Option<&Path>) -> String {
    let (layout, source) = if name.starts_with("coco") {
        (
            "train2014/, val2014/ and annotations/instances_{train,val}2014.json",
            "https://cocodataset.org/#download (2014 Train images, 2014 Val images, 2014 Train/Val annotations)",
        )
    } else if name.starts_with("voc") {
        (
            "VOCdevkit/VOC2012/JPEGImages/ and VOCdevkit/VOC2012/Annotations/",
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (training/validation data)",
        )
    } else if name.starts_with("nus") {
        (
            "Flickr/ (the images) and formatted_{train,val}_{labels,images}.npy, the papers' \
             formatted files",
            "the images from \
             https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html; \
             the formatted files from the single-positive papers' repositories \
             (elijahcole/single-positive-multi-label, Correr-Zhou/SPML-AckTheUnknown)",
        )
    } else if name.starts_with("cub") {
        (
            "the CUB_200_2011 folder: images.txt, train_test_split.txt, images/ and \
             attributes/image_attribute_labels.txt (attributes.txt in it or beside it)",
            "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        )
    } else {
        ("nothing: the set is embedded", "datasets/")
    };
    let data_line = match data {
        None => format!("it needs --data DIR holding {layout} (from {source})."),
        Some(dir) if !dir.is_dir() => format!(
            "--data {}: no such directory; it should hold {layout} (from {source}).",
            dir.display()
        ),
        Some(dir) => format!(
            "--data {}: expected to hold {layout} (from {source}).",
            dir.display()
        ),
    };
    format!(
        "{name} ({summary}): {data_line}\nThe embedded settings need no data: {}.",
        EMBEDDED
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn target_dir() -> PathBuf {
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
fn mlml_binary(options: &Options) -> Result<PathBuf, String> {
    match &options.mlml {
        Some(path) => Ok(path.clone()),
        None => build_mlml(&options.backend),
    }
}

/// The message for a setting that is not one.
fn unknown_setting(name: &str) -> String {
    format!("unknown setting '{name}'\n{}", usage())
}

/// Builds `mlml` (with the backend's cargo feature) and `mlml-data` in release mode.
fn build_mlml(backend: &str) -> Result<PathBuf, String> {
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

fn registered_losses(mlml: &Path) -> Result<Vec<String>, String> {
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

/// One run's figures, from its `report.json`.
#[derive(Clone, Debug)]
struct RunFigures {
    map: f64,
    cf1: f64,
    of1: f64,
    seconds: f64,
    val_map: f64,
    best_epoch: f64,
}

/// The `--set`s of seed `seed`: the initialisation's and, where the setting draws its labels per
/// seed (the embedded settings), the label draw's.
fn seed_sets(seed: usize, draws_labels: bool) -> Vec<String> {
    let mut sets = vec![format!("training.seed={seed}")];
    if draws_labels {
        sets.push(format!("data.label_seed={seed}"));
    }
    sets
}

/// The arguments of `mlml train` for a row (`loss`, or the full-label row) with the config's
/// `--set`s `sets` (later ones win), into `dir`.
fn train_args(
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
fn train_once(
    mlml: &Path,
    config: &str,
    loss: &str,
    sets: &[String],
    device: &str,
    dir: &Path,
    label: &str,
) -> Result<RunFigures, String> {
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
    let report: Value = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", path.display())))?;
    let number = |v: &Value, what: &str| {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{}: no finite {what}", path.display()))
    };
    let test = &report["test"];
    Ok(RunFigures {
        map: number(&test["map"], "test.map")?,
        cf1: number(&test["cf1"], "test.cf1")?,
        of1: number(&test["of1"], "test.of1")?,
        seconds: start.elapsed().as_secs_f64(),
        val_map: number(&report["best_val_map"], "best_val_map")?,
        best_epoch: number(&report["best_epoch"], "best_epoch")?,
    })
}

/// On a terminal, one line rewritten in place; otherwise nothing (the table follows).
fn progress(text: &str) {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
    }
}

fn finish_progress() {
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K");
    }
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn summarise(loss: &str, figures: &[RunFigures]) -> Value {
    let pick = |f: fn(&RunFigures) -> f64| mean_std(&figures.iter().map(f).collect::<Vec<_>>());
    let (map, map_std) = pick(|f| f.map);
    let (cf1, cf1_std) = pick(|f| f.cf1);
    let (of1, of1_std) = pick(|f| f.of1);
    let (seconds, _) = pick(|f| f.seconds);
    let (val_map, _) = pick(|f| f.val_map);
    json!({
        "loss": loss,
        "map": map, "map_std": map_std,
        "cf1": cf1, "cf1_std": cf1_std,
        "of1": of1, "of1_std": of1_std,
        "seconds": seconds,
        "val_map": val_map,
        "seeds": figures.len(),
        "map_per_seed": figures.iter().map(|f| f.map).collect::<Vec<_>>(),
    })
}

/// The smallest AN-to-full gap (mAP points) for which the recovered share is reported.
const MIN_GAP: f64 = 1.0;

/// The share of the gap between AN and the full-label row that each loss recovers.
fn add_gap_recovered(rows: &mut [Value]) {
    let find = |name: &str, rows: &[Value]| {
        rows.iter()
            .find(|r| r["loss"] == name)
            .and_then(|r| r["map"].as_f64())
    };
    let (Some(an), Some(full)) = (find("an", rows), find(FULL_LABEL_ROW, rows)) else {
        return;
    };
    // Under one mAP point the ratio is noise over noise (scene: AN is within 0.6 of full).
    if full - an < MIN_GAP {
        return;
    }
    for row in rows.iter_mut() {
        let map = row["map"].as_f64().unwrap_or(f64::NAN);
        row["gap_recovered"] = json!(100.0 * (map - an) / (full - an));
    }
}

fn markdown_table(rows: &[Value], seeds: usize) -> String {
    let pm = |row: &Value, key: &str| {
        let value = row[key].as_f64().unwrap_or(f64::NAN);
        if seeds > 1 {
            let std = row[format!("{key}_std")].as_f64().unwrap_or(f64::NAN);
            format!("{value:.2} ± {std:.2}")
        } else {
            format!("{value:.2}")
        }
    };
    let mut out = String::from(
        "| loss | test mAP | CF1 | OF1 | AN→full gap recovered | seconds |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows {
        let gap = row["gap_recovered"]
            .as_f64()
            .map(|g| format!("{g:.0} %"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            row["loss"].as_str().unwrap_or_default(),
            pm(row, "map"),
            pm(row, "cf1"),
            pm(row, "of1"),
            gap,
            row["seconds"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    out
}

fn write_results(
    mlml: &Path,
    setting: &Setting,
    rows: &[Value],
    table: &str,
    seeds: usize,
    results: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let write = |name: String, bytes: &[u8]| {
        let path = results.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    let json_name = format!("{}.json", setting.name);
    write(
        json_name.clone(),
        serde_json::to_string_pretty(rows)
            .expect("rows serialise")
            .as_bytes(),
    )?;
    let md = format!(
        "# {name}\n\n{summary}. Written by `cargo xtask reproduce {name}{seeds_flag}` from \
         `{config}` ({seeds} seed(s): seed s draws the labels and initialises the model; mean ± \
         sample standard deviation over seeds). Test split figures of the epoch with the best \
         validation mAP (sklearn AP, 20 % of the training file held out); CF1 / OF1 at \
         threshold 0.5; mAP, CF1 and OF1 in percent. The last column but one is (mAP - mAP of \
         AN) / (mAP of the full-label row - mAP of AN), left out when that gap is under one \
         mAP point. Seconds: wall time of one run, \
         including the process start. `bce` uses the observed entries only, `an` takes every \
         unobserved label as negative, `bce (full labels)` trains on the full labels (the \
         upper bound); {model_note}\n\n{table}\n![mAP per loss]({name}.png)\n",
        name = setting.name,
        summary = setting.summary,
        model_note = if setting.name.starts_with("fashion") {
            "the head trains on frozen EfficientNet-Lite0 features, which have no class \
             activation map to boost, so `boostlu` has no row (`ll-r` is its loss unboosted)."
        } else {
            "a feature MLP has no class activation map to boost, so `boostlu` has no row \
             (`ll-r` is its loss unboosted)."
        },
        config = setting.config,
        seeds_flag = if seeds == setting.seeds {
            String::new()
        } else {
            format!(" --seeds {seeds}")
        },
    );
    write(format!("{}.md", setting.name), md.as_bytes())?;
    let png = results.join(format!("{}.png", setting.name));
    let status = Command::new(mlml)
        .args([
            "chart".as_ref(),
            "--results".as_ref(),
            results.join(&json_name).as_os_str(),
            "--title".as_ref(),
            format!("{}: test mAP per loss", setting.name).as_ref(),
            "-o".as_ref(),
            png.as_os_str(),
        ])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
    if !status.success() {
        return Err(format!("`mlml chart` failed for {}", png.display()));
    }
    println!(
        "wrote {} (.md, .json, .png)",
        results.join(setting.name).display()
    );
    Ok(())
}

fn sweep(
    setting: &Setting,
    mlml: &Path,
    runs: &Path,
    losses: &[String],
    results: &Path,
) -> Result<(), String> {
    println!(
        "{}: choosing the recipe by the mean validation mAP of {} losses (seed 0; the test \
         figures are not used)",
        setting.name,
        losses.len()
    );
    let mut table = String::from(
        "| hidden | lr | weight decay | epochs | mean val mAP | mean best epoch |\n|---|---|---|---|---|---|\n",
    );
    let mut best: Option<(f64, usize)> = None;
    for (i, (hidden, lr, wd, epochs)) in SWEEP.iter().enumerate() {
        let extra = vec![
            format!("model.hidden={hidden}"),
            format!("training.lr={lr}"),
            format!("training.weight_decay={wd}"),
            format!("training.epochs={epochs}"),
        ];
        let mut vals = Vec::new();
        let mut best_epochs = Vec::new();
        for loss in losses {
            let dir = runs.join(format!("sweep-{i}")).join(loss);
            let label = format!(
                "[{}/{}] {hidden} lr {lr} wd {wd}: {loss}",
                i + 1,
                SWEEP.len()
            );
            let mut sets = seed_sets(0, true);
            sets.extend_from_slice(&extra);
            let figures = train_once(mlml, setting.config, loss, &sets, "cpu", &dir, &label)?;
            vals.push(figures.val_map);
            best_epochs.push(figures.best_epoch);
        }
        let (mean, _) = mean_std(&vals);
        let (mean_epoch, _) = mean_std(&best_epochs);
        table.push_str(&format!(
            "| {hidden} | {lr} | {wd} | {epochs} | {mean:.2} | {mean_epoch:.1} |\n"
        ));
        if best.is_none_or(|(b, _)| mean > b) {
            best = Some((mean, i));
        }
    }
    finish_progress();
    let (score, i) = best.expect("the sweep has recipes");
    let (hidden, lr, wd, epochs) = SWEEP[i];
    let text = format!(
        "# Recipe sweep: {name}\n\nWritten by `cargo xtask reproduce {name} --sweep`. Each recipe \
         trains every registered loss once (seed 0) on `{config}`; the score is the mean over \
         losses of the best validation mAP (20 % of the training file; the runs' test figures \
         play no part). Best: hidden {hidden}, lr {lr}, weight decay {wd}, {epochs} epochs (mean val mAP \
         {score:.2}).\n\n{table}",
        name = setting.name,
        config = setting.config,
    );
    println!("\n{text}");
    std::fs::create_dir_all(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let path = results.join(format!("{}-sweep.md", setting.name));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the single-positive settings' rows train with.
const SINGLE_POSITIVE_RECIPES: &str = "ResNet-50 at 448 px, each row with the recipe of the \
     repository its published number comes from (Zhou et al.'s for AN, AN-LS, WAN, ROLE, EM, \
     EM+APL, focal, ASL and full labels; Cole et al.'s for EPR; Large Loss Matters' for LL-R/Ct/Cp; \
     BoostLU's; GR Loss'): `--plan` prints them";

/// A paper setting reproduce can run: where its data sits under `--data` and how it is imported.
struct PaperRun {
    name: &'static str,
    /// What it trains with, after the setting's summary in [`PAPER_SETTINGS`].
    recipe: &'static str,
    /// The recipe (`configs/recipes/`), with its labels protocol.
    config: &'static str,
    /// `mlml-data import` of the training and of the test file.
    import_train: Import,
    import_test: Import,
    /// The folder under `--data` the imported image paths are relative to.
    images: &'static str,
    /// Paths under `--data` that must exist.
    needs: &'static [&'static str],
    /// Where the training labels come from.
    labels: TrainLabels,
    /// Each row's training recipe.
    recipes: Recipes,
}

/// How a paper setting's rows train.
#[derive(Clone, Copy, Debug)]
enum Recipes {
    /// Each row with the recipe of the repository its published number comes from.
    SinglePositive(Dataset),
    /// Every row with the ASL recipe of the template; SPLC's threshold where the release sets
    /// one.
    Asl { splc_tau: Option<f64> },
}

impl Recipes {
    fn recipe(self, loss: &str) -> Recipe {
        match self {
            Recipes::SinglePositive(dataset) => recipes::single_positive(dataset, loss),
            Recipes::Asl { splc_tau } => {
                let mut recipe = recipes::asl();
                if let (Some(tau), "splc") = (splc_tau, loss) {
                    recipe.values.push(RecipeValue {
                        key: "training.loss_overrides.tau",
                        value: tau.to_string(),
                        source: "robust-loss-mlml README: \"when SPLC is used on COCO-75% labels left, the threshold is set 0.65\" (results.md 1)",
                    });
                }
                recipe
            }
        }
    }
}

/// Where a paper setting's training labels come from.
#[derive(Clone, Copy)]
enum TrainLabels {
    /// The recipe's single-positive protocol (Cole et al.'s draw), on the imported annotation
    /// file.
    SinglePositive,
    /// Every label of the annotation file.
    Full,
    /// The Hill / SPLC release's "`percent` % left" list, `file`, when it lies in `--data`;
    /// otherwise the release's per-image rule redrawn on the annotation file (the list itself
    /// cannot be regenerated: its generator and seed are unknown).
    Release { percent: u32, file: &'static str },
}

/// A COCO 2014 setting: the annotation files and images under `--data`, with the Hill / SPLC
/// settings' ASL recipe.
const fn coco_2014(name: &'static str, labels: TrainLabels) -> PaperRun {
    PaperRun {
        name,
        recipe: "the ASL / Hill / SPLC recipe (ResNet-50 448, RandAugment + Cutout, OneCycle, EMA)",
        config: "configs/recipes/asl-coco.toml",
        import_train: Import {
            input: "annotations/instances_train2014.json",
            args: &["--format", "coco", "--image-prefix", "train2014"],
            data_paths: &[],
        },
        import_test: Import {
            input: "annotations/instances_val2014.json",
            args: &["--format", "coco", "--image-prefix", "val2014"],
            data_paths: &[],
        },
        images: "",
        needs: &[
            "annotations/instances_train2014.json",
            "annotations/instances_val2014.json",
            "train2014",
            "val2014",
        ],
        labels,
        recipes: Recipes::Asl { splc_tau: None },
    }
}

const PAPER_RUNS: &[PaperRun] = &[
    PaperRun {
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-coco-single.toml",
        recipes: Recipes::SinglePositive(Dataset::Coco),
        import_train: Import {
            input: "annotations/instances_train2014.json",
            // Cole et al.'s row order, which their label draw follows.
            args: &[
                "--format",
                "coco",
                "--image-prefix",
                "train2014",
                "--order",
                "id-string",
            ],
            data_paths: &[],
        },
        ..coco_2014("coco-single", TrainLabels::SinglePositive)
    },
    coco_2014(
        "coco-40",
        TrainLabels::Release {
            percent: 40,
            file: "coco_train_0.4left.txt",
        },
    ),
    PaperRun {
        recipes: Recipes::Asl {
            splc_tau: Some(0.65),
        },
        ..coco_2014(
            "coco-75",
            TrainLabels::Release {
                percent: 75,
                file: "coco_train_0.75left.txt",
            },
        )
    },
    PaperRun {
        name: "coco-full",
        recipe: "the ASL / Hill / SPLC recipe with every label",
        ..coco_2014("coco-full", TrainLabels::Full)
    },
    PaperRun {
        name: "voc-single",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-voc-single.toml",
        import_train: Import {
            input: "VOCdevkit/VOC2012",
            args: &["--format", "voc", "--split", "train"],
            data_paths: &[],
        },
        import_test: Import {
            input: "VOCdevkit/VOC2012",
            args: &["--format", "voc", "--split", "val"],
            data_paths: &[],
        },
        images: "VOCdevkit/VOC2012",
        needs: &[
            "VOCdevkit/VOC2012/Annotations",
            "VOCdevkit/VOC2012/ImageSets/Main/train.txt",
            "VOCdevkit/VOC2012/ImageSets/Main/val.txt",
            "VOCdevkit/VOC2012/JPEGImages",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Voc),
    },
    PaperRun {
        name: "nus-single",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-nus-single.toml",
        // No script makes NUS-WIDE's formatted files: the papers ship them, and their rows
        // and columns are the protocol.
        import_train: Import {
            input: "formatted_train_labels.npy",
            args: &["--format", "npy", "--zero-means", "negative"],
            data_paths: &[("--images", "formatted_train_images.npy")],
        },
        import_test: Import {
            input: "formatted_val_labels.npy",
            args: &["--format", "npy", "--zero-means", "negative"],
            data_paths: &[("--images", "formatted_val_images.npy")],
        },
        images: "Flickr",
        needs: &[
            "formatted_train_labels.npy",
            "formatted_train_images.npy",
            "formatted_val_labels.npy",
            "formatted_val_images.npy",
            "Flickr",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Nus),
    },
    PaperRun {
        name: "cub-single",
        recipe: SINGLE_POSITIVE_RECIPES,
        config: "configs/recipes/spml-cub-single.toml",
        // Cole et al.'s `format_cub.py`: the 312 attributes' `is_present`, rows in images.txt
        // order, split by train_test_split.txt; the importer reads the same files.
        import_train: Import {
            input: "",
            args: &["--format", "cub", "--split", "train"],
            data_paths: &[],
        },
        import_test: Import {
            input: "",
            args: &["--format", "cub", "--split", "test"],
            data_paths: &[],
        },
        images: "",
        needs: &[
            "images.txt",
            "train_test_split.txt",
            "attributes/image_attribute_labels.txt",
            "images",
        ],
        labels: TrainLabels::SinglePositive,
        recipes: Recipes::SinglePositive(Dataset::Cub),
    },
];

/// The summary of paper setting `name` (empty for a name that is not one).
fn paper_summary(name: &str) -> &'static str {
    PAPER_SETTINGS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, s)| *s)
}

/// One `mlml-data import`: its input, relative to `--data`, and its other arguments.
struct Import {
    input: &'static str,
    args: &'static [&'static str],
    /// Options whose value is a path under `--data`: (flag, path).
    data_paths: &'static [(&'static str, &'static str)],
}

/// `--smoke`: the whole path on a handful of images, in seconds on a CPU: the small CNN from
/// random weights at 32 px, one epoch.
const SMOKE: &[&str] = &[
    "model.backbone=\"small-cnn\"",
    "model.weights=\"random\"",
    "data.image_size=32",
    "data.workers=1",
    "training.epochs=1",
    "training.batch_size=4",
];

/// The losses a smoke run trains when none is asked for: plain AN and two stateful ones.
const SMOKE_LOSSES: &[&str] = &["an", "role", "ll-ct"];

/// Published end-to-end test mAP (%) with single-positive labels, ResNet-50 at 448 px:
/// (loss, COCO, VOC, NUS-WIDE, CUB, source). From `results.md`'s tables; the GR row is
/// second-hand.
const PUBLISHED_SINGLE: &[(&str, [f64; 4], &str)] = &[
    (FULL_LABEL_ROW, [76.78, 89.42, 52.08, 30.90], ZHOU),
    ("an", [64.92, 85.89, 42.27, 18.31], ZHOU),
    (
        "wan",
        [67.59, 86.98, 45.71, 19.15],
        "Zhou et al. 2022, poster table, DW (primary)",
    ),
    (
        "an-ls",
        [67.15, 87.90, 43.77, 16.26],
        "Zhou et al. 2022, poster table, LS (primary)",
    ),
    ("focal", [68.79, 87.59, 47.00, 19.80], ZHOU),
    ("asl", [68.78, 87.76, 46.93, 18.81], ZHOU),
    ("role", [67.04, 87.77, 41.63, 13.66], ZHOU),
    ("em", [70.70, 89.09, 47.15, 20.85], ZHOU),
    ("em-apl", [70.87, 89.19, 47.59, 21.84], ZHOU),
    ("epr", [63.3, 85.5, 46.0, 20.0], KIM_2022),
    ("ll-r", [71.0, 89.2, 47.4, 19.5], KIM_2022),
    ("ll-ct", [70.5, 89.0, 48.0, 20.4], KIM_2022),
    ("ll-cp", [70.7, 88.4, 48.3, 20.1], KIM_2022),
    (
        "boostlu",
        [72.89, 89.29, 49.59, 19.80],
        "Kim et al. 2023, LL-R + BoostLU (primary)",
    ),
    (
        "gr",
        [73.17, 89.83, 49.08, 21.64],
        "Chen et al. 2024 via the AEVLP figure (second-hand)",
    ),
];
const ZHOU: &str = "Zhou et al. 2022, poster table (primary)";
const KIM_2022: &str = "Kim et al. 2022, Table 1, E2E (primary)";

/// Published test mAP (%) on COCO with 40 % of labels left (the release's list), ResNet-50 at
/// 448 px, Zhang et al. 2021 as two public notes quote it (`results.md` §1.1, third-hand): their
/// "BCE" treats the missing labels as negatives, which is `an` here; "Focal margin + SPLC" is
/// `splc`.
const PUBLISHED_COCO_40: &[(&str, f64)] = &[
    ("an", 70.49),
    ("asl", 72.70),
    ("hill", 75.15),
    ("splc", 75.69),
];

/// The published figure for `loss` on a paper setting, with its source.
fn published(setting: &str, loss: &str) -> Option<(f64, &'static str)> {
    if setting == "coco-40" {
        let row = PUBLISHED_COCO_40.iter().find(|r| r.0 == loss)?;
        return Some((
            row.1,
            "Zhang et al. 2021 as quoted by two design notes (third-hand)",
        ));
    }
    let column = ["coco-single", "voc-single", "nus-single", "cub-single"]
        .iter()
        .position(|s| *s == setting)?;
    let row = PUBLISHED_SINGLE.iter().find(|r| r.0 == loss)?;
    Some((row.1[column], row.2))
}

/// Ours beside the published figure, per loss.
fn published_table(setting: &str, rows: &[Value]) -> String {
    let mut out = String::from(
        "| loss | test mAP (here) | published | here - published | source |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let loss = row["loss"].as_str().unwrap_or_default();
        let map = row["map"].as_f64().unwrap_or(f64::NAN);
        let (value, difference, source) = match published(setting, loss) {
            Some((p, source)) => (format!("{p:.2}"), format!("{:+.2}", map - p), source),
            None => ("-".into(), "-".into(), "no published figure"),
        };
        out.push_str(&format!(
            "| {loss} | {map:.2} | {value} | {difference} | {source} |\n"
        ));
    }
    out
}

fn run_paper_setting(run: &PaperRun, options: &Options, data: &Path) -> Result<(), String> {
    let missing: Vec<&str> = run
        .needs
        .iter()
        .copied()
        .filter(|p| !data.join(p).exists())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}\n--data {} lacks {}",
            paper_setting_message(run.name, paper_summary(run.name), Some(data)),
            data.display(),
            missing.join(", ")
        ));
    }
    let mlml = mlml_binary(options)?;
    let mlml_data = mlml.with_file_name(format!("mlml-data{}", std::env::consts::EXE_SUFFIX));
    if !mlml_data.is_file() {
        return Err(format!(
            "{}: not found beside {} (build it: cargo build --release -p mlml-data)",
            mlml_data.display(),
            mlml.display()
        ));
    }
    let runs = options
        .runs
        .clone()
        .unwrap_or_else(|| target_dir().join("reproduce").join(run.name));
    std::fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;
    let mut sets = Vec::new();
    for (import, file) in [
        (&run.import_train, "train.tsv"),
        (&run.import_test, "test.tsv"),
    ] {
        let output = runs.join(file);
        let data_paths: Vec<String> = import
            .data_paths
            .iter()
            .flat_map(|(flag, path)| [flag.to_string(), data.join(path).display().to_string()])
            .collect();
        let args: Vec<&str> = import
            .args
            .iter()
            .copied()
            .chain(data_paths.iter().map(String::as_str))
            .collect();
        run_import(&mlml_data, &args, &data.join(import.input), &output)?;
        sets.push(output);
    }
    let (label_sets, labels_note) = train_labels(run, data, &mlml_data, &sets[0])?;
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let mut extra = vec![
        format!("data.train_set={}", quoted(&sets[0])),
        format!("data.test_set={}", quoted(&sets[1])),
        format!("data.images={}", quoted(&data.join(run.images))),
    ];
    extra.extend(label_sets);
    if options.select_on_test {
        extra.push("data.selection=\"test\"".into());
    }
    if options.smoke {
        extra.extend(SMOKE.iter().map(|s| s.to_string()));
    }
    let losses: Vec<String> = if !options.losses.is_empty() {
        options.losses.clone()
    } else if options.smoke {
        SMOKE_LOSSES.iter().map(|s| s.to_string()).collect()
    } else {
        let mut all = registered_losses(&mlml)?;
        all.push(FULL_LABEL_ROW.to_string());
        all
    };
    let seeds = options.seeds.unwrap_or(1);
    let summary = format!("{}, {}", paper_summary(run.name), run.recipe);
    println!(
        "{}: {summary}; labels: {labels_note}{}",
        run.name,
        if options.smoke {
            " (smoke: small CNN, 32 px, one epoch; the figures mean nothing)"
        } else {
            ""
        }
    );
    let job = Job {
        mlml: &mlml,
        config: run.config,
        extra: &extra,
        row_sets: &|loss| run.recipes.recipe(loss).sets(),
        seed_draws_labels: false,
        device: &options.backend,
        runs: &runs,
    };
    // With --sweep, Cole et al.'s rows search their batch x lr grid, as their numbers did.
    let swept: Vec<String> = if options.sweep {
        losses
            .iter()
            .filter(|l| recipes::COLE_ROWS.contains(&l.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let plain: Vec<String> = losses
        .iter()
        .filter(|l| !swept.contains(l))
        .cloned()
        .collect();
    let (mut rows, mut failures) = job.every_loss(&plain, seeds);
    for loss in &swept {
        match sweep_row(&job, loss, &run.recipes.recipe(loss)) {
            Ok(row) => rows.push(row),
            Err(message) => failures.push(format!("{loss} (sweep): {message}")),
        }
    }
    rows.sort_by_key(|r| {
        losses
            .iter()
            .position(|l| r["loss"] == l.as_str())
            .unwrap_or(usize::MAX)
    });
    add_gap_recovered(&mut rows);
    for row in &mut rows {
        let loss = row["loss"].as_str().unwrap_or("").to_string();
        if let Some((value, source)) = published(run.name, &loss) {
            row["published_map"] = json!(value);
            row["published_source"] = json!(source);
        }
        let recipe = run.recipes.recipe(&loss);
        row["recipe"] = json!(recipe.name);
        row["recipe_follows"] = json!(recipe.follows);
    }
    let table = markdown_table(&rows, seeds);
    let beside = published_table(run.name, &rows);
    let recipe_notes = recipe_section(run.recipes, &losses);
    let selection_note = if options.select_on_test {
        " THE EPOCH WAS PICKED ON THE TEST SPLIT (--select-on-test, the ASL reference's \
         protocol): the test figures are optimistic."
    } else {
        ""
    };
    println!("\n{table}\nBeside the published figures:\n\n{beside}");
    // A smoke run's figures mean nothing: they stay with the runs, out of docs/results.
    let out_dir = if options.smoke {
        runs.clone()
    } else {
        options.results.clone()
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let json = out_dir.join(format!("{}.json", run.name));
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&rows).expect("rows serialise"),
    )
    .map_err(|e| format!("{}: {e}", json.display()))?;
    let md = out_dir.join(format!("{}.md", run.name));
    let text = format!(
        "# {name}\n\n{summary}. Written by `cargo xtask reproduce {name} --data DIR{smoke}` from \
         `{config}` ({seeds} seed(s) of the initialisation; the training labels: {labels_note}). \
         Test figures of the epoch with the best validation mAP; mAP, CF1 and OF1 in \
         percent.{selection_note}\n\n{table}\n## Beside the published figures\n\n{beside}\n\
         ## Recipes\n\n{recipe_notes}",
        name = run.name,
        smoke = if options.smoke { " --smoke" } else { "" },
        config = run.config,
    );
    std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("wrote {} and {}", json.display(), md.display());
    all_ran(&failures)
}

/// One row trained at every point of Cole et al.'s batch x lr grid (seed 0): the run with the
/// best validation mAP is the row, as their sweep reports it.
fn sweep_row(job: &Job<'_>, loss: &str, recipe: &Recipe) -> Result<Value, String> {
    let mut best: Option<(RunFigures, usize, &str)> = None;
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
    row["sweep_choice"] = json!(format!(
        "batch {batch}, lr {lr} (best validation mAP of {} runs)",
        recipes::COLE_GRID.len()
    ));
    Ok(row)
}

/// Per recipe: the rows that follow it, the repository, and what differs from it.
fn recipe_section(recipes: Recipes, losses: &[String]) -> String {
    let mut groups: Vec<(Recipe, Vec<&str>)> = Vec::new();
    for loss in losses {
        let recipe = recipes.recipe(loss);
        match groups.iter_mut().find(|(r, _)| r.name == recipe.name) {
            Some((_, rows)) => rows.push(loss),
            None => groups.push((recipe, vec![loss])),
        }
    }
    let mut out = String::new();
    for (recipe, rows) in groups {
        out.push_str(&format!(
            "- **{}** ({}): follows {}; differs: {}.\n",
            recipe.name,
            rows.join(", "),
            recipe.follows,
            recipe.differs.join("; ")
        ));
    }
    out.push_str(
        "\nEvery value of each recipe and its source: `cargo xtask reproduce SETTING --plan`.\n",
    );
    out
}

/// `--plan`: each row's recipe and the run `mlml train --dry-run --json` resolves for it, with
/// no data read (a paper setting's paths are its template's).
fn plan(options: &Options) -> Result<(), String> {
    let (config, recipes, seed_draws_labels): (&str, Option<Recipes>, bool) =
        if let Some(setting) = EMBEDDED.iter().find(|s| s.name == options.setting) {
            (setting.config, None, true)
        } else if let Some(run) = PAPER_RUNS.iter().find(|r| r.name == options.setting) {
            (run.config, Some(run.recipes), false)
        } else {
            return Err(unknown_setting(&options.setting));
        };
    let mlml = mlml_binary(options)?;
    let losses = if options.losses.is_empty() {
        let mut all: Vec<String> = registered_losses(&mlml)?
            .into_iter()
            .filter(|l| recipes.is_some() || l != "boostlu")
            .collect();
        all.push(FULL_LABEL_ROW.to_string());
        all
    } else {
        options.losses.clone()
    };
    let mut rows = Vec::new();
    for loss in &losses {
        let recipe = recipes.map(|r| r.recipe(loss));
        let mut sets = seed_sets(0, seed_draws_labels);
        if let Some(recipe) = &recipe {
            sets.extend(recipe.sets());
        }
        if options.select_on_test {
            sets.push("data.selection=\"test\"".into());
        }
        let mut args = train_args(config, loss, &sets, &options.backend, None);
        args.extend(["--dry-run".into(), "--json".into()]);
        let out = Command::new(&mlml)
            .args(&args)
            .current_dir(project_root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{loss}: `mlml train --dry-run` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let resolved: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{loss}: `mlml train --dry-run --json` printed no JSON: {e}"))?;
        let mut row = json!({ "row": loss });
        if let Some(recipe) = &recipe {
            row["recipe"] = json!({
                "name": recipe.name,
                "follows": recipe.follows,
                "differs": recipe.differs,
                "values": recipe.values.iter().map(|v| json!({
                    "key": v.key, "value": v.value, "source": v.source,
                })).collect::<Vec<_>>(),
            });
        }
        row["config"] = resolved["config"].clone();
        row["loss"] = resolved["loss"].clone();
        rows.push(row);
    }
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "{} ({config}): one line per row; --json for every resolved key\n",
        options.setting
    );
    for row in &rows {
        let t = &row["config"]["training"];
        println!(
            "{:<18} {:<8} {} lr {} batch {} epochs {} head x{} wd {}{}{}{}{} | {}",
            row["row"].as_str().unwrap_or_default(),
            row["recipe"]["name"].as_str().unwrap_or("config"),
            t["optimizer"].as_str().unwrap_or_default(),
            t["lr"],
            t["batch_size"],
            t["epochs"],
            t["head_lr_mult"],
            t["weight_decay"],
            t["patience"]
                .as_u64()
                .map(|p| format!(", patience {p}"))
                .unwrap_or_default(),
            t["stop_below_best"]
                .as_f64()
                .map(|p| format!(", stop {p} below best"))
                .unwrap_or_default(),
            if row["config"]["data"]["drop_last"] == true {
                ", drop_last"
            } else {
                ""
            },
            row["config"]["model"]["boost_alpha"]
                .as_f64()
                .map(|a| format!(", boost alpha {a}"))
                .unwrap_or_default(),
            row["loss"]["settings"],
        );
    }
    Ok(())
}

/// `mlml-data import ARGS INPUT -o OUTPUT`; its stderr becomes the error.
fn run_import(mlml_data: &Path, args: &[&str], input: &Path, output: &Path) -> Result<(), String> {
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
fn train_labels(
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
    fn mean_and_sample_standard_deviation() {
        let (mean, std) = mean_std(&[40.0, 42.0, 44.0]);
        assert_eq!(mean, 42.0);
        assert_eq!(std, 2.0);
        assert_eq!(mean_std(&[41.5]), (41.5, 0.0));
    }

    #[test]
    fn gap_recovered_is_measured_from_an_to_the_full_label_row() {
        let mut rows = vec![
            json!({"loss": "an", "map": 40.0}),
            json!({"loss": "role", "map": 43.0}),
            json!({"loss": FULL_LABEL_ROW, "map": 50.0}),
        ];
        add_gap_recovered(&mut rows);
        assert_eq!(rows[0]["gap_recovered"], 0.0);
        assert_eq!(rows[1]["gap_recovered"], 30.0);
        assert_eq!(rows[2]["gap_recovered"], 100.0);
        let mut tiny_gap = vec![
            json!({"loss": "an", "map": 81.5}),
            json!({"loss": FULL_LABEL_ROW, "map": 82.0}),
        ];
        add_gap_recovered(&mut tiny_gap);
        assert!(tiny_gap[0].get("gap_recovered").is_none());
        let mut without_an = vec![json!({"loss": "role", "map": 43.0})];
        add_gap_recovered(&mut without_an);
        assert!(without_an[0].get("gap_recovered").is_none());
    }

    #[test]
    fn options_are_checked() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["yeast-single", "--seeds", "3", "--loss", "hill"])).unwrap();
        assert_eq!((o.setting.as_str(), o.seeds), ("yeast-single", Some(3)));
        assert_eq!(o.losses, ["hill"]);
        assert!(parse(&args(&["yeast-single", "--seeds", "0"]))
            .unwrap_err()
            .contains("--seeds 0: expected a positive integer"));
        assert!(parse(&args(&["yeast-single", "--frobnicate"]))
            .unwrap_err()
            .contains("unknown option --frobnicate"));
        assert!(parse(&args(&[])).unwrap_err().starts_with("usage:"));
    }

    #[test]
    fn a_paper_setting_says_what_data_it_needs_and_where_to_get_it() {
        let message =
            reproduce(&["coco-single".into(), "--data".into(), "/nowhere".into()]).unwrap_err();
        assert!(
            message.contains("--data /nowhere: no such directory"),
            "{message}"
        );
        assert!(
            message.contains("instances_{train,val}2014.json"),
            "{message}"
        );
        assert!(
            message.contains("https://cocodataset.org/#download"),
            "{message}"
        );
        let message = reproduce(&["voc-single".into()]).unwrap_err();
        assert!(
            message.contains("needs --data DIR holding VOCdevkit/VOC2012"),
            "{message}"
        );
        assert!(reproduce(&["mnist".into()])
            .unwrap_err()
            .starts_with("unknown setting 'mnist'"));
    }

    #[test]
    fn every_paper_setting_is_wired_to_a_recipe_and_a_published_column() {
        for (name, _) in PAPER_SETTINGS {
            let run = PAPER_RUNS.iter().find(|r| r.name == *name);
            let run = run.unwrap_or_else(|| panic!("{name} has no PaperRun"));
            assert!(project_root().join(run.config).is_file(), "{}", run.config);
            assert!(!run.needs.is_empty(), "{name}");
        }
        assert_eq!(PAPER_RUNS.len(), PAPER_SETTINGS.len());
        // The columns of the single-positive table are the settings they name.
        assert_eq!(published("nus-single", "an").map(|p| p.0), Some(42.27));
        assert_eq!(published("cub-single", "em-apl").map(|p| p.0), Some(21.84));
        assert_eq!(published("voc-single", "ll-r").map(|p| p.0), Some(89.2));
        assert_eq!(published("coco-full", "an"), None);
    }

    #[test]
    fn every_embedded_setting_has_its_config() {
        for setting in EMBEDDED {
            assert!(
                project_root().join(setting.config).is_file(),
                "{}",
                setting.config
            );
        }
    }
}

/// Every paper row's resolved recipe against the values of its reference, written out here
/// independently of `recipes.rs`, with their sources.
#[cfg(test)]
mod recipe_tests {
    use super::*;

    /// The rows of each family on a single-positive setting.
    const ZHOU: &[&str] = &[
        "an",
        "an-ls",
        "wan",
        "role",
        "em",
        "em-apl",
        "focal",
        "asl",
        FULL_LABEL_ROW,
    ];
    const COLE: &[&str] = &["epr"];
    const LL: &[&str] = &["ll-r", "ll-ct", "ll-cp"];
    const BOOSTLU: &[&str] = &["boostlu"];
    const GR: &[&str] = &["gr"];
    const SINGLE: &[&str] = &["voc-single", "coco-single", "nus-single", "cub-single"];
    const ASL: &[&str] = &["coco-40", "coco-75", "coco-full"];
    const ASL_ROWS: &[&str] = &["an", "asl", "hill", "splc", "focal", FULL_LABEL_ROW];

    /// (settings, rows, key, expected TOML value, source).
    type Expected = (
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
    );

    const EXPECTED: &[Expected] = &[
        // Zhou et al. main.py, per-dataset bsize / lr (spml-an-epr-role-em.md 1.8).
        (
            &["voc-single"],
            ZHOU,
            "training.batch_size",
            "8",
            "Zhou main.py, pascal",
        ),
        (
            &["voc-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, pascal",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.batch_size",
            "16",
            "Zhou main.py, coco",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, coco",
        ),
        (
            &["nus-single"],
            ZHOU,
            "training.batch_size",
            "16",
            "Zhou main.py, nuswide",
        ),
        (
            &["nus-single"],
            ZHOU,
            "training.lr",
            "1e-5",
            "Zhou main.py, nuswide",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.batch_size",
            "8",
            "Zhou main.py, cub",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.lr",
            "1e-4",
            "Zhou main.py, cub",
        ),
        (
            SINGLE,
            ZHOU,
            "training.optimizer",
            "\"adam\"",
            "Zhou main.py: Adam on f",
        ),
        (
            SINGLE,
            ZHOU,
            "training.head_lr_mult",
            "1.0",
            "Zhou main.py: one group",
        ),
        (
            SINGLE,
            ZHOU,
            "training.weight_decay",
            "0.0",
            "Zhou main.py: no decay",
        ),
        (
            SINGLE,
            ZHOU,
            "training.epochs",
            "10",
            "Zhou main.py: num_epochs 10",
        ),
        (
            SINGLE,
            ZHOU,
            "training.patience",
            "1",
            "Zhou main.train: first non-improving epoch stops",
        ),
        (
            SINGLE,
            ZHOU,
            "data.drop_last",
            "false",
            "Zhou loaders: drop_last=False",
        ),
        (
            &["coco-single"],
            ZHOU,
            "training.preset",
            "\"coco\"",
            "EM / EM+APL coco alpha, beta, warmup",
        ),
        (
            &["cub-single"],
            ZHOU,
            "training.preset",
            "\"cub\"",
            "EM / EM+APL cub alpha, beta, warmup",
        ),
        // Cole et al. train.py end_to_end at one sweep point (spml-an-epr-role-em.md 4.2).
        (
            SINGLE,
            COLE,
            "data.drop_last",
            "true",
            "Cole loaders: drop_last=True",
        ),
        (
            SINGLE,
            COLE,
            "training.optimizer",
            "\"adam\"",
            "Cole train.py: Adam",
        ),
        (
            SINGLE,
            COLE,
            "training.epochs",
            "10",
            "Cole train.py end_to_end: 10 epochs",
        ),
        (
            &["coco-single"],
            COLE,
            "training.batch_size",
            "16",
            "a point of Cole's grid",
        ),
        (
            &["cub-single"],
            COLE,
            "training.lr",
            "1e-4",
            "a point of Cole's grid",
        ),
        // Large Loss Matters: the maintainer's table (results.md 2.3), the code's defaults (1.5).
        (
            &["voc-single"],
            LL,
            "training.optimizer",
            "\"sgd\"",
            "LLM issue 4: VOC SGD",
        ),
        (
            &["voc-single"],
            LL,
            "training.lr",
            "5e-3",
            "LLM issue 4: VOC 5e-3",
        ),
        (
            &["voc-single"],
            LL,
            "training.momentum",
            "0.9",
            "LLM config.py SGD option",
        ),
        (
            &["voc-single"],
            LL,
            "training.weight_decay",
            "1e-3",
            "LLM config.py SGD option",
        ),
        (
            &["coco-single", "nus-single", "cub-single"],
            LL,
            "training.optimizer",
            "\"adam\"",
            "LLM issue 4: Adam",
        ),
        (
            &["coco-single", "nus-single"],
            LL,
            "training.lr",
            "1e-5",
            "LLM issue 4: 1e-5",
        ),
        (
            &["cub-single"],
            LL,
            "training.lr",
            "7.5e-5",
            "LLM issue 4: CUB 7.5e-5",
        ),
        (
            &["voc-single"],
            &["ll-r"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["voc-single"],
            &["ll-ct"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["voc-single"],
            &["ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.1",
            "LLM issue 4",
        ),
        (
            &["coco-single", "nus-single"],
            &["ll-r"],
            "training.loss_overrides.delta_rel_percent",
            "0.4",
            "LLM issue 4",
        ),
        (
            &["coco-single", "nus-single"],
            &["ll-ct", "ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            &["cub-single"],
            &["ll-r", "ll-ct"],
            "training.loss_overrides.delta_rel_percent",
            "0.4",
            "LLM issue 4",
        ),
        (
            &["cub-single"],
            &["ll-cp"],
            "training.loss_overrides.delta_rel_percent",
            "0.2",
            "LLM issue 4",
        ),
        (
            SINGLE,
            LL,
            "training.batch_size",
            "16",
            "LLM config.py bsize 16",
        ),
        (
            SINGLE,
            LL,
            "training.epochs",
            "10",
            "LLM config.py num_epochs 10",
        ),
        (
            SINGLE,
            LL,
            "training.head_lr_mult",
            "10.0",
            "LLM train.py lr_mult 10",
        ),
        (
            SINGLE,
            LL,
            "training.stop_below_best",
            "3.0",
            "LLM train.py: drop > 3 stops",
        ),
        // BoostLU (largeloss-boostlu-gr.md 2.1, 2.2).
        (
            SINGLE,
            BOOSTLU,
            "model.boost_alpha",
            "5.0",
            "BoostLU config.py alpha 5",
        ),
        (SINGLE, BOOSTLU, "training.lr", "1e-5", "BoostLU fixed lr"),
        (
            SINGLE,
            BOOSTLU,
            "training.head_lr_mult",
            "10.0",
            "BoostLU head x10",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.batch_size",
            "16",
            "BoostLU bsize 16",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.epochs",
            "10",
            "BoostLU 10 epochs",
        ),
        (
            SINGLE,
            BOOSTLU,
            "training.loss_overrides.delta_rel_percent",
            "0.5",
            "BoostLU LL-R 0.5 %",
        ),
        // GR Loss config.py (largeloss-boostlu-gr.md 3.3).
        (
            SINGLE,
            GR,
            "training.batch_size",
            "8",
            "GRLoss config.py bsize 8",
        ),
        (
            SINGLE,
            GR,
            "training.lr",
            "1e-5",
            "GRLoss config.py lr 1e-5",
        ),
        (
            SINGLE,
            GR,
            "training.epochs",
            "8",
            "GRLoss config.py num_epochs 8",
        ),
        (
            SINGLE,
            GR,
            "training.head_lr_mult",
            "10.0",
            "GRLoss config.py lr_mult 10",
        ),
        (
            SINGLE,
            GR,
            "training.stop_below_best",
            "2.0",
            "GRLoss train.py: drop > 2 stops",
        ),
        // The protocol every single-positive row shares (spml-an-epr-role-em.md 3.4, 4.1).
        (SINGLE, ZHOU, "data.image_size", "448", "Resize((448, 448))"),
        (SINGLE, LL, "data.val_fraction", "0.2", "val_frac 0.2"),
        (SINGLE, GR, "data.split_seed", "1200", "split_seed 1200"),
        (
            SINGLE,
            BOOSTLU,
            "data.label_seed",
            "1200",
            "generate_observed_labels seed 1200",
        ),
        (
            SINGLE,
            COLE,
            "model.backbone",
            "\"resnet50\"",
            "torchvision resnet50",
        ),
        // The ASL recipe (asl-hill-splc.md 4).
        (
            ASL,
            ASL_ROWS,
            "training.batch_size",
            "128",
            "robust-loss-mlml train.py batch 128",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.lr",
            "1e-4",
            "OneCycleLR max_lr 1e-4",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.weight_decay",
            "1e-4",
            "add_weight_decay 1e-4",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.epochs",
            "31",
            "Stop_epoch 30: 31 epochs",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.ema_decay",
            "0.9997",
            "ModelEma 0.9997",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.schedule.one-cycle.epochs",
            "80",
            "OneCycleLR epochs 80",
        ),
        (
            ASL,
            ASL_ROWS,
            "training.schedule.one-cycle.pct_start",
            "0.2",
            "pct_start 0.2",
        ),
        (
            ASL,
            ASL_ROWS,
            "data.transform",
            "\"asl\"",
            "CutoutPIL + RandAugment",
        ),
        (
            &["coco-75"],
            &["splc"],
            "training.loss_overrides.tau",
            "0.65",
            "robust-loss-mlml README",
        ),
    ];

    /// The template with the row's recipe applied as `--set KEY=VALUE`s.
    fn resolved(run: &PaperRun, loss: &str) -> toml::Table {
        let text = std::fs::read_to_string(project_root().join(run.config)).unwrap();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        for set in run.recipes.recipe(loss).sets() {
            let (key, value) = set.split_once('=').unwrap();
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .unwrap_or_else(|e| panic!("{}: {set}: {e}", run.name))
                .remove("v")
                .unwrap();
            let parts: Vec<&str> = key.split('.').collect();
            let mut node = &mut table;
            for part in &parts[..parts.len() - 1] {
                node = node
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap();
            }
            node.insert(parts[parts.len() - 1].to_string(), value);
        }
        table
    }

    fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
        let mut parts = key.split('.');
        let mut value = table.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    fn same(a: &toml::Value, b: &toml::Value) -> bool {
        match (
            a.as_float().or(a.as_integer().map(|i| i as f64)),
            b.as_float().or(b.as_integer().map(|i| i as f64)),
        ) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
    }

    #[test]
    fn every_row_trains_with_its_references_values() {
        let mut checked = 0;
        for (settings, rows, key, expected, source) in EXPECTED {
            let want: toml::Value = toml::from_str::<toml::Table>(&format!("v = {expected}"))
                .unwrap()
                .remove("v")
                .unwrap();
            for setting in *settings {
                let run = PAPER_RUNS.iter().find(|r| r.name == *setting).unwrap();
                for loss in *rows {
                    let table = resolved(run, loss);
                    let got = lookup(&table, key);
                    assert!(
                        got.is_some_and(|g| same(g, &want)),
                        "{setting}, {loss}: {key} is {got:?}, the reference has {expected} ({source})"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked}");
    }

    /// What a family must not carry over from another: an early stop or a multiplier.
    #[test]
    fn no_row_inherits_another_recipes_stopping_rule() {
        for setting in SINGLE {
            let run = PAPER_RUNS.iter().find(|r| r.name == *setting).unwrap();
            for loss in LL.iter().chain(BOOSTLU).chain(GR).chain(COLE) {
                let table = resolved(run, loss);
                assert!(
                    lookup(&table, "training.patience").is_none(),
                    "{setting}, {loss}"
                );
            }
            for loss in ZHOU.iter().chain(COLE).chain(BOOSTLU) {
                let table = resolved(run, loss);
                assert!(
                    lookup(&table, "training.stop_below_best").is_none(),
                    "{setting}, {loss}"
                );
            }
        }
    }

    #[test]
    fn every_value_of_every_recipe_names_its_source() {
        for run in PAPER_RUNS {
            for loss in ZHOU.iter().chain(COLE).chain(LL).chain(BOOSTLU).chain(GR) {
                let recipe = run.recipes.recipe(loss);
                assert!(!recipe.follows.is_empty());
                for v in &recipe.values {
                    assert!(v.source.len() > 20, "{}: {loss}: {}", run.name, v.key);
                }
            }
        }
    }
}
