//! The feature loop on a real slice of the embedded yeast set (`datasets/yeast`): single-positive
//! labels, AN and every stateful loss, resume, and a run that blows up.

use burn::backend::{Autodiff, Flex};
use mlml_train::{
    FeatureSet, ModelConfig, OptimizerKind, Run, Schedule, TrainError, TrainingConfig,
};

type B = Autodiff<Flex>;

use crate::weights;
use crate::yeast;

use weights::weights;
use yeast::slices;

/// The mAP (%) a random ranking scores on average: each class's AP is about its positive rate.
fn random_ranking_map(set: &FeatureSet) -> f64 {
    let (n, c) = (set.len(), set.labels.n_classes());
    let mut total = 0.0;
    for j in 0..c {
        let positives = (0..n).filter(|&i| set.labels.row(i)[j] == 1).count();
        total += positives as f64 / n as f64;
    }
    100.0 * total / c as f64
}

fn config(loss: &str) -> TrainingConfig {
    TrainingConfig {
        loss: loss.into(),
        epochs: 6,
        batch_size: 32,
        // Chosen on this validation slice: at 1e-3 six epochs are too few for AN to move.
        lr: 3e-3,
        preset: Some(mlml_losses::Preset::Yeast),
        ..Default::default()
    }
}

/// An MLP with one hidden layer of 64 on the feature rows.
fn train_features(
    config: &TrainingConfig,
    train: &FeatureSet,
    val: &FeatureSet,
    dir: Option<&std::path::Path>,
    stop_after: Option<usize>,
) -> mlml_train::Result<Run<Flex>> {
    let model = ModelConfig {
        hidden: vec![64],
        ..Default::default()
    };
    mlml_train::train::<B, FeatureSet>(
        config,
        &model,
        train,
        val,
        dir,
        stop_after,
        &Default::default(),
        &mut (),
    )
}

#[test]
fn an_and_every_stateful_loss_learn_well_above_random_ranking() {
    let (train, val) = slices(0..600, 600..900);
    let random = random_ranking_map(&val);
    assert!(
        (25.0..40.0).contains(&random),
        "yeast's positive rate: {random}"
    );
    for loss in ["an", "role", "em-apl", "ll-cp", "gr", "splc"] {
        let mut config = config(loss);
        if loss == "em-apl" {
            // Pseudo-labelling rounds after epochs 3, 4 and 5 of 6.
            config.loss_overrides = serde_json::json!({ "warmup_epoch": 3 });
        }
        let run = train_features(&config, &train, &val, None, None)
            .unwrap_or_else(|e| panic!("{loss}: {e}"));
        let p = &run.progress;
        assert_eq!(p.epochs.len(), 6, "{loss}");
        assert!(
            p.best_val_map > random + 8.0,
            "{loss}: best validation mAP {:.1} vs random ranking {random:.1}",
            p.best_val_map
        );
        assert!(p.epochs.iter().all(|e| e.train_loss.is_finite()), "{loss}");
        let best = &p.epochs[p.best_epoch - 1];
        assert_eq!(best.val_map, p.best_val_map);
        if loss == "em-apl" {
            let notes: Vec<&str> = p
                .epochs
                .iter()
                .filter_map(|e| e.loss_note.as_deref())
                .collect();
            assert_eq!(notes.len(), 3, "{notes:?}");
            assert!(
                notes[0].contains("pseudo-negatives after epoch 3"),
                "{notes:?}"
            );
        }
    }
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let (train, val) = slices(0..600, 600..900);
    // ROLE: the estimator and its Adam moments must survive the checkpoint too.
    let mut config = config("role");
    config.epochs = 4;
    let whole = tempfile::tempdir().unwrap();
    let once = train_features(&config, &train, &val, Some(whole.path()), None).unwrap();

    let split = tempfile::tempdir().unwrap();
    let first = train_features(&config, &train, &val, Some(split.path()), Some(2)).unwrap();
    assert_eq!(first.progress.epochs_done, 2);
    assert_ne!(weights(&first.last), weights(&once.last));
    let resumed = train_features(&config, &train, &val, Some(split.path()), None).unwrap();
    assert_eq!(resumed.progress.epochs_done, 4);
    assert_eq!(weights(&resumed.last), weights(&once.last), "final weights");
    assert_eq!(
        weights(&resumed.best),
        weights(&once.best),
        "selected weights"
    );
    assert_eq!(
        resumed.progress, once.progress,
        "per-epoch figures and loss state"
    );
}

