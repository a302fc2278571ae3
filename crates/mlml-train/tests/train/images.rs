//! The loop on images: the small CNN end to end on PNG files the test writes (decoded by the
//! pipeline), and on a `u8` image array; resume; a truncated image.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use image::{Rgb, RgbImage};
use mlml_data::pipeline::{BadImagePolicy, Transform};
use mlml_data::LabelMatrix;
use mlml_train::{
    BackboneKind, Classifier, ImageArray, ImageFiles, ModelConfig, Run, Source, TrainingConfig,
};

type B = Autodiff<Flex>;

use crate::weights;

use weights::weights;

const CLASSES: usize = 4;
const SIDE: u32 = 32;
/// The colour of each class's square.
const COLOURS: [[u8; 3]; CLASSES] = [[230, 40, 40], [40, 200, 60], [50, 70, 230], [240, 240, 240]];

/// A deterministic label pattern: class `k` is present in image `i` by a small hash, every
/// image with at least one class.
fn present(i: usize) -> [bool; CLASSES] {
    let mut p = [false; CLASSES];
    let h = (i * 2_654_435_761) >> 7;
    for (k, slot) in p.iter_mut().enumerate() {
        *slot = (h >> (3 * k)).is_multiple_of(3);
    }
    if !p.iter().any(|&x| x) {
        p[i % CLASSES] = true;
    }
    p
}

/// Image `i`: grey noise-free background, and for each present class a square of its colour in
/// its own quadrant, shifted by a few pixels per image.
fn draw(i: usize) -> RgbImage {
    let mut img = RgbImage::from_pixel(SIDE, SIDE, Rgb([90, 90, 90]));
    let half = SIDE / 2;
    for (k, on) in present(i).iter().enumerate() {
        if !on {
            continue;
        }
        let (qx, qy) = ((k as u32 % 2) * half, (k as u32 / 2) * half);
        let shift = (i as u32 * 7 + k as u32 * 3) % 5;
        for y in 0..10 {
            for x in 0..10 {
                img.put_pixel(qx + 2 + shift + x, qy + 2 + shift + y, Rgb(COLOURS[k]));
            }
        }
    }
    img
}

fn labels(rows: std::ops::Range<usize>, observed_first_only: bool) -> LabelMatrix {
    let classes = (0..CLASSES).map(|k| format!("c{k}")).collect();
    let ids = rows.clone().map(|i| format!("img{i}")).collect();
    let mut values = Vec::new();
    for i in rows {
        let p = present(i);
        let first = p.iter().position(|&x| x).expect("one class at least");
        for (k, &on) in p.iter().enumerate() {
            values.push(match (on, observed_first_only) {
                (true, false) => 1,
                (false, false) => -1,
                // Single positive: the first present class observed, everything else unknown.
                (_, true) if k == first => 1,
                (_, true) => 0,
            });
        }
    }
    LabelMatrix::new(classes, ids, values).unwrap()
}

fn write_pngs(dir: &Path, rows: std::ops::Range<usize>) -> Vec<PathBuf> {
    rows.map(|i| {
        let path = dir.join(format!("img{i}.png"));
        draw(i).save(&path).unwrap();
        path
    })
    .collect()
}

/// The mAP (%) a random ranking scores on average: each class's AP is about its positive rate.
fn random_ranking_map(labels: &LabelMatrix) -> f64 {
    let (n, c) = (labels.n_samples(), labels.n_classes());
    let total: f64 = (0..c)
        .map(|j| (0..n).filter(|&i| labels.row(i)[j] == 1).count() as f64 / n as f64)
        .sum();
    100.0 * total / c as f64
}

fn files(dir: &Path, rows: std::ops::Range<usize>, single: bool) -> ImageFiles {
    let transform = Transform::eval(SIDE, None);
    let flip = Transform {
        hflip: 0.5,
        ..transform.clone()
    };
    ImageFiles::new(
        write_pngs(dir, rows.clone()),
        labels(rows, single),
        flip,
        transform,
    )
    .unwrap()
}

fn small_cnn() -> ModelConfig {
    ModelConfig {
        backbone: BackboneKind::SmallCnn,
        ..Default::default()
    }
}

fn config(epochs: usize) -> TrainingConfig {
    TrainingConfig {
        loss: "an".into(),
        epochs,
        batch_size: 16,
        lr: 3e-3,
        ..Default::default()
    }
}

