//! The `mlml` binary end to end on the embedded yeast set: train, stop, resume, the losses
//! listing, and clear errors with exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{json, mlml, root, stderr};

const CONFIG: &str = "configs/yeast-single.toml";
/// ROLE (the loss with the most state) on a small, quick recipe.
const ROLE: [&str; 8] = [
    "--set",
    "training.loss=\"role\"",
    "--set",
    "model.hidden=[64]",
    "--set",
    "training.lr=0.003",
    "--set",
    "training.epochs=4",
];

#[test]
fn train_stop_and_resume_give_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    let set = ROLE;
    let out = mlml(
        &[
            &[
                "train",
                "--config",
                CONFIG,
                "--out",
                whole.to_str().unwrap(),
            ][..],
            &set,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for file in [
        "config.toml",
        "progress.json",
        "metrics.jsonl",
        "report.json",
        "checkpoint.bin",
    ] {
        assert!(whole.join(file).is_file(), "{file}");
    }
    let report = json(&whole.join("report.json"));
    assert_eq!(report["epochs_done"], 4);
    // Yeast's random-ranking mAP is about 30 %.
    assert!(report["best_val_map"].as_f64().unwrap() > 38.0, "{report}");
    assert_eq!(
        std::fs::read_to_string(whole.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    let out = mlml(
        &[
            &[
                "train",
                "--config",
                CONFIG,
                "--out",
                split.to_str().unwrap(),
                "--stop-after-epochs",
                "3",
            ][..],
            &set,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&split.join("report.json"))["epochs_done"], 3);
    let out = mlml(&["resume", split.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Same figures every epoch and the same loss state (ROLE's estimator and Adam moments).
    assert_eq!(
        json(&split.join("progress.json")),
        json(&whole.join("progress.json"))
    );
    // The kept epoch's validation scores: those its epoch computed in the whole run, scored
    // again from the checkpoint after the resume (the kept epoch is the third).
    assert_eq!(json(&whole.join("report.json"))["best_epoch"], 3);
    for scores in ["val_scores.npy", "test_scores.npy"] {
        assert_eq!(
            std::fs::read(split.join(scores)).unwrap(),
            std::fs::read(whole.join(scores)).unwrap(),
            "{scores}"
        );
    }

    // A second `train` into a run directory is refused.
    let out = mlml(&[
        "train",
        "--config",
        CONFIG,
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already holds a run; continue it with `mlml resume"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_configs_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out_dir = out_dir.to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[data]\ntrain_features = \"nowhere.npy\"\ntrain_labels = \"x.npy\"\nclasses = \"datasets/yeast/classes.txt\"\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "training.lrr=1"],
            "--set training.lrr=1: training.lrr is not a config key: unknown field `lrr`",
        ),
        (
            &["--set", "training.loss=\"hil\""],
            "unknown loss 'hil'; valid losses: bce, an",
        ),
        (
            &["--set", "training.preset=\"pascal\""],
            "unknown variant `pascal`",
        ),
        (
            &["--set", "training.epochs=\"many\""],
            "invalid type: string \"many\"",
        ),
        (
            &["--set", "training.optimizer=rmsprop"],
            "unknown variant `rmsprop`, expected one of `adam`, `adamw`, `sgd`",
        ),
        (
            &["--set", "training.momentum=0.9"],
            "yeast-single.toml: bad config: training.momentum and training.nesterov are SGD's",
        ),
        (
            &[
                "--set",
                "training.optimizer=sgd",
                "--set",
                "training.schedule={one-cycle={epochs=20,pct_start=0.2}}",
            ],
            "with optimizer = \"sgd\" it would have to cycle SGD's momentum",
        ),
        (
            &["--set", "training.schedule={cosine={min_lr=1.0}}"],
            "training.schedule.cosine.min_lr (1) must be in [0, training.lr = 0.001]",
        ),
    ];
    for (extra, expected) in cases {
        let out = mlml(&[&["train", "--config", CONFIG, "--out", out_dir][..], extra].concat());
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{extra:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"));
        std::fs::remove_dir_all(out_dir).ok();
    }
    let out = mlml(&["train", "--config", bad.to_str().unwrap(), "--out", out_dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nowhere.npy"), "{}", stderr(&out));
    let out = mlml(&["resume", dir.path().to_str().unwrap()]);
    assert!(stderr(&out).contains("no run here"), "{}", stderr(&out));
    // clap's usage errors exit 2.
    assert_eq!(mlml(&["train", "--config"]).status.code(), Some(2));
}

#[test]
fn losses_lists_every_loss_with_defaults_and_presets() {
    let out = mlml(&["losses", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 18);
    let epr = rows.iter().find(|r| r["name"] == "epr").unwrap();
    assert_eq!(epr["defaults"]["expected_num_pos"], 1.5);
    assert_eq!(epr["presets"]["coco"][0]["value"], 2.9);
    assert_eq!(epr["presets"]["yeast"][0]["value"], 4.228);
    assert!(epr["presets"]["coco"][0]["source"]
        .as_str()
        .unwrap()
        .contains("Cole"));
    let text = mlml(&["losses"]);
    assert!(String::from_utf8_lossy(&text.stdout).lines().count() == 18);
}

#[test]
fn partial_labels_give_test_figures_curves_and_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = mlml(&[
        "train",
        "--config",
        "configs/yeast-40.toml",
        "--set",
        "training.epochs=3",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("epoch 3/3: train loss"),
        "{}",
        stderr(&out)
    );
    let report = json(&run.join("report.json"));
    assert_eq!(report["labels"], "partial (40 % of positives kept)");
    let test = &report["test"];
    assert_eq!(test["rows"], 917);
    // Random ranking gives about 30 % on yeast; three epochs of AN with 40 % of the positives
    // are well above it. AN pushes most scores under 0.5, yet some labels are selected.
    assert!(test["map"].as_f64().unwrap() > 38.0, "{report}");
    let of1 = test["of1"].as_f64().unwrap();
    assert!(of1 > 0.0 && of1 < 100.0, "{report}");
    assert!(report["train_rows_per_second"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("epoch,train_loss,val_map,val_map_ranked,lr\n1,"));
    // Cole et al.'s precision and recall at top-1, 3 and 5, and the AP of each class.
    let at_k: Vec<u64> = test["at_k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["k"].as_u64().unwrap())
        .collect();
    assert_eq!(at_k, [1, 3, 5]);
    let precision_1 = test["at_k"][0]["precision"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&precision_1), "{report}");
    let per_class = test["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 14);
    let mean_ap = per_class
        .iter()
        .map(|c| c["ap"].as_f64().unwrap())
        .sum::<f64>()
        / 14.0;
    assert!(
        (mean_ap - test["map"].as_f64().unwrap()).abs() < 1e-9,
        "{report}"
    );
    assert_eq!(report["val"]["per_class"].as_array().unwrap().len(), 14);
    // The selected model's scores, rows in dataset order: [917, 14] float32 on test.
    let npy = std::fs::read(run.join("test_scores.npy")).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let header = String::from_utf8_lossy(&npy[10..80]).to_string();
    assert!(
        header.contains("'<f4'") && header.contains("(917, 14)"),
        "{header}"
    );
    assert_eq!(npy.len() % 16, (917 * 14 * 4) % 16);
    assert!(run.join("val_scores.npy").is_file());
    let png = std::fs::read(run.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let out = mlml(&[
        "train",
        "--config",
        "configs/yeast-40.toml",
        "--set",
        "data.labels={ partial = 1.5 }",
        "--out",
        dir.path().join("bad").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("fraction of positives kept must be in (0, 1], got 1.5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn chart_draws_the_same_png_for_the_same_rows_and_names_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.json");
    std::fs::write(
        &rows,
        r#"[{"loss": "an", "map": 41.5, "map_std": 0.4}, {"loss": "bce (full labels)", "map": 48.2}]"#,
    )
    .unwrap();
    let draw = |name: &str| {
        let png = dir.path().join(name);
        let out = mlml(&[
            "chart",
            "--results",
            rows.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(png).unwrap()
    };
    let (a, b) = (draw("a.png"), draw("b.png"));
    assert_eq!(&a[..4], b"\x89PNG");
    assert_eq!(a, b);
    let decoded = image_size(&a);
    assert_eq!(decoded.0, 900);

    std::fs::write(&rows, r#"[{"loss": "an", "map": 41.5}, {"loss": "hill"}]"#).unwrap();
    let out = mlml(&[
        "chart",
        "--results",
        rows.to_str().unwrap(),
        "-o",
        dir.path().join("c.png").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("rows.json: row 1 has no number \"map\""),
        "{}",
        stderr(&out)
    );
}

/// Width and height from a PNG's IHDR chunk.
fn image_size(png: &[u8]) -> (u32, u32) {
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let killed = dir.path().join("killed");
    // Small batches make each epoch long enough for the kill to land inside one.
    let recipe = [
        "--set",
        "training.loss=\"role\"",
        "--set",
        "model.hidden=[32]",
        "--set",
        "training.batch_size=4",
        "--set",
        "training.epochs=12",
    ];
    let train = |out: &Path| -> Vec<String> {
        ["train", "--config", CONFIG, "--out", out.to_str().unwrap()]
            .iter()
            .chain(&recipe)
            .map(|s| s.to_string())
            .collect()
    };
    let args = train(&whole);
    let out = mlml(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));

    let mut child = Command::new(env!("CARGO_BIN_EXE_mlml"))
        .args(train(&killed))
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let progress = killed.join("progress.json");
    // Written after each epoch's checkpoint and progress.json.
    let metrics = killed.join("metrics.jsonl");
    let started = std::time::Instant::now();
    while !metrics.is_file() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SIGKILL: no destructor, no flush; the last atomic checkpoint is all that survives.
    child.kill().unwrap();
    child.wait().unwrap();
    let done_at_kill = json(&progress)["epochs_done"].as_u64().unwrap();
    assert!(
        done_at_kill < 12,
        "the run finished before the kill; make the epochs longer"
    );
    // The per-epoch files grow as epochs end: the killed run has a line per finished epoch
    // (the last one's may not have been written when the kill came).
    let lines = std::fs::read_to_string(&metrics).unwrap().lines().count() as u64;
    assert!(
        lines >= 1 && (lines == done_at_kill || lines + 1 == done_at_kill),
        "{lines} lines, {done_at_kill} epochs in the checkpoint"
    );
    let out = mlml(&["resume", killed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Every epoch's figures and the loss's state (ROLE's estimator and its Adam moments).
    assert!(json(&killed.join("progress.json")) == json(&progress_of(&whole)));
    // The checkpoint's bytes hold random parameter ids; the selected model's test figures are
    // what must agree.
    assert_eq!(
        json(&killed.join("report.json"))["test"],
        json(&whole.join("report.json"))["test"]
    );
}

fn progress_of(run: &Path) -> PathBuf {
    run.join("progress.json")
}

#[test]
fn compare_and_inspect_read_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for loss in ["an", "role"] {
        let run = dir.path().join(loss);
        let out = mlml(&[
            "train",
            "--config",
            CONFIG,
            "--set",
            &format!("training.loss=\"{loss}\""),
            "--set",
            "training.epochs=2",
            "--set",
            "model.hidden=[32]",
            "--out",
            run.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        runs.push(run.to_str().unwrap().to_string());
    }
    let plot = dir.path().join("runs.png");
    let out = mlml(&[
        "compare",
        &runs[0],
        &runs[1],
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["loss"], "role");
    for (row, run) in rows.iter().zip(&runs) {
        let report = json(&Path::new(run).join("report.json"));
        assert_eq!(row["test_map"], report["test"]["map"]);
        assert_eq!(row["best_epoch"], report["best_epoch"]);
    }
    assert_eq!(&std::fs::read(&plot).unwrap()[..4], b"\x89PNG");
    let text = mlml(&["compare", &runs[0], &runs[1]]);
    assert_eq!(String::from_utf8_lossy(&text.stdout).lines().count(), 3);

    let out = mlml(&["compare", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no report.json"), "{}", stderr(&out));

    let out = mlml(&["inspect", &runs[1], "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["epochs_done"], 2);
    assert_eq!(summary["config"]["training"]["loss"], "role");
    let tensors = summary["loss_state"]["tensors"].as_array().unwrap();
    // ROLE's label estimate over the 1,200 training rows and its two Adam moments.
    assert_eq!(tensors.len(), 3, "{tensors:?}");
    assert!(tensors
        .iter()
        .all(|t| t["shape"] == serde_json::json!([1200, 14])));
    // `eval` reloads the selected model from the checkpoint: the same figures as the report.
    let report = json(&Path::new(&runs[1]).join("report.json"));
    let out = mlml(&["eval", &runs[1], "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evaluation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(evaluation["map"], report["test"]["map"]);
    assert_eq!(evaluation["rows"], 917);
    let out = mlml(&["eval", &runs[1], "--split", "val", "--json"]);
    let evaluation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(evaluation["map"], report["best_val_map"]);
    let text = mlml(&["eval", &runs[0]]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("the model of epoch"),
        "{}",
        stderr(&text)
    );

    // `predict` scores new rows with the selected model.
    let out = mlml(&[
        "predict",
        &runs[1],
        "datasets/yeast/test_x.npy",
        "--top-k",
        "4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 917);
    for r in rows {
        let top: Vec<f64> = r["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["score"].as_f64().unwrap())
            .collect();
        assert_eq!(top.len(), 4);
        assert!(top.windows(2).all(|w| w[0] >= w[1]), "{r}");
        // Every label over 0.5 that is among the top four is predicted, and no other of them.
        for t in r["top"].as_array().unwrap() {
            let predicted = r["predicted"].as_array().unwrap().contains(&t["class"]);
            assert_eq!(predicted, t["score"].as_f64().unwrap() > 0.5, "{r}");
        }
    }
    let out = mlml(&["predict", &runs[1], "datasets/scene/test_x.npy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "scene/test_x.npy: features of shape [1196, 294], the run was trained on 103 features"
        ),
        "{}",
        stderr(&out)
    );

    let text = mlml(&["inspect", &runs[0]]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("an on single-positive labels, 2 of 2 epochs done"),
        "{text}"
    );
    assert!(text.contains("loss state: none"), "{text}");
}

#[test]
fn a_dry_run_prints_the_resolved_run_without_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    // Data that is not there: a dry run never reads it.
    let config = dir.path().join("elsewhere.toml");
    std::fs::write(
        &config,
        "[data]\ntrain_features = \"nowhere.npy\"\ntrain_labels = \"nowhere.npy\"\n\n\
         [training]\nloss = \"em-apl\"\npreset = \"voc\"\nlr = 0.01\n",
    )
    .unwrap();
    let out = mlml(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "training.loss_overrides={ neg_proportion = 0.5 }",
        "--dry-run",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let training = &run["config"]["training"];
    assert_eq!(training["lr"], 0.01);
    assert_eq!(training["batch_size"], 64, "the default, resolved: {run}");
    assert!(
        training.get("patience").is_some(),
        "every key, null when unset: {run}"
    );
    assert_eq!(run["config"]["data"]["drop_last"], false);
    assert_eq!(run["config"]["model"]["backbone"], "mlp");
    assert_eq!(run["loss"]["name"], "em-apl");
    // Zhou et al.'s VOC values from the preset, the override on top.
    let settings = &run["loss"]["settings"];
    assert_eq!(settings["alpha"], 0.2, "{run}");
    assert_eq!(settings["beta"], 0.02, "{run}");
    assert_eq!(settings["warmup_epoch"], 5, "{run}");
    assert_eq!(settings["neg_proportion"], 0.5, "{run}");
    assert!(!dir.path().join("run").exists());
    // --json alone is a usage error; --out is needed without --dry-run.
    let bare = mlml(&["train", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(bare.status.code(), Some(2));
    let plain = mlml(&["train", "--config", CONFIG, "--dry-run"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("[training]") && text.contains("[loss.an]"),
        "{text}"
    );
}

#[test]
fn a_start_that_fails_writes_nothing_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "training.lr=fast"],
            "--set training.lr=fast: not a valid value for training.lr",
        ),
        (
            &["--set", "training.epochs=2.5"],
            "--set training.epochs=2.5: not a valid value for training.epochs",
        ),
        (
            &[
                "--set",
                "training.loss_overrides={ delta = 1 }",
                "--set",
                "training.loss=\"ll-r\"",
            ],
            "unknown hyperparameter 'delta'",
        ),
        (
            &["--set", "training.loss=\"boostlu\""],
            "an MLP on feature vectors has none: use ll-r",
        ),
        (
            &["--set", "data.classes=\"datasets/yeast/nothing.txt\""],
            "data.classes: datasets/yeast/nothing.txt (no such file)",
        ),
        (
            &["--set", "training.stop_below_best=-2"],
            "training.stop_below_best must be a number of mAP points of at least 0",
        ),
    ];
    for (extra, expected) in cases {
        let out = mlml(
            &[
                &[
                    "train",
                    "--config",
                    CONFIG,
                    "--out",
                    out_dir.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{extra:?}: {}",
            stderr(&out)
        );
        assert!(
            !out_dir.exists(),
            "{extra:?}: a failed start left {}",
            out_dir.display()
        );
    }
    // The help names the verb that continues a run, and no flag that does not exist.
    let help = mlml(&["train", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("mlml resume RUN"), "{text}");
    assert!(!text.contains("see --resume"), "{text}");
}

#[test]
fn eval_takes_a_threshold_and_reports_precision_at_k() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = mlml(
        &[
            &[
                "train",
                "--config",
                "configs/yeast-40.toml",
                "--out",
                run.to_str().unwrap(),
            ][..],
            &["--set", "training.epochs=2"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = |threshold: &str| -> serde_json::Value {
        let out = mlml(&[
            "eval",
            run.to_str().unwrap(),
            "--threshold",
            threshold,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (low, high) = (eval("0.05"), eval("0.95"));
    let predicted = |e: &serde_json::Value| e["evaluation"]["classes"].as_array().unwrap().len();
    assert_eq!(predicted(&low), 14);
    // A lower threshold predicts more labels: recall rises, the mAP does not move.
    let recall = |e: &serde_json::Value| e["evaluation"]["threshold"]["or"].as_f64().unwrap();
    assert!(recall(&low) > recall(&high), "{low} {high}");
    assert_eq!(low["map"], high["map"]);
    assert_eq!(low["at_k"][1]["k"], 3);
    let report = json(&run.join("report.json"));
    assert_eq!(low["at_k"], report["test"]["at_k"]);
    let bad = mlml(&["eval", run.to_str().unwrap(), "--threshold", "1.5"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("--threshold 1.5"), "{}", stderr(&bad));
}

/// `--devices cpu,cpu`: two peers, each with half of every batch, the gradients summed across
/// them. The MLP has no BatchNorm, so the run is the one-device run up to the order of f32
/// sums; its report says 2 devices; stopped and resumed on the same devices it ends with the
/// uninterrupted run's figures; devices of two backends are refused.
#[test]
fn yeast_trains_on_two_cpu_devices_to_the_one_device_figures() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out_dir = dir.path().join(name);
        let out = mlml(
            &[
                &[
                    "train",
                    "--config",
                    CONFIG,
                    "--out",
                    out_dir.to_str().unwrap(),
                ][..],
                &ROLE,
                extra,
            ]
            .concat(),
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        out_dir
    };
    let one = json(&run("one", &[]).join("report.json"));
    let two_dir = run("two", &["--devices", "cpu,cpu"]);
    let two = json(&two_dir.join("report.json"));
    assert_eq!(two["devices"], 2, "{two}");
    assert_eq!(two["device"], "cpu, cpu", "{two}");
    // One CPU model, named once.
    let adapter = two["adapter"].as_str().unwrap();
    assert!(!adapter.is_empty() && !adapter.contains(", "), "{two}");
    assert_eq!(one["devices"], 1, "{one}");
    let test_map = |r: &serde_json::Value| r["test"]["map"].as_f64().unwrap();
    assert!(
        (test_map(&one) - test_map(&two)).abs() < 0.05,
        "test mAP {} on one device, {} on two",
        test_map(&one),
        test_map(&two)
    );

    let split = run(
        "split",
        &["--devices", "cpu,cpu", "--stop-after-epochs", "2"],
    );
    let out = mlml(&["resume", split.to_str().unwrap(), "--devices", "cpu,cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json(&split.join("progress.json")),
        json(&two_dir.join("progress.json"))
    );

    let out = mlml(&[
        "train",
        "--config",
        CONFIG,
        "--out",
        dir.path().join("mixed").to_str().unwrap(),
        "--devices",
        "cpu,cuda",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("devices cpu and cuda: one run trains on one backend"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_times_a_backbone_and_names_bad_arguments() {
    let out = mlml(&[
        "bench",
        "--backbone",
        "small-cnn",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--classes",
        "3",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &row["backbone"],
            &row["image_size"],
            &row["batch_size"],
            &row["precision"]
        ),
        (&"small-cnn".into(), &16.into(), &4.into(), &"f32".into()),
        "{row}"
    );
    assert_eq!(row["backend"], "flex", "{row}");
    assert!(!row["adapter"].as_str().unwrap().is_empty(), "{row}");
    for key in ["train_images_per_second", "infer_images_per_second"] {
        assert!(row[key].as_f64().unwrap() > 0.0, "{key}: {row}");
    }
    for (args, says) in [
        (
            &["--backbone", "vgg16"][..],
            "--backbone vgg16: expected small-cnn",
        ),
        (&["--backbone", "mlp"][..], "not the MLP"),
        (
            &["--precision", "f16"][..],
            "the CPU backend computes in f32 only",
        ),
        (&["--steps", "0"][..], "must be positive"),
    ] {
        let out = mlml(
            &[
                &["bench", "--image-size", "16", "--batch-size", "2"][..],
                args,
            ]
            .concat(),
        );
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}
