//! `mlml` on `--device wgpu`, in a binary built with `--features wgpu` (CI runs it on lavapipe,
//! Mesa's Vulkan on the CPU): the yeast MLP and the small CNN on image files train to the
//! validation mAP the same run reaches on the CPU, within `MAP_POINTS`, and `eval` and
//! `predict` read the GPU run.
#![cfg(feature = "wgpu")]

use std::path::Path;

mod common;
#[path = "common/image_files.rs"]
mod image_files;

use common::{json, mlml, stderr};
use image_files::write_config;

/// How far (in mAP points) a wgpu run may land from the same run on the CPU. The two start
/// from the same weights (drawn on the CPU and moved) and see the same batches; only the
/// shader's rounding differs (its `exp`, `log` and sums), which moved yeast's test mAP by 1e-5
/// points after 4 epochs. A tenth of a point leaves room for a rounding that flips a rank.
const MAP_POINTS: f64 = 0.1;

fn train(config: &str, device: &str, out: &Path, sets: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "--config",
        config,
        "--device",
        device,
        "--out",
        out.to_str().unwrap(),
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let run = mlml(&args);
    assert!(run.status.success(), "{device}: {}", stderr(&run));
    json(&out.join("report.json"))
}

/// The wgpu run's report names its adapter, and its best validation and test mAP are within
/// `points` of the CPU run's.
fn assert_same_figures(cpu: &serde_json::Value, gpu: &serde_json::Value, points: f64) {
    assert_eq!(gpu["backend"], "wgpu", "{gpu}");
    // The adapter wgpu picked, by its driver's name ("llvmpipe (LLVM ...)" on lavapipe), not
    // the CPU's model that the CPU run records.
    let adapter = |report: &serde_json::Value| report["adapter"].as_str().unwrap_or("").to_string();
    assert!(!adapter(gpu).is_empty(), "{gpu}");
    assert_ne!(adapter(gpu), adapter(cpu));
    let (c, g) = (
        cpu["best_val_map"].as_f64().unwrap(),
        gpu["best_val_map"].as_f64().unwrap(),
    );
    assert!((c - g).abs() <= points, "best val mAP: cpu {c}, wgpu {g}");
    let (c, g) = (
        cpu["test"]["map"].as_f64().unwrap(),
        gpu["test"]["map"].as_f64().unwrap(),
    );
    assert!((c - g).abs() <= points, "test mAP: cpu {c}, wgpu {g}");
}

#[test]
fn yeast_trains_on_wgpu_to_the_cpu_run_figures() {
    let dir = tempfile::tempdir().unwrap();
    let sets = ["training.epochs=4"];
    let config = "configs/yeast-single.toml";
    let cpu = train(config, "cpu", &dir.path().join("cpu"), &sets);
    let run = dir.path().join("wgpu");
    let gpu = train(config, "wgpu", &run, &sets);
    assert_same_figures(&cpu, &gpu, MAP_POINTS);

    let out = mlml(&["eval", run.to_str().unwrap(), "--json", "--device", "wgpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (e, r) = (
        eval["map"].as_f64().unwrap(),
        gpu["test"]["map"].as_f64().unwrap(),
    );
    assert!((e - r).abs() < 1e-3, "eval {e} against the report's {r}");
    let out = mlml(&[
        "predict",
        run.to_str().unwrap(),
        "datasets/yeast/test_x.npy",
        "--top-k",
        "3",
        "--json",
        "--device",
        "wgpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["top"].as_array().unwrap().len(), 3);
}

#[test]
fn the_small_cnn_trains_on_image_files_on_wgpu_to_the_cpu_run_figures() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    let config = config.to_str().unwrap();
    let cpu = train(config, "cpu", &dir.path().join("cpu"), &[]);
    let run = dir.path().join("wgpu");
    let gpu = train(config, "wgpu", &run, &[]);
    assert_same_figures(&cpu, &gpu, MAP_POINTS);
    let image = dir.path().join("img3.png");
    let out = mlml(&[
        "predict",
        run.to_str().unwrap(),
        image.to_str().unwrap(),
        "--json",
        "--device",
        "wgpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["input"], image.to_str().unwrap());
}

/// How far (in mAP points) an f16 run may land from the f32 run on the CPU: the convolutions
/// round to 11 significant bits, so after an epoch the scores move by far more than the
/// shaders' f32 rounding, but not the ranking of these well-separated images.
const F16_MAP_POINTS: f64 = 2.0;

#[test]
fn the_small_cnn_trains_in_f16_on_wgpu_and_the_cpu_refuses_f16_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    let config = config.to_str().unwrap();
    let one_epoch = "training.epochs=1";
    let cpu = train(config, "cpu", &dir.path().join("cpu"), &[one_epoch]);
    let run = dir.path().join("f16");
    let half = train(
        config,
        "wgpu",
        &run,
        &[one_epoch, "training.precision=\"f16\""],
    );
    assert_same_figures(&cpu, &half, F16_MAP_POINTS);
    // The loss scale is part of the run's progress (a resumed run scales as the uninterrupted
    // one); these small gradients never overflow at the starting scale.
    let progress = json(&run.join("progress.json"));
    assert_eq!(progress["loss_scale"]["scale"], 65536.0, "{progress}");
    assert_eq!(progress["loss_scale"]["skipped_steps"], 0, "{progress}");

    let refused = dir.path().join("refused");
    for (device, precision, says) in [
        ("cpu", "f16", "the CPU backend computes in f32 only"),
        ("wgpu", "bf16", "has no bf16"),
    ] {
        let set = format!("training.precision=\"{precision}\"");
        let out = mlml(&[
            "train",
            "--config",
            config,
            "--device",
            device,
            "--out",
            refused.to_str().unwrap(),
            "--set",
            &set,
        ]);
        if device == "wgpu" && out.status.success() {
            // An adapter with bf16 (none that wgpu offers today) trains.
            continue;
        }
        assert!(!out.status.success(), "{device} {precision}");
        assert!(
            stderr(&out).contains(says),
            "{device} {precision}: {}",
            stderr(&out)
        );
        assert!(
            !refused.exists(),
            "{device} {precision}: a refused start writes nothing"
        );
    }
}
