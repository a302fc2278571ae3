//! `mlml` on image files the test writes: the small CNN end to end, a linear probe on the shipped
//! EfficientNet-Lite0 whose second run is served by the feature cache, predict on image files,
//! and missing images (an error naming the file, or skipped and reported).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
#[path = "common/image_files.rs"]
mod image_files;

use common::{json, mlml, stderr};
use image_files::{write_config, CLASSES};

fn train(config: &Path, out: &Path) -> Output {
    train_with(config, out, &[])
}

/// `mlml train` with `--set KEY=VALUE` for each of `sets`.
fn train_with(config: &Path, out: &Path, sets: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    mlml(&args)
}

#[test]
fn the_small_cnn_trains_on_image_files_and_predicts_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    let run = dir.path().join("run");
    let out = train(&config, &run);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&run.join("report.json"));
    assert_eq!(report["backbone"], "small-cnn");
    assert_eq!(report["data"], "image files");
    assert_eq!(report["epochs_done"], 2);
    assert_eq!(report["test"]["rows"], 14);
    assert!(
        report["train_images_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    let image = dir.path().join("img3.png");
    let out = mlml(&[
        "predict",
        run.to_str().unwrap(),
        image.to_str().unwrap(),
        "--top-k",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["input"], image.to_str().unwrap());
    assert_eq!(rows[0]["top"].as_array().unwrap().len(), 2);

    let out = mlml(&["eval", run.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["rows"], 14);
    assert_eq!(
        eval["map"], report["test"]["map"],
        "eval repeats the report's test mAP"
    );

    // A folder of images (its .png files, in path order), drawn as a grid.
    let folder = dir.path().join("new");
    std::fs::create_dir_all(folder.join("more")).unwrap();
    for (i, to) in [(3, "b.png"), (5, "a.png"), (6, "more/c.png")] {
        std::fs::copy(dir.path().join(format!("img{i}.png")), folder.join(to)).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    let grid = dir.path().join("predicted.png");
    let out = mlml(&[
        "predict",
        run.to_str().unwrap(),
        folder.to_str().unwrap(),
        "--json",
        "--grid",
        grid.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inputs: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["input"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = ["a.png", "b.png", "more/c.png"]
        .iter()
        .map(|f| folder.join(f).display().to_string())
        .collect();
    assert_eq!(inputs, expected);
    let drawn = image::open(&grid).unwrap();
    assert!(
        drawn.width() > 3 * 128 && drawn.height() > 128,
        "{:?}",
        (drawn.width(), drawn.height())
    );
}

/// `mlml suggest` ranks the unobserved entries of the run's training rows; the suggestions
/// index the run's `observed-labels.npy`, `review apply` adds the accepted ones, and a second
/// run trains on the result as an observed set.
#[test]
fn suggestions_rank_unobserved_training_entries_and_feed_a_second_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    let run = dir.path().join("run");
    let out = train(&config, &run);
    assert!(out.status.success(), "{}", stderr(&out));
    let observed_path = run.join("observed-labels.npy");
    let observed = mlml_data::formats::load(&observed_path).unwrap();
    assert_eq!(observed.len(), 30, "every row of the training file");

    let tsv = dir.path().join("suggestions.tsv");
    let grid = dir.path().join("suggestions.png");
    let out = mlml(&[
        "suggest",
        run.to_str().unwrap(),
        "--top",
        "12",
        "-o",
        tsv.to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&tsv).unwrap();
    assert!(
        text.starts_with("row\timage\tclass\tscore\trank\n"),
        "{text}"
    );
    let (suggestions, info) = mlml_data::review::read_suggestions(&tsv).unwrap();
    assert_eq!(suggestions.len(), 12);
    assert_eq!(info.unwrap().run, run.display().to_string());
    let c = CLASSES.len();
    for (k, s) in suggestions.iter().enumerate() {
        assert_eq!(s.rank, k + 1);
        if k > 0 {
            assert!(s.score <= suggestions[k - 1].score, "best first: {text}");
        }
        assert_eq!(s.image, format!("img{}.png", s.row), "the row's image");
        let class = CLASSES.iter().position(|n| *n == s.class).unwrap();
        assert_eq!(
            observed.labels.values()[s.row * c + class],
            0,
            "only unobserved entries of training rows: {s:?}"
        );
        // Held-out rows are all unobserved in the set; a suggestion is never one of them.
        assert!(
            observed.labels.row(s.row).contains(&1),
            "{s:?} is a training row"
        );
    }
    assert!(image::open(&grid).is_ok());
    // Printed when no file is named, with the same lines.
    let out = mlml(&["suggest", run.to_str().unwrap(), "--top", "12"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        text.trim_end()
    );

    let (accepted, applied) =
        mlml_data::review::apply(&observed, &tsv, &mlml_data::review::Accept::Top(5)).unwrap();
    assert_eq!(applied.accepted, 5);
    assert_eq!(
        accepted.labels.counts().positives,
        observed.labels.counts().positives + 5
    );
    let round2 = dir.path().join("round2.npy");
    mlml_data::formats::save(&accepted, &round2).unwrap();
    let out = train_with(
        &config,
        &dir.path().join("round2"),
        &[
            "data.labels=\"observed-set\"",
            &format!("data.observed_set={:?}", round2.display().to_string()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let second = mlml_data::formats::load(&dir.path().join("round2/observed-labels.npy")).unwrap();
    let training_positives: usize = second.labels.counts().positives;
    assert_eq!(
        training_positives,
        accepted.labels.counts().positives,
        "the second run trains on the accepted set"
    );
}

/// The modification time of every file in the cache folder.
fn cache_files(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let time = std::fs::metadata(&path).unwrap().modified().unwrap();
            (path, time)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_linear_probe_extracts_features_once_and_the_next_run_reads_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "backbone = \"efficientnet-lite0\"\nweights = \"shipped\"\nmode = \"linear-probe\"\nhidden = []",
        "",
    );
    let first = dir.path().join("first");
    let out = train(&config, &first);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("extracting efficientnet-lite0 features"),
        "{}",
        stderr(&out)
    );
    let report = json(&first.join("report.json"));
    assert_eq!(report["feature_cache"]["misses"], 2, "{report}");
    assert_eq!(report["feature_cache"]["hits"], 0, "{report}");
    let cache = dir.path().join("feature-cache");
    let stored = cache_files(&cache);
    assert_eq!(
        stored.len(),
        4,
        "features and key of train and test: {stored:?}"
    );

    let second = dir.path().join("second");
    let out = train(&config, &second);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("extracting"), "{}", stderr(&out));
    let again = json(&second.join("report.json"));
    assert_eq!(again["feature_cache"]["hits"], 2, "{again}");
    assert_eq!(again["feature_cache"]["misses"], 0, "{again}");
    assert_eq!(
        cache_files(&cache),
        stored,
        "the cache files are left untouched"
    );
    assert_eq!(again["test"], report["test"], "same features, same run");

    // Other images are another key: a changed file misses.
    std::fs::copy(dir.path().join("img1.png"), dir.path().join("img0.png")).unwrap();
    let third = dir.path().join("third");
    let out = train(&config, &third);
    assert!(out.status.success(), "{}", stderr(&out));
    let changed = json(&third.join("report.json"));
    assert_eq!(changed["feature_cache"]["misses"], 1, "{changed}");
    assert_eq!(changed["feature_cache"]["hits"], 1, "{changed}");
}

#[test]
fn a_missing_image_is_an_error_naming_it_or_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    std::fs::remove_file(dir.path().join("img7.png")).unwrap();
    let out = train(&config, &dir.path().join("fails"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("img7.png"), "{}", stderr(&out));

    let config = write_config(
        dir.path(),
        "backbone = \"small-cnn\"",
        "bad_images = \"skip\"",
    );
    std::fs::remove_file(dir.path().join("img7.png")).unwrap();
    let run = dir.path().join("skips");
    let out = train(&config, &run);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad images skipped"),
        "{}",
        stderr(&out)
    );
    let report = json(&run.join("report.json"));
    let skipped = report["skipped_images"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(
        skipped[0].as_str().unwrap().contains("img7.png"),
        "{report}"
    );
}

#[test]
fn an_image_backbone_on_feature_vectors_is_a_clear_error() {
    let out = mlml(&[
        "train",
        "--config",
        "configs/yeast-single.toml",
        "--set",
        "model.backbone=\"small-cnn\"",
        "--out",
        tempfile::tempdir()
            .unwrap()
            .path()
            .join("x")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("an image backbone takes images"),
        "{}",
        stderr(&out)
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_backend_that_was_not_built_in_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = mlml(&[
        "train",
        "--config",
        "configs/yeast-single.toml",
        "--device",
        "cuda",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("built without the `cuda` backend")
            && stderr(&out).contains("--features cuda"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("x").exists(),
        "no run directory for a run that cannot start"
    );
    let x = dir.path().join("x");
    let train_on = |device: &str| {
        mlml(&[
            "train",
            "--config",
            "configs/yeast-single.toml",
            "--device",
            device,
            "--out",
            x.to_str().unwrap(),
        ])
    };
    let out = train_on("cuda:1");
    assert!(
        stderr(&out).contains("built without the `cuda` backend"),
        "{}",
        stderr(&out)
    );
    for (device, says) in [
        (
            "tpu",
            "unknown device 'tpu': expected cpu, wgpu, wgpu:N, cuda or cuda:N",
        ),
        ("cpu:0", "the CPU takes no index"),
        (
            "wgpu:first",
            "the index after ':' must be a number, as in wgpu:0",
        ),
    ] {
        let out = train_on(device);
        assert_eq!(out.status.code(), Some(2), "{device}");
        assert!(stderr(&out).contains(says), "{device}: {}", stderr(&out));
    }
}

/// The recipe templates are valid configs: they fail on the data they point at (which is not
/// here), not on a key.
#[test]
fn the_recipe_templates_parse_and_ask_for_their_data() {
    for (config, data) in [
        ("configs/recipes/asl-coco.toml", "coco-train.tsv"),
        ("configs/recipes/spml-coco-single.toml", "coco-train.tsv"),
        ("configs/recipes/spml-voc-single.toml", "voc-train.tsv"),
        ("configs/recipes/spml-nus-single.toml", "nus-train.tsv"),
        ("configs/recipes/spml-cub-single.toml", "cub-train.tsv"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = mlml(&[
            "train",
            "--config",
            config,
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        let text = stderr(&out);
        assert!(!text.contains("bad config"), "{config}: {text}");
        assert!(text.contains(data), "{config}: {text}");
    }
}

/// `boostlu` trains the small CNN with the boosted class-activation-map head (BoostLU's alpha
/// 5 unless the config says otherwise), end to end; a linear probe cannot boost.
#[test]
fn boostlu_trains_a_boosting_head_and_refuses_a_linear_probe() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "backbone = \"small-cnn\"", "");
    let run = dir.path().join("run");
    let out = train_with(&config, &run, &["training.loss=\"boostlu\""]);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("boost_alpha = 5.0"), "{saved}");
    let report = json(&run.join("report.json"));
    assert_eq!(report["loss"], "boostlu");
    assert!(report["test"]["map"].as_f64().unwrap() > 0.0, "{report}");
    // The stored head boosts: evaluating the run builds the same boosted model.
    let eval = mlml(&["eval", run.to_str().unwrap(), "--json"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(eval["map"], report["test"]["map"]);
    // An explicit alpha is kept.
    let dry = mlml(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "training.loss=\"boostlu\"",
        "--set",
        "model.boost_alpha=2.0",
        "--dry-run",
        "--json",
    ]);
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["config"]["model"]["boost_alpha"], 2.0);

    let probe = write_config(
        dir.path(),
        "backbone = \"efficientnet-lite0\"\nweights = \"shipped\"\nmode = \"linear-probe\"",
        "",
    );
    let refused = dir.path().join("probe");
    let out = train_with(&probe, &refused, &["training.loss=\"boostlu\""]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a linear probe (model.mode = \"linear-probe\") trains a head on pooled features, which have no map to boost"),
        "{}",
        stderr(&out)
    );
    assert!(!refused.exists());
}

/// Cole et al.'s LinearInit: a linear phase on the frozen backbone's features (ROLE on VOC:
/// their fixed lr 1e-3, batch 16, 25 epochs), then end to end from its best layer and label
/// estimate; a loss Cole et al. give no linear phase for needs one spelled out.
#[test]
fn linear_init_trains_a_linear_phase_then_the_network_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "backbone = \"small-cnn\"\nmode = \"linear-init\"",
        "",
    );
    let run = dir.path().join("run");
    let out = train_with(
        &config,
        &run,
        &["training.loss=\"role\"", "training.preset=\"voc\""],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("phase 2 of 2: end to end from the linear phase's epoch")
            && text.contains("with its label estimate"),
        "{text}"
    );
    let phase = json(&run.join("linear-phase/report.json"));
    assert_eq!(phase["epochs"], 25);
    let saved = std::fs::read_to_string(run.join("linear-phase/config.toml")).unwrap();
    assert!(
        saved.contains("mode = \"linear-probe\"") && saved.contains("lr = 0.001"),
        "{saved}"
    );
    let report = json(&run.join("report.json"));
    assert_eq!(report["epochs_done"], 2);
    assert_eq!(report["mode"], "linear-init");

    let refused = dir.path().join("an");
    let out = mlml(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("give training.linear_phase"),
        "{}",
        stderr(&out)
    );
    assert!(!refused.exists());
}
