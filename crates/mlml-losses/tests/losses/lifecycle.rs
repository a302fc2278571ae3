//! Every registered loss, built through the registry only, trained by a tiny loop written by
//! hand as a generic loop would drive it (forward, backward, optimizer step, the loss's step
//! and epoch hooks, checkpoint state), on the CPU backend; then, per loss, what its method
//! promises.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{build, LossSetup, LOSSES};
use mlml_losses::{
    gradient_lookup, targets_from_labels, EpochEnd, LossContext, LossState, MultiLabelLoss,
    OptimizerStep,
};

type B = Autodiff<Flex>;

const N: usize = 12;
const D: usize = 5;
const C: usize = 4;
const LR: f64 = 1e-2;

/// Twelve rows, one observed positive each, the rest unobserved.
fn train_labels() -> LabelMatrix {
    let mut codes = vec![0i8; N * C];
    for i in 0..N {
        codes[i * C + (i * 7) % C] = 1;
    }
    LabelMatrix::new(
        (0..C).map(|j| format!("c{j}")).collect(),
        (0..N).map(|i| format!("img{i}.jpg")).collect(),
        codes,
    )
    .unwrap()
}

fn features(device: &burn::backend::flex::FlexDevice) -> Tensor<B, 2> {
    // Deterministic features in [-1, 1], different per row and column.
    let values: Vec<f32> = (0..N * D)
        .map(|k| (((k * 37 + 11) % 23) as f32 / 11.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [N, D]), device)
}

/// The loss's setup: epochs, training labels, seed, the CPU device.
fn run_facts(labels: &LabelMatrix, epochs: usize, seed: u64) -> LossSetup<'_, B> {
    LossSetup {
        epochs,
        train_labels: labels,
        seed,
        device: Default::default(),
    }
}

struct Run {
    model: Linear<B>,
    loss: Box<dyn MultiLabelLoss<B>>,
    log: Vec<String>,
}

/// A run of `epochs` epochs of two batches of six rows each, driving every hook.
fn train(name: &str, overrides: serde_json::Value, epochs: usize, labels: &LabelMatrix) -> Run {
    let mut run = start(name, overrides, epochs, labels);
    for epoch in 1..=epochs {
        run_epoch(&mut run, epoch, labels);
    }
    run
}

/// The loss (seed 3) and the model of a run of `epochs` epochs, before its first epoch.
fn start(name: &str, overrides: serde_json::Value, epochs: usize, labels: &LabelMatrix) -> Run {
    let device = Default::default();
    let loss = build::<B>(name, None, &overrides, &run_facts(labels, epochs, 3)).unwrap();
    let model = LinearConfig::new(D, C).init::<B>(&device);
    Run {
        model,
        loss,
        log: Vec::new(),
    }
}

fn run_epoch(run: &mut Run, epoch: usize, labels: &LabelMatrix) {
    let device = Default::default();
    let x = features(&device);
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init::<B, Linear<B>>();
    for rows in [[0usize, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]] {
        let idx = Tensor::<B, 1, burn::tensor::Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [6]),
            &device,
        );
        let logits = run.model.forward(x.clone().select(0, idx));
        let targets = targets_from_labels::<B>(labels, &rows, &device);
        let ctx = LossContext::train(epoch, &rows).unwrap();
        let value = run.loss.forward(logits, targets, &ctx).unwrap();
        let scalar = value.clone().into_scalar();
        assert!(scalar.is_finite(), "{}: loss {scalar}", run.loss.name());
        let grads = value.backward();
        {
            let lookup = gradient_lookup::<B>(&grads);
            run.loss
                .on_optimizer_step(&OptimizerStep {
                    lr: LR,
                    gradient: &lookup,
                })
                .unwrap();
        }
        let params = GradientsParams::from_grads(grads, &run.model);
        run.model = optimizer.step(LR, run.model.clone(), params);
    }
    let probabilities = run.loss.wants_train_probabilities(epoch).then(|| {
        let p = sigmoid(run.model.valid().forward(x.inner()));
        p.into_data().convert::<f32>().into_vec::<f32>().unwrap()
    });
    let end = EpochEnd {
        epoch,
        train_probabilities: probabilities.as_deref(),
    };
    if let Some(line) = run.loss.after_epoch(&end).unwrap() {
        run.log.push(line);
    }
}

