//! The `mlml` binary end to end on the embedded yeast set: train, stop, resume, the losses
//! listing, and clear errors with exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mlml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlml"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const CONFIG: &str = "configs/yeast-single/role.toml";

#[test]
fn train_stop_and_resume_give_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    let set = ["--set", "training.epochs=4"];
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
            "role.toml: bad config: unknown field `lrr`",
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
