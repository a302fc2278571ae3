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
                "2",
            ][..],
            &set,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&split.join("report.json"))["epochs_done"], 2);
    let out = mlml(&["resume", split.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Same figures every epoch and the same loss state (ROLE's estimator and Adam moments).
    assert_eq!(
        json(&split.join("progress.json")),
        json(&whole.join("progress.json"))
    );

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
            "yeast-single.toml: bad config: unknown field `lrr`",
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
    assert!(csv.starts_with("epoch,train_loss,val_map,val_map_ranked\n1,"));
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
    let started = std::time::Instant::now();
    while !progress.is_file() && started.elapsed().as_secs() < 120 {
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