#[test]
fn every_registered_loss_trains_two_epochs_through_the_registry() {
    let labels = train_labels();
    for info in LOSSES {
        let overrides = match info.name {
            // A warm-up of one epoch, so that a two-epoch run makes one pseudo-labelling round.
            "em-apl" => serde_json::json!({ "warmup_epoch": 1 }),
            _ => serde_json::Value::Null,
        };
        let mut run = train(info.name, overrides, 2, &labels);
        // A checkpoint's state restores into a freshly built loss of the same name.
        let state = run.loss.state();
        let setup = run_facts(&labels, 2, 99);
        let overrides = match info.name {
            "em-apl" => serde_json::json!({ "warmup_epoch": 1 }),
            _ => serde_json::Value::Null,
        };
        let mut fresh = build::<B>(info.name, None, &overrides, &setup).unwrap();
        fresh.load_state(&state).unwrap();
        assert_eq!(fresh.state(), state, "{}: state round trip", info.name);
        // Evaluation batches are accepted by every loss and change no state.
        let device = Default::default();
        let rows = [0usize, 1, 2];
        let logits =
            Tensor::<B, 2>::from_data(TensorData::new(vec![3.0f32; 3 * C], [3, C]), &device);
        let targets = targets_from_labels::<B>(&labels, &rows, &device);
        let value = run
            .loss
            .forward(logits, targets, &LossContext::eval(2, &rows).unwrap())
            .unwrap();
        assert!(value.into_scalar().is_finite(), "{}: eval loss", info.name);
        run.loss
            .on_optimizer_step(&OptimizerStep {
                lr: LR,
                gradient: &|_| None,
            })
            .unwrap();
        assert_eq!(
            run.loss.state(),
            state,
            "{}: eval changed the state",
            info.name
        );
    }
}