#[test]
fn a_run_that_blows_up_stops_with_the_epoch_and_batch() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("asl-bce");
    config.lr = 1e37;
    let dir = tempfile::tempdir().unwrap();
    let err = train_features(&config, &train, &val, Some(dir.path()), None).unwrap_err();
    match &err {
        TrainError::NonFinite { epoch, batch, .. } => {
            assert!(*epoch >= 1 && *batch >= 1);
            let text = err.to_string();
            assert!(
                text.contains(&format!("at epoch {epoch}, batch {batch}")),
                "{text}"
            );
            // Every epoch before the failing one has its checkpoint.
            let progress = dir.path().join("progress.json");
            if *epoch > 1 {
                let p: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(progress).unwrap()).unwrap();
                assert_eq!(p["epochs_done"], *epoch - 1);
            } else {
                assert!(!progress.exists());
            }
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
}

#[test]
fn bad_settings_are_errors() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("hil");
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("unknown loss 'hil'"), "{err}");
    config.loss = "an".into();
    config.epochs = 0;
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("must be positive"), "{err}");
}

#[test]
fn a_damaged_checkpoint_is_an_error_naming_the_file() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("an");
    config.epochs = 2;
    let dir = tempfile::tempdir().unwrap();
    train_features(&config, &train, &val, Some(dir.path()), Some(1)).unwrap();
    let path = dir.path().join("checkpoint.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = train_features(&config, &train, &val, Some(dir.path()), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint.bin: not an mlml checkpoint: truncated"),
        "{err}"
    );
}

#[test]
fn patience_stops_a_run_whose_validation_map_stopped_rising() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("an");
    config.epochs = 40;
    config.patience = Some(2);
    let dir = tempfile::tempdir().unwrap();
    let run = train_features(&config, &train, &val, Some(dir.path()), None).unwrap();
    let p = &run.progress;
    assert!(
        p.stopped_early,
        "40 epochs without a plateau of 2: {:?}",
        p.epochs
    );
    assert!(p.epochs_done < 40);
    assert_eq!(p.epochs_done - p.best_epoch, 2);
    // Every epoch after the best one scored lower (or equal) than it.
    assert!(p.epochs[p.best_epoch..]
        .iter()
        .all(|e| e.val_map <= p.best_val_map));
    // Resuming a run that stopped early does not train again.
    let again = train_features(&config, &train, &val, Some(dir.path()), None).unwrap();
    assert_eq!(again.progress, run.progress);
    config.patience = Some(0);
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(
        err.to_string().contains("patience must be at least 1"),
        "{err}"
    );
}

#[test]
fn sgd_and_adamw_under_a_cosine_schedule_learn_and_resume_exactly() {
    let (train, val) = slices(0..600, 600..900);
    let random = random_ranking_map(&val);
    // Learning rates chosen on this validation slice for four epochs.
    for (optimizer, lr) in [(OptimizerKind::Sgd, 0.3), (OptimizerKind::AdamW, 1e-2)] {
        let mut config = config("an");
        config.epochs = 4;
        config.optimizer = optimizer;
        config.lr = lr;
        config.weight_decay = 1e-3;
        config.schedule = Schedule::Cosine { min_lr: 1e-5 };
        if optimizer == OptimizerKind::Sgd {
            config.nesterov = true;
        }
        let whole = tempfile::tempdir().unwrap();
        let once = train_features(&config, &train, &val, Some(whole.path()), None).unwrap();
        let p = &once.progress;
        assert!(
            p.best_val_map > random + 8.0,
            "{optimizer:?}: best validation mAP {:.1} vs random ranking {random:.1}",
            p.best_val_map
        );
        // The cosine curve: the recorded rate (the last step's) falls every epoch.
        assert!(
            p.epochs.windows(2).all(|w| w[1].lr < w[0].lr),
            "{optimizer:?}"
        );
        // Momentum buffers (burn's Sgd record) and Adam's moments survive the checkpoint.
        let split = tempfile::tempdir().unwrap();
        train_features(&config, &train, &val, Some(split.path()), Some(2)).unwrap();
        let resumed = train_features(&config, &train, &val, Some(split.path()), None).unwrap();
        assert_eq!(
            weights(&resumed.last),
            weights(&once.last),
            "{optimizer:?}: final weights"
        );
    }
}