fn fit<S: Source>(
    config: &TrainingConfig,
    train: &S,
    val: &S,
    dir: Option<&Path>,
    stop_after: Option<usize>,
) -> mlml_train::Result<Run<Flex>> {
    mlml_train::train::<B, S>(
        config,
        &small_cnn(),
        train,
        val,
        dir,
        stop_after,
        &Default::default(),
        &mut (),
    )
}

#[test]
fn the_small_cnn_learns_from_png_files_with_single_positive_labels() {
    let dir = tempfile::tempdir().unwrap();
    let train = files(dir.path(), 0..64, true);
    let val = files(dir.path(), 64..96, false);
    let random = random_ranking_map(val.labels());
    let run = fit(&config(8), &train, &val, None, None).unwrap();
    let p = &run.progress;
    assert_eq!(p.epochs.len(), 8);
    assert!(
        p.best_val_map > random + 25.0,
        "best validation mAP {:.1} vs random ranking {random:.1}: {:?}",
        p.best_val_map,
        p.epochs.iter().map(|e| e.val_map).collect::<Vec<_>>()
    );
    assert!(run.train_samples_per_second > 0.0);
    assert!(train.skipped().is_empty());
}

/// Data parallelism with BatchNorm and a weight average: each device normalises its shard by
/// its own statistics; at each epoch's end rank 0's model and average (statistics included)
/// reach every device, so the devices end identical, and the network learns as on one device.
#[test]
fn the_small_cnn_learns_on_two_devices_with_batchnorm_and_a_weight_average() {
    let dir = tempfile::tempdir().unwrap();
    let train = files(dir.path(), 0..64, true);
    let val = files(dir.path(), 64..96, false);
    let random = random_ranking_map(val.labels());
    let mut config = config(8);
    config.ema_decay = Some(0.9);
    let peers = mlml_train::train_parallel_peers::<B, ImageFiles>(
        &config,
        &small_cnn(),
        &train,
        &val,
        None,
        None,
        &[Default::default(), Default::default()],
        &mut (),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(peers[0].progress, peers[1].progress);
    assert_same(&weights(&peers[0].last), &weights(&peers[1].last), "last");
    assert_same(&weights(&peers[0].best), &weights(&peers[1].best), "best");
    let p = &peers[0].progress;
    assert!(
        p.best_val_map > random + 25.0,
        "best validation mAP {:.1} vs random ranking {random:.1}: {:?}",
        p.best_val_map,
        p.epochs.iter().map(|e| e.val_map).collect::<Vec<_>>()
    );
}

fn assert_same(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} floats differ, first at {} ({} vs {})",
        differ.len(),
        a.len(),
        differ[0],
        a[differ[0]],
        b[differ[0]]
    );
}

/// The same images as a `u8` array `[n, 3, 32, 32]`, flipped in training.
fn array(rows: std::ops::Range<usize>, single: bool) -> ImageArray {
    let mut pixels = Vec::new();
    for i in rows.clone() {
        let img = draw(i);
        for c in 0..3 {
            pixels.extend(img.pixels().map(|p| p[c]));
        }
    }
    ImageArray {
        pixels,
        channels: 3,
        height: SIDE as usize,
        width: SIDE as usize,
        labels: labels(rows, single),
        normalize: None,
        hflip: 0.5,
    }
}

#[test]
fn an_image_run_resumed_with_bn_and_ema_ends_with_the_uninterrupted_weights() {
    let (train, val) = (array(0..48, true), array(48..64, false));
    let mut config = config(3);
    config.ema_decay = Some(0.9);
    config.schedule = mlml_train::Schedule::OneCycle {
        epochs: 4,
        pct_start: 0.3,
    };
    let whole = tempfile::tempdir().unwrap();
    let once = fit(&config, &train, &val, Some(whole.path()), None).unwrap();
    assert!(once.progress.epochs.iter().all(|e| e.val_map_ema.is_some()));
    let lrs: Vec<f64> = once.progress.epochs.iter().map(|e| e.lr).collect();
    assert!(
        lrs[0] < lrs[1] || lrs[1] > lrs[2],
        "one-cycle lr per epoch: {lrs:?}"
    );

    let split = tempfile::tempdir().unwrap();
    let first = fit(&config, &train, &val, Some(split.path()), Some(1)).unwrap();
    assert_eq!(first.progress.epochs_done, 1);
    let resumed = fit(&config, &train, &val, Some(split.path()), None).unwrap();
    assert_eq!(resumed.resumed_at, 1);
    assert_same(
        &weights(&resumed.last),
        &weights(&once.last),
        "final weights",
    );
    assert_same(
        &weights(&resumed.best),
        &weights(&once.best),
        "selected weights",
    );
    assert_eq!(resumed.progress, once.progress);
}