#[test]
fn em_apl_pseudo_labels_appear_after_its_warm_up_epoch() {
    let labels = train_labels();
    let overrides = serde_json::json!({ "warmup_epoch": 2, "neg_proportion": 0.5 });
    let mut run = start("em-apl", overrides, 3, &labels);
    run_epoch(&mut run, 1, &labels);
    let none = run.loss.state().values["pseudo_negatives"]
        .as_object()
        .unwrap()
        .len();
    assert_eq!(none, 0, "no pseudo-label before the warm-up epoch ends");
    assert!(run.log.is_empty());
    run_epoch(&mut run, 2, &labels);
    run_epoch(&mut run, 3, &labels);
    let state = run.loss.state();
    let pseudo: usize = state.values["pseudo_negatives"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    // 36 unobserved entries, 9 per class; 0.5 of them over T - warmup = 1 round: 4 per class.
    assert_eq!(pseudo, 16, "{state:?}");
    assert_eq!(
        run.log.len(),
        1,
        "one round, after epoch 2 (none after the last epoch)"
    );
    assert!(
        run.log[0].contains("16 new pseudo-negatives after epoch 2"),
        "{:?}",
        run.log
    );
    // Pseudo-negatives are taken among unobserved entries only.
    for (row, entries) in state.values["pseudo_negatives"].as_object().unwrap() {
        let row: usize = row.parse().unwrap();
        for entry in entries.as_array().unwrap() {
            let class = entry[0].as_u64().unwrap() as usize;
            assert_eq!(labels.row(row)[class], 0, "row {row} class {class}");
        }
    }
}

#[test]
fn em_apl_refuses_a_round_without_probabilities() {
    let labels = train_labels();
    let setup = run_facts(&labels, 3, 0);
    let mut loss = build::<B>(
        "em-apl",
        None,
        &serde_json::json!({ "warmup_epoch": 1 }),
        &setup,
    )
    .unwrap();
    assert!(loss.wants_train_probabilities(1));
    let err = loss
        .after_epoch(&EpochEnd {
            epoch: 1,
            train_probabilities: None,
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs the training set's probabilities"),
        "{err}"
    );
    let err = loss
        .after_epoch(&EpochEnd {
            epoch: 1,
            train_probabilities: Some(&[0.5; 3]),
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("3 probabilities for 12 x 4 labels"),
        "{err}"
    );
}

fn estimator(state: &LossState) -> Vec<f32> {
    state.tensors["estimator"].values.clone()
}

#[test]
fn role_trains_its_estimator_at_ten_times_the_rate_and_survives_a_checkpoint() {
    let labels = train_labels();
    let setup = run_facts(&labels, 2, 3);
    let initial = build::<B>("role", None, &serde_json::Value::Null, &setup).unwrap();
    let extras = initial.extra_trainables();
    assert_eq!(extras.len(), 1);
    assert_eq!(extras[0].n_parameters, N * C);
    assert_eq!(extras[0].lr_multiplier, 10.0);
    let before = estimator(&initial.state());

    let run = train("role", serde_json::Value::Null, 1, &labels);
    let state = run.loss.state();
    assert_eq!(state.values["adam_steps"], 2, "one Adam step per batch");
    let after = estimator(&state);
    // Adam's first steps move each entry by about lr * lr_mult (its update is m / sqrt(v) ~ 1),
    // and every row moves, also those outside a batch (dense moments), as in the reference.
    let moved: Vec<f32> = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let largest = moved.iter().cloned().fold(0.0f32, f32::max);
    assert!(
        largest > 0.1 && largest <= 2.0 * (LR as f32) * 10.0 + 1e-6,
        "largest move {largest}"
    );
    assert!(
        moved.iter().all(|m| *m > 0.0),
        "every row of the estimator moves"
    );

    // Resume: restore the state into a fresh ROLE and take one more epoch on both.
    let mut restored = build::<B>("role", None, &serde_json::Value::Null, &setup).unwrap();
    assert_eq!(
        estimator(&restored.state()),
        before,
        "the seed fixes the initialisation"
    );
    restored.load_state(&state).unwrap();
    assert_eq!(restored.state(), state);
    let mut a = Run {
        model: run.model.clone(),
        loss: run.loss,
        log: Vec::new(),
    };
    let mut b = Run {
        model: run.model,
        loss: restored,
        log: Vec::new(),
    };
    run_epoch(&mut a, 2, &labels);
    run_epoch(&mut b, 2, &labels);
    assert_eq!(
        a.loss.state(),
        b.loss.state(),
        "the resumed estimator continues identically"
    );

    // A state of the wrong shape is refused with both shapes.
    let mut wrong = state.clone();
    wrong.tensors.get_mut("estimator").unwrap().shape = vec![N + 1, C];
    let err = b.loss.load_state(&wrong).unwrap_err();
    assert!(
        err.to_string().contains("the estimator is [12, 4]"),
        "{err}"
    );
}

#[test]
fn role_refuses_rows_outside_its_training_set() {
    let labels = train_labels();
    let setup = run_facts(&labels, 2, 5);
    let mut role = build::<B>("role", None, &serde_json::Value::Null, &setup).unwrap();
    let device = Default::default();
    let logits = Tensor::<B, 2>::zeros([2, C], &device);
    let targets = Tensor::<B, 2>::zeros([2, C], &device);
    let err = role
        .forward(logits, targets, &LossContext::train(1, &[3, 12]).unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("training row 12 is outside the 12-row training set"),
        "{err}"
    );
}

#[test]
fn ll_cp_writes_corrections_in_training_only() {
    let labels = train_labels();
    let overrides = serde_json::json!({ "delta_rel_percent": 10.0 });
    // Epoch 1 is plain AN: nothing is selected.
    let run = train("ll-cp", overrides.clone(), 1, &labels);
    assert!(run.loss.state().values["corrected"]
        .as_object()
        .unwrap()
        .is_empty());

    let setup = run_facts(&labels, 3, 0);
    let mut loss = build::<B>("ll-cp", None, &overrides, &setup).unwrap();
    let device = Default::default();
    let rows = [0usize, 1, 2, 3, 4, 5];
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(
            (0..6 * C).map(|k| (k % 5) as f32 - 1.0).collect::<Vec<_>>(),
            [6, C],
        ),
        &device,
    );
    let targets = targets_from_labels::<B>(&labels, &rows, &device);
    let no_gradient = OptimizerStep::<B> {
        lr: LR,
        gradient: &|_| None,
    };
    // Evaluation at epoch 2: the selection is made for the loss value, but nothing is stored.
    loss.forward(
        logits.clone(),
        targets.clone(),
        &LossContext::eval(2, &rows).unwrap(),
    )
    .unwrap();
    loss.on_optimizer_step(&no_gradient).unwrap();
    assert!(loss.state().values["corrected"]
        .as_object()
        .unwrap()
        .is_empty());
    // Training at epoch 2: k = ceil(6 * 4 * 10 %) = 3 entries, stored at the optimizer step.
    loss.forward(logits, targets, &LossContext::train(2, &rows).unwrap())
        .unwrap();
    assert!(
        loss.state().values["corrected"]
            .as_object()
            .unwrap()
            .is_empty(),
        "nothing is stored before the optimizer step"
    );
    loss.on_optimizer_step(&no_gradient).unwrap();
    let corrected: usize = loss.state().values["corrected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert!(corrected >= 3, "{corrected}");
}

#[test]
fn gr_and_em_apl_refuse_an_epoch_count_other_than_the_runs() {
    let labels = train_labels();
    let setup = run_facts(&labels, 2, 0);
    for name in ["gr", "em-apl"] {
        let err =
            build::<B>(name, None, &serde_json::json!({ "num_epochs": 8 }), &setup).unwrap_err();
        assert!(
            err.to_string()
                .contains("`num_epochs` is 8 but the run has 2 epochs"),
            "{name}: {err}"
        );
    }
    // Unset, GR takes the run's T, and an epoch past it is an error, not an extrapolation.
    let mut gr = build::<B>("gr", None, &serde_json::Value::Null, &setup).unwrap();
    let device = Default::default();
    let z = Tensor::<B, 2>::zeros([1, C], &device);
    let t = Tensor::<B, 2>::zeros([1, C], &device);
    assert!(gr
        .forward(z.clone(), t.clone(), &LossContext::train(2, &[0]).unwrap())
        .is_ok());
    let err = gr
        .forward(z, t, &LossContext::train(3, &[0]).unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("epoch 3 is past the run's 2 epochs"),
        "{err}"
    );
}

#[test]
fn epoch_zero_and_mismatched_shapes_are_errors() {
    assert!(LossContext::train(0, &[]).is_err());
    assert!(LossContext::eval(0, &[]).is_err());
    let labels = train_labels();
    let setup = run_facts(&labels, 10, 0);
    let device = Default::default();
    for info in LOSSES {
        let mut loss = build::<B>(info.name, None, &serde_json::Value::Null, &setup).unwrap();
        let z = Tensor::<B, 2>::zeros([2, C], &device);
        let t = Tensor::<B, 2>::zeros([2, C + 1], &device);
        let err = loss
            .forward(z, t, &LossContext::train(1, &[0, 1]).unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("logits are 2 x 4 but targets are 2 x 5"),
            "{}: {err}",
            info.name
        );
    }
}

#[test]
fn presets_set_dataset_values_with_sources() {
    use mlml_losses::registry::{preset_for, presets, resolved_config};
    use mlml_losses::Preset;
    let coco = resolved_config("epr", Some(Preset::Coco)).unwrap();
    assert_eq!(coco["expected_num_pos"], 2.9);
    let voc = resolved_config("em-apl", Some(Preset::Voc)).unwrap();
    assert_eq!(
        (voc["alpha"].as_f64(), voc["beta"].as_f64()),
        (Some(0.2), Some(0.02))
    );
    let cub = resolved_config("ll-ct", Some(Preset::Cub)).unwrap();
    assert_eq!(cub["delta_rel_percent"], 0.4);
    // BoostLU keeps its fixed rate whatever the dataset.
    assert!(preset_for("boostlu", Preset::Coco).unwrap().is_empty());
    assert_eq!(Preset::from_name("nuswide").unwrap(), Preset::Nuswide);
    assert!(Preset::from_name("pascal")
        .unwrap_err()
        .to_string()
        .contains("valid presets: voc, coco"));
    let all = presets();
    assert!(all.iter().all(|(_, _, v)| !v.source.is_empty()));
    // Every image set has a value for each of EPR, ROLE, EM, EM+APL and the three LL schemes.
    for preset in [Preset::Voc, Preset::Coco, Preset::Nuswide, Preset::Cub] {
        for loss in ["epr", "role", "em", "em-apl", "ll-r", "ll-ct", "ll-cp"] {
            assert!(
                all.iter().any(|(p, l, _)| *p == preset && *l == loss),
                "{preset:?} {loss}"
            );
        }
    }
    // A user's override wins over the preset.
    let labels = train_labels();
    let setup = run_facts(&labels, 2, 0);
    assert!(build::<B>(
        "epr",
        Some(Preset::Cub),
        &serde_json::json!({ "expected_num_pos": 1.0 }),
        &setup
    )
    .is_ok());
}
