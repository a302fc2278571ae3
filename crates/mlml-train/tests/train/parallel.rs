//! Data-parallel training on several CPU "devices" (peers sharing burn's Flex device, joined
//! by burn-collective's local all-reduce), on a slice of the embedded yeast set: the same
//! weights as one device with the whole batch, and one loss state on every device.

use burn::backend::{Autodiff, Flex};
use mlml_testing::{assert_all_close, Tolerance};
use mlml_train::{FeatureSet, ModelConfig, Run, TrainingConfig};

type B = Autodiff<Flex>;

use crate::weights;
use crate::yeast;

use weights::weights;
use yeast::slices;

fn config(loss: &str) -> TrainingConfig {
    TrainingConfig {
        loss: loss.into(),
        epochs: 3,
        batch_size: 32,
        lr: 3e-3,
        preset: Some(mlml_losses::Preset::Yeast),
        ..Default::default()
    }
}

fn mlp() -> ModelConfig {
    ModelConfig {
        hidden: vec![64],
        ..Default::default()
    }
}

fn on_devices(
    config: &TrainingConfig,
    train: &FeatureSet,
    val: &FeatureSet,
    devices: usize,
) -> Vec<Run<Flex>> {
    mlml_train::train_parallel_peers::<B, FeatureSet>(
        config,
        &mlp(),
        train,
        val,
        None,
        None,
        &vec![Default::default(); devices],
        &mut (),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{} on {devices} devices: {e}", config.loss))
}

/// `got` has `expected`'s structure, its integers, and its other numbers within 1e-4
/// relative (the one-device run sums in another order).
fn json_close(expected: &serde_json::Value, got: &serde_json::Value, loss: &str, at: &str) {
    use serde_json::Value;
    match (expected, got) {
        (Value::Number(e), Value::Number(g)) if e.is_f64() || g.is_f64() => {
            let (e, g) = (e.as_f64().unwrap(), g.as_f64().unwrap());
            assert!(
                (e - g).abs() <= 1e-4 * e.abs().max(1e-3),
                "{loss}: {at} is {g} on the devices, {e} on one"
            );
        }
        (Value::Array(e), Value::Array(g)) => {
            assert_eq!(e.len(), g.len(), "{loss}: {at}'s length");
            for (i, (e, g)) in e.iter().zip(g).enumerate() {
                json_close(e, g, loss, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(e), Value::Object(g)) => {
            assert_eq!(
                e.keys().collect::<Vec<_>>(),
                g.keys().collect::<Vec<_>>(),
                "{loss}: {at}'s keys"
            );
            for (k, e) in e {
                json_close(e, &g[k], loss, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(expected, got, "{loss}: {at}"),
    }
}

fn train_losses(run: &Run<Flex>) -> Vec<f64> {
    run.progress.epochs.iter().map(|e| e.train_loss).collect()
}

/// The MLP has no BatchNorm, so two devices with half batches compute the gradient of the whole
/// batch: after 3 epochs of 7 steps (the last batch has one row, so one device's shard of it is
/// empty) the weights are those of one device, up to the order of f32 sums.
#[test]
fn two_devices_with_half_batches_train_the_weights_of_one_device() {
    let (train, val) = slices(0..193, 600..800);
    let config = config("an");
    let one = on_devices(&config, &train, &val, 1).remove(0);
    let two = on_devices(&config, &train, &val, 2);
    assert_eq!(two.len(), 2);
    let (w1, w2) = (weights(&one.last), weights(&two[0].last));
    assert_all_close(
        "weights, 2 devices vs 1",
        &w2,
        &w1,
        Tolerance::relative(1e-4).with_absolute(1e-6),
    );
    assert_all_close(
        "train loss per epoch, 2 devices vs 1",
        &train_losses(&two[0]),
        &train_losses(&one),
        Tolerance::relative(1e-5),
    );
    assert_eq!(
        weights(&two[0].last),
        weights(&two[1].last),
        "the devices agree"
    );
}

/// Each device computes the loss of the whole batch on the logits all devices share, so the
/// stateful losses (ROLE's label estimate, LL's corrections and rejections, EM+APL's
/// pseudo-labelling rounds at the epoch's end) hold one state on every device, and it is the
/// single-device run's.
#[test]
fn every_stateful_loss_keeps_one_state_on_every_device() {
    let (train, val) = slices(0..160, 600..800);
    // LL-R keeps no state, but ranks the batch's losses to reject the largest.
    for (loss, stateful) in [
        ("role", true),
        ("ll-cp", true),
        ("ll-r", false),
        ("em-apl", true),
    ] {
        let mut config = config(loss);
        if loss == "em-apl" {
            // Pseudo-labelling rounds after epochs 1 and 2 of 3.
            config.loss_overrides = serde_json::json!({ "warmup_epoch": 1 });
        }
        let peers = on_devices(&config, &train, &val, 3);
        for (rank, peer) in peers.iter().enumerate().skip(1) {
            assert_eq!(
                peer.progress, peers[0].progress,
                "{loss}: device {rank}'s loss state and figures"
            );
        }
        let state = &peers[0].progress.loss_state;
        assert_eq!(
            state.loss,
            if stateful { loss } else { "" },
            "{loss}: its state"
        );
        let one = on_devices(&config, &train, &val, 1).remove(0);
        assert_eq!(one.progress.loss_state.loss, state.loss);
        json_close(
            &one.progress.loss_state.values,
            &state.values,
            loss,
            "state",
        );
        assert_all_close(
            format!("{loss}: train loss per epoch, 3 devices vs 1"),
            &train_losses(&peers[0]),
            &train_losses(&one),
            Tolerance::relative(1e-4),
        );
        for (name, tensor) in &one.progress.loss_state.tensors {
            let parallel = state
                .tensors
                .get(name)
                .unwrap_or_else(|| panic!("{loss}: no {name} on the devices"));
            assert_all_close(
                format!("{loss}: {name}, 3 devices vs 1"),
                &parallel.values,
                &tensor.values,
                Tolerance::relative(1e-4).with_absolute(1e-5),
            );
        }
        if loss == "em-apl" {
            let notes = peers[0]
                .progress
                .epochs
                .iter()
                .filter(|e| e.loss_note.is_some())
                .count();
            assert_eq!(notes, 2, "{loss}: two pseudo-labelling rounds");
        }
    }
}