#[test]
fn a_head_learning_rate_needs_an_image_model() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("an");
    config.head_lr_mult = 10.0;
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("training.head_lr_mult (10) applies to image models trained end to end"),
        "{err}"
    );
}

#[test]
fn stop_below_best_stops_once_the_validation_map_falls_that_far() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("an");
    // A learning rate this high overfits the 600 rows quickly, so the mAP falls.
    config.lr = 3e-2;
    config.epochs = 40;
    config.stop_below_best = Some(1.0);
    let run = train_features(&config, &train, &val, None, None).unwrap();
    let p = &run.progress;
    assert!(p.stopped_early, "never fell 1 point: {:?}", p.epochs);
    let last = p.epochs.last().unwrap();
    assert!(p.best_val_map - last.val_map > 1.0, "{:?}", p.epochs);
    // Every epoch before the last stayed within a point of the best so far.
    let mut best = f64::MIN;
    for e in &p.epochs[..p.epochs.len() - 1] {
        best = best.max(e.val_map);
        assert!(best - e.val_map <= 1.0, "{:?}", p.epochs);
    }
    assert!(p
        .stop_reason
        .as_deref()
        .is_some_and(|r| r.contains("training.stop_below_best")));
    config.stop_below_best = Some(-1.0);
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("stop_below_best"), "{err}");
}

/// Counts the optimizer steps a run takes.
struct Steps(Vec<(usize, usize)>);

impl mlml_train::Observer for Steps {
    fn batch_done(&mut self, epoch: usize, batch: usize, _batches: usize, samples: usize) {
        if epoch == 1 {
            self.0.push((batch, samples));
        }
    }
}

#[test]
fn drop_last_leaves_out_each_epochs_short_batch() {
    let (train, val) = slices(0..600, 600..900);
    let model = ModelConfig {
        hidden: vec![8],
        ..Default::default()
    };
    let mut config = config("an");
    config.epochs = 1;
    // 600 rows in batches of 64: nine full batches and one of 24.
    config.batch_size = 64;
    let steps = |config: &TrainingConfig| {
        let mut steps = Steps(Vec::new());
        mlml_train::train::<B, FeatureSet>(
            config,
            &model,
            &train,
            &val,
            None,
            None,
            &Default::default(),
            &mut steps,
        )
        .unwrap();
        steps.0
    };
    let kept = steps(&config);
    assert_eq!(kept.len(), 10);
    assert_eq!(kept.last(), Some(&(10, 24)));
    config.drop_last = true;
    let dropped = steps(&config);
    assert_eq!(dropped.len(), 9);
    assert!(dropped.iter().all(|&(_, n)| n == 64));
    config.batch_size = 601;
    let err = mlml_train::train::<B, FeatureSet>(
        &config,
        &model,
        &train,
        &val,
        None,
        None,
        &Default::default(),
        &mut (),
    )
    .unwrap_err();
    assert!(err.to_string().contains("leaves no batch"), "{err}");
}

#[test]
fn a_one_cycle_schedule_that_would_give_a_nan_rate_is_refused() {
    let (train, val) = slices(0..600, 600..900);
    let mut config = config("an");
    config.epochs = 1;
    config.batch_size = 600;
    // One step in all: pct_start x steps - 1 < 0 and the warm-up would divide by zero.
    config.schedule = Schedule::OneCycle {
        epochs: 1,
        pct_start: 0.3,
    };
    let err = train_features(&config, &train, &val, None, None).unwrap_err();
    assert!(err.to_string().contains("NaN learning rate"), "{err}");
}
