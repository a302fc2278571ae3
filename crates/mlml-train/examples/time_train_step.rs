//! One training step of the small CNN as `mlml train` takes it (forward, then the loop's own
//! `mlml_train::step`: the AN loss, backward, the loss's hook, Adam with coupled L2) at batch 64,
//! 64 x 64 grey images, 10 classes, on the CPU (Flex).
//! Prints images per second over timed steps after warm-up. The PyTorch twin:
//! `benches/small_cnn_torch.py`.
//!
//! `cargo run --release -p mlml-train --example time_train_step [-- STEPS]`

use std::time::Instant;

/// The allocator of the `mlml` binary, whose step this times.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::{Autodiff, Flex};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{Distribution, Tensor};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{targets_from_labels, LossContext};
use mlml_train::{
    BackboneKind, Classifier, Input, ModelConfig, ParameterGroups, StepAt, TorchAdam,
    TorchAdamConfig,
};

type B = Autodiff<Flex>;

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let (batch, classes) = (64, 10);
    let device = Default::default();
    let config = ModelConfig {
        backbone: BackboneKind::SmallCnn,
        ..Default::default()
    };
    let mut model: Classifier<B> =
        mlml_train::seeded_init::<B, _>(&device, 0, || config.init(1, classes, &device))
            .expect("a model");
    let values: Vec<i8> = (0..batch * classes)
        .map(|i| if i % 4 == 0 { 1 } else { -1 })
        .collect();
    let labels = LabelMatrix::new(
        (0..classes).map(|c| format!("c{c}")).collect(),
        (0..batch).map(|i| format!("r{i}")).collect(),
        values,
    )
    .expect("labels");
    let setup = LossSetup::<B> {
        epochs: 1,
        train_labels: &labels,
        seed: 0,
        device,
    };
    let mut loss = registry::build("an", None, &serde_json::Value::Null, &setup).expect("loss");
    let mut optimizer: OptimizerAdaptor<TorchAdam, Classifier<B>, B> =
        OptimizerAdaptor::from(TorchAdamConfig::new().init());
    let rows: Vec<usize> = (0..batch).collect();
    let images = Tensor::<B, 4>::random([batch, 1, 64, 64], Distribution::Default, &device);
    let mut step = |model: Classifier<B>| {
        let targets = targets_from_labels::<B>(&labels, &rows, &device);
        let logits = model.logits(Input::Images(images.clone())).expect("logits");
        let context = LossContext::train(1, &rows).expect("context");
        let at = StepAt {
            epoch: 1,
            batch: 1,
            lr: 1e-3,
        };
        mlml_train::step(
            model,
            &mut optimizer,
            &mut loss,
            logits,
            targets,
            &context,
            at,
            ParameterGroups::default(),
            None,
            None,
        )
        .expect("a step")
        .0
    };
    for _ in 0..2 {
        model = step(model);
    }
    let start = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    let seconds = start.elapsed().as_secs_f64() / steps as f64;
    println!(
        "mlml (burn flex) small-cnn-64-b{batch} train step: {:.1} ms, {:.1} img/s",
        seconds * 1000.0,
        batch as f64 / seconds
    );
}
