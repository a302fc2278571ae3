//! The rows of a setting's twin (the same network and recipe in PyTorch) beside ours: trained
//! with `--pytorch` on the rows and observed labels of our runs, or read from the measurements
//! the committed table was written with.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::report::{mean_std, Row};
use super::settings::Twin;
use crate::project_root;

/// The twin's rows, each with the row of ours it stands beside, and where they come from.
#[derive(Debug, Default)]
pub(super) struct TwinRows {
    pub(super) rows: Vec<(String, Row)>,
    pub(super) source: String,
}

/// One run of the twin script, as its `--json` writes it.
#[derive(serde::Deserialize)]
struct TwinRun {
    val_map: f64,
    test_map: f64,
    seconds: f64,
    torch: String,
}

/// The twin's rows for those of `ours` it trains, over `seeds` seeds.
pub(super) fn twin_rows(
    twin: &Twin,
    ours: &[Row],
    runs: &Path,
    seeds: usize,
    train: bool,
) -> Result<TwinRows, String> {
    let mut out = TwinRows::default();
    for &(beside, stem) in twin.rows {
        if !ours.iter().any(|r| r.loss == beside) {
            continue;
        }
        let mut measured = Vec::new();
        for seed in 0..seeds {
            let path = if train {
                let run = runs
                    .join(format!("seed-{seed}"))
                    .join(beside.replace(' ', "_"));
                train_twin(twin, &run, seed)?
            } else {
                project_root()
                    .join(twin.committed)
                    .join(format!("{stem}{seed}.json"))
            };
            match read_run(&path) {
                Ok(run) => measured.push(run),
                // Committed measurements cover the committed table's seeds only.
                Err(_) if !train => {
                    eprintln!(
                        "reproduce: no {} row beside '{beside}': {} is missing (train it with --pytorch)",
                        twin.framework,
                        path.display()
                    );
                    break;
                }
                Err(message) => return Err(message),
            }
        }
        if measured.len() == seeds {
            out.rows
                .push((beside.to_string(), summarise(twin, beside, &measured)));
        }
    }
    out.source = if train {
        format!(
            "trained by `{}` in this reproduce, after ours, on the rows and observed labels of \
             our run of the same seed",
            twin.script
        )
    } else {
        format!(
            "the committed measurements in `{}` (`{}` on the rows and observed labels of our run \
             of the same seed; {}); `--pytorch` trains them again",
            twin.committed, twin.script, twin.committed_on
        )
    };
    Ok(out)
}

/// Runs the twin script on our run `run` and returns the JSON it wrote there.
fn train_twin(twin: &Twin, run: &Path, seed: usize) -> Result<PathBuf, String> {
    let observed = run.join("observed-labels.npy");
    if !observed.is_file() {
        return Err(format!(
            "{}: missing, so {} cannot train on the same rows",
            observed.display(),
            twin.framework
        ));
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| {
        if Path::new("/usr/bin/python3").is_file() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let json = run.join("pytorch.json");
    eprintln!(
        "reproduce: {} on {} (seed {seed})",
        twin.script,
        run.display()
    );
    let out = Command::new(&python)
        .arg(project_root().join(twin.script))
        .arg(run)
        .args([
            "--seed",
            &seed.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&python).display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("No module named") {
            " (it needs torch, numpy and scikit-learn: on Debian apt-get install python3-torch \
             python3-sklearn; set PYTHON to choose the interpreter)"
        } else {
            ""
        };
        return Err(format!(
            "{} {} failed{hint}: {}",
            Path::new(&python).display(),
            twin.script,
            stderr.trim().lines().last().unwrap_or("")
        ));
    }
    Ok(json)
}

fn read_run(path: &Path) -> Result<TwinRun, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str::<Value>(&text)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn summarise(twin: &Twin, beside: &str, runs: &[TwinRun]) -> Row {
    let pick = |f: fn(&TwinRun) -> f64| mean_std(&runs.iter().map(f).collect::<Vec<_>>());
    let (map, map_std) = pick(|r| r.test_map);
    Row {
        loss: format!("{beside}, {} {}", twin.framework, runs[0].torch),
        map,
        map_std,
        // The script reports mAP only.
        cf1: f64::NAN,
        cf1_std: f64::NAN,
        of1: f64::NAN,
        of1_std: f64::NAN,
        seconds: pick(|r| r.seconds).0,
        val_map: pick(|r| r.val_map).0,
        seeds: runs.len(),
        map_per_seed: runs.iter().map(|r| r.test_map).collect(),
        ..Row::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWIN: Twin = Twin {
        framework: "PyTorch",
        script: "scripts/fashion_torch.py",
        rows: &[("an", "torch-an"), ("bce (full labels)", "torch-full")],
        committed: "docs/results/fashion-cnn-runs",
        committed_on: "test",
    };

    #[test]
    fn committed_measurements_make_the_rows_beside_ours_and_a_missing_seed_leaves_a_row_out() {
        let ours = |loss: &str| Row {
            loss: loss.into(),
            ..Row::default()
        };
        let rows = [ours("an"), ours("hill"), ours("bce (full labels)")];
        let twins = twin_rows(&TWIN, &rows, Path::new("/nowhere"), 3, false).unwrap();
        let names: Vec<&str> = twins.rows.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(names, ["an", "bce (full labels)"]);
        let (_, an) = &twins.rows[0];
        assert_eq!(an.loss, "an, PyTorch 1.13.0a0");
        assert_eq!(an.seeds, 3);
        // docs/results/fashion-cnn-runs/torch-an{0,1,2}.json
        assert!((an.map - 77.18).abs() < 0.005, "{}", an.map);
        assert!(an.cf1.is_nan());
        assert!(twins.source.contains("committed measurements"));
        // The committed table has three seeds; a fourth has no measurement, so no row.
        let four = twin_rows(&TWIN, &rows, Path::new("/nowhere"), 4, false).unwrap();
        assert!(four.rows.is_empty());
    }

    #[test]
    fn training_the_twin_needs_our_runs_observed_labels() {
        let rows = [Row {
            loss: "an".into(),
            ..Row::default()
        }];
        let dir = tempfile::tempdir().unwrap();
        let message = twin_rows(&TWIN, &rows, dir.path(), 1, true).unwrap_err();
        assert!(
            message.contains("observed-labels.npy: missing"),
            "{message}"
        );
    }
}
