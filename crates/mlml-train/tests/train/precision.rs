//! The loss scale of `training.precision = "f16"` in the loop's own `step`, on the CPU (where
//! the scaling logic is the same as on a GPU): a power-of-two scale gives the unscaled step bit
//! for bit (the model and ROLE's label estimator, which takes its gradient from the step), and
//! gradients that overflow skip the step, leave the model as it was and halve the scale.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{Tensor, TensorData};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{targets_from_labels, LossContext, MultiLabelLoss};
use mlml_train::{
    Classifier, Input, LossScale, ModelConfig, ParameterGroups, StepAt, TorchAdam, TorchAdamConfig,
};

use crate::weights;

type B = Autodiff<Flex>;

const ROWS: usize = 16;
const FEATURES: usize = 12;
const CLASSES: usize = 5;

struct Trainee {
    model: Classifier<B>,
    optimizer: OptimizerAdaptor<TorchAdam, Classifier<B>, B>,
    loss: Box<dyn MultiLabelLoss<B>>,
}

fn labels() -> LabelMatrix {
    // One observed positive per row, the rest unobserved (single-positive labels).
    let values = (0..ROWS * CLASSES)
        .map(|i| {
            if i % CLASSES == (i / CLASSES) % CLASSES {
                1
            } else {
                0
            }
        })
        .collect();
    LabelMatrix::new(
        (0..CLASSES).map(|c| format!("c{c}")).collect(),
        (0..ROWS).map(|r| format!("r{r}")).collect(),
        values,
    )
    .unwrap()
}

fn trainee(loss: &str, labels: &LabelMatrix) -> Trainee {
    let device = Default::default();
    let config = ModelConfig {
        hidden: vec![16],
        ..Default::default()
    };
    let model =
        mlml_train::seeded_init::<B, _>(&device, 7, || config.init(FEATURES, CLASSES, &device))
            .unwrap();
    let setup = LossSetup::<B> {
        epochs: 1,
        train_labels: labels,
        seed: 0,
        device,
    };
    Trainee {
        model,
        optimizer: OptimizerAdaptor::from(TorchAdamConfig::new().init()),
        loss: registry::build(loss, None, &serde_json::Value::Null, &setup).unwrap(),
    }
}

/// Fixed features in [-1, 1) times `size`.
fn features(size: f32) -> Tensor<B, 2> {
    let values = (0..ROWS * FEATURES)
        .map(|i| ((i * 37 % 101) as f32 / 50.5 - 1.0) * size)
        .collect::<Vec<_>>();
    Tensor::from_data(
        TensorData::new(values, [ROWS, FEATURES]),
        &Default::default(),
    )
}

/// One step of `t` on `x`; returns the loss.
fn step(
    t: &mut Trainee,
    labels: &LabelMatrix,
    x: Tensor<B, 2>,
    scale: Option<&mut LossScale>,
) -> f32 {
    let rows: Vec<usize> = (0..ROWS).collect();
    let logits = t.model.logits(Input::Features(x)).unwrap();
    let targets = targets_from_labels::<B>(labels, &rows, &Default::default());
    let context = LossContext::train(1, &rows).unwrap();
    let at = StepAt {
        epoch: 1,
        batch: 1,
        lr: 1e-2,
    };
    let (model, value) = mlml_train::step(
        t.model.clone(),
        &mut t.optimizer,
        &mut t.loss,
        logits,
        targets,
        &context,
        at,
        ParameterGroups::default(),
        None,
        scale,
    )
    .unwrap();
    t.model = model;
    value
}

#[test]
fn a_power_of_two_loss_scale_gives_the_unscaled_steps_bit_for_bit() {
    let labels = labels();
    for loss in ["an", "role"] {
        let (mut plain, mut scaled) = (trainee(loss, &labels), trainee(loss, &labels));
        let mut scale = LossScale {
            scale: 1024.0,
            ..LossScale::default()
        };
        for _ in 0..3 {
            let a = step(&mut plain, &labels, features(1.0), None);
            let b = step(&mut scaled, &labels, features(1.0), Some(&mut scale));
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{loss}: the loss reported is unscaled"
            );
        }
        let (a, b) = (
            weights::weights(&plain.model.valid()),
            weights::weights(&scaled.model.valid()),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{loss}: weights differ"
        );
        // ROLE's label estimator steps on its own gradient, unscaled.
        assert_eq!(
            plain.loss.state(),
            scaled.loss.state(),
            "{loss}: loss state"
        );
        assert_eq!(
            (scale.scale, scale.good_steps, scale.skipped_steps),
            (1024.0, 3, 0)
        );
    }
}

#[test]
fn gradients_that_overflow_skip_the_step_and_halve_the_scale() {
    let labels = labels();
    let mut t = trainee("an", &labels);
    let before = weights::weights(&t.model.valid());
    // Features of 1e4 and a scale near f32's largest: the first layer's gradient overflows.
    let mut scale = LossScale {
        scale: 2f32.powi(126),
        ..LossScale::default()
    };
    let value = step(&mut t, &labels, features(1e4), Some(&mut scale));
    assert!(value.is_finite(), "the loss itself is finite: {value}");
    assert_eq!(
        weights::weights(&t.model.valid()),
        before,
        "a skipped step changes nothing"
    );
    assert_eq!(
        (scale.scale, scale.good_steps, scale.skipped_steps),
        (2f32.powi(125), 0, 1)
    );
    // At a sane scale the same batch steps.
    scale.scale = 1024.0;
    step(&mut t, &labels, features(1e4), Some(&mut scale));
    assert_ne!(weights::weights(&t.model.valid()), before);
    assert_eq!((scale.good_steps, scale.skipped_steps), (1, 1));
}