#[test]
fn a_truncated_png_stops_the_run_naming_it_and_skip_leaves_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = files(dir.path(), 0..20, true);
    let val = files(dir.path(), 20..28, false);
    let bad = train.paths[5].clone();
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = fit(&config(1), &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("img5.png"), "{err}");

    train.bad_images = BadImagePolicy::Skip;
    let run = fit(&config(1), &train, &val, None, None).unwrap();
    assert_eq!(run.progress.epochs_done, 1);
    let skipped = train.skipped();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("img5.png"), "{skipped:?}");
}

/// Data parallelism: a truncated image in one device's shard stops that device with the
/// image's name, and the others stop too instead of waiting for it at the next all-reduce.
#[test]
fn a_bad_image_on_one_device_stops_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let train = files(dir.path(), 0..20, true);
    let val = files(dir.path(), 20..28, false);
    let bad = train.paths[5].clone();
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let run = mlml_train::train_parallel::<B, ImageFiles>(
            &config(1),
            &small_cnn(),
            &train,
            &val,
            None,
            None,
            &[Default::default(), Default::default()],
            &mut (),
            &Default::default(),
        );
        sender
            .send(run.map(|_| ()).map_err(|e| e.to_string()))
            .unwrap();
    });
    let run = receiver
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the devices stop within 5 minutes");
    let err = run.unwrap_err();
    assert!(err.contains("img5.png"), "{err}");
}

#[test]
fn an_mlp_given_images_is_a_clear_error() {
    let (train, val) = (array(0..8, true), array(8..12, false));
    let err = mlml_train::train::<B, ImageArray>(
        &config(1),
        &ModelConfig::default(),
        &train,
        &val,
        None,
        None,
        &Default::default(),
        &mut (),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("the MLP takes feature vectors"),
        "{err}"
    );
}

/// burn's backends keep one random generator per process; another thread drawing from it
/// while a run initialises must not change the run.
#[test]
fn draws_on_another_thread_do_not_change_a_run() {
    let (train, val) = (array(0..48, true), array(48..64, false));
    let config = config(1);
    let alone = weights(&fit(&config, &train, &val, None, None).unwrap().last);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_noise = stop.clone();
    let noise = std::thread::spawn(move || {
        while !stop_noise.load(std::sync::atomic::Ordering::Relaxed) {
            mlml_train::seeded_init::<Flex, _>(&Default::default(), 1, || {
                Ok(burn::nn::LinearConfig::new(3, 3).init::<Flex>(&Default::default()))
            })
            .unwrap();
        }
    });
    let beside = weights(&fit(&config, &train, &val, None, None).unwrap().last);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
    assert_same(&alone, &beside, "with draws on another thread");
}

fn stages(model: &Classifier<Flex>) -> &mlml_models::SmallCnn<Flex> {
    match model {
        Classifier::Image(m) => match &m.backbone {
            mlml_train::Backbone::SmallCnn(cnn) => cnn,
            other => panic!("not the small CNN: {other:?}"),
        },
        Classifier::Mlp(_) => panic!("not an image model"),
    }
}

fn floats(t: burn::tensor::Tensor<Flex, 4>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// The head's weight matrix of an image model.
fn head(model: &Classifier<Flex>) -> Vec<f32> {
    match model {
        Classifier::Image(m) => m
            .head
            .linear
            .weight
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
        Classifier::Mlp(_) => panic!("not an image model"),
    }
}

/// GR's linear-init epochs: the backbone's weights stay as initialised while the head trains
/// and BatchNorm's running statistics still move.
#[test]
fn linear_init_epochs_train_the_head_alone() {
    let (train, val) = (array(0..32, true), array(32..40, false));
    let mut config = config(2);
    config.linear_init_epochs = 1;
    let after_one = fit(&config, &train, &val, None, Some(1)).unwrap().last;
    let initial = mlml_train::seeded_init::<Flex, _>(&Default::default(), config.seed, || {
        small_cnn().init::<Flex>(3, CLASSES, &Default::default())
    })
    .unwrap();
    let (before, after) = (stages(&initial), stages(&after_one));
    for (b, a) in before.stages.iter().zip(&after.stages) {
        assert_eq!(floats(b.conv.weight.val()), floats(a.conv.weight.val()));
        let moved =
            b.bn.running_mean
                .value()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
                != a.bn
                    .running_mean
                    .value()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap();
        assert!(moved, "BatchNorm statistics keep updating");
    }
    assert_ne!(head(&initial), head(&after_one), "the head trains");

    let after_two = fit(&config, &train, &val, None, None).unwrap().last;
    assert_ne!(
        floats(before.stages[0].conv.weight.val()),
        floats(stages(&after_two).stages[0].conv.weight.val()),
        "from epoch 2 the backbone trains"
    );
    config.loss_overrides = serde_json::json!({ "linear_init": 2 });
    let err = fit(&config, &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("must agree"), "{err}");
}

/// The single-positive / LL recipes' two parameter groups: one plain SGD step moves the head
/// `head_lr_mult` times as far as it moves at 1, and the backbone the same.
#[test]
fn the_head_steps_at_its_own_learning_rate() {
    let (train, val) = (array(0..16, true), array(16..24, false));
    let mut config = config(2);
    // One step per epoch, no momentum, no decay: the update is -lr * gradient.
    config.batch_size = 16;
    config.optimizer = mlml_train::OptimizerKind::Sgd;
    config.momentum = Some(0.0);
    config.lr = 0.01;
    let initial = mlml_train::seeded_init::<Flex, _>(&Default::default(), config.seed, || {
        small_cnn().init::<Flex>(3, CLASSES, &Default::default())
    })
    .unwrap();
    let one = fit(&config, &train, &val, None, Some(1)).unwrap().last;
    config.head_lr_mult = 10.0;
    let ten = fit(&config, &train, &val, None, Some(1)).unwrap().last;
    let (h0, h1, h10) = (head(&initial), head(&one), head(&ten));
    let mut compared = 0;
    for i in 0..h0.len() {
        let (d1, d10) = (f64::from(h1[i] - h0[i]), f64::from(h10[i] - h0[i]));
        if d1.abs() > 1e-5 {
            compared += 1;
            assert!(
                (d10 / d1 - 10.0).abs() < 0.05,
                "head weight {i}: moved {d1} at 1x and {d10} at 10x"
            );
        }
    }
    assert!(
        compared > h0.len() / 2,
        "{compared} of {} compared",
        h0.len()
    );
    let conv = |m: &Classifier<Flex>| floats(stages(m).stages[0].conv.weight.val());
    assert_ne!(conv(&initial), conv(&one), "the backbone trains");
    assert_same(&conv(&one), &conv(&ten), "the backbone's step");
}

/// The epoch the weight average wins is kept as it was then: its BatchNorm statistics must not
/// follow the live average through the later epochs (burn's `clone()` shares them), and a
/// resumed run, whose best model is read back from the checkpoint, must select the same one.
#[test]
fn an_ema_best_epoch_is_kept_as_it_was_and_resumes_to_the_same_model() {
    let (train, val) = (array(0..48, true), array(48..64, false));
    let mut config = config(EMA_BEST_EPOCHS);
    config.ema_decay = Some(EMA_BEST_DECAY);
    config.lr = EMA_BEST_LR;
    config.seed = EMA_BEST_SEED;
    let whole = tempfile::tempdir().unwrap();
    let once = fit(&config, &train, &val, Some(whole.path()), None).unwrap();
    let p = &once.progress;
    assert!(
        p.best_is_ema && p.best_epoch < p.epochs_done,
        "this recipe no longer has an EMA-best epoch before the last: {:?}",
        p.epochs
    );
    // The kept model scores what it scored when it was selected.
    let scores = mlml_train::predict(&once.best, &val, 16, &Default::default()).unwrap();
    let rescored = mlml_metrics::mean_average_precision(
        &scores,
        val.labels(),
        mlml_metrics::MapOptions {
            definition: mlml_metrics::ApDefinition::Sklearn,
            skip_empty: false,
        },
    )
    .unwrap()
    .map;
    assert!(
        (rescored - p.best_val_map).abs() < 1e-9,
        "selected at {} but scores {rescored} now",
        p.best_val_map
    );
    let split = tempfile::tempdir().unwrap();
    fit(
        &config,
        &train,
        &val,
        Some(split.path()),
        Some(p.best_epoch),
    )
    .unwrap();
    let resumed = fit(&config, &train, &val, Some(split.path()), None).unwrap();
    assert_eq!(resumed.progress, once.progress);
    assert_same(
        &weights(&resumed.best),
        &weights(&once.best),
        "selected weights",
    );
}

const EMA_BEST_EPOCHS: usize = 5;
const EMA_BEST_DECAY: f64 = 0.7;
const EMA_BEST_LR: f64 = 3e-2;
const EMA_BEST_SEED: u64 = 0;
