//! The throughput of an image backbone's training step and inference on a backend, as `mlml
//! train` runs them: [`crate::step`] (AN loss, backward, Adam) after a forward pass under the
//! precision's autocast, and the inference forward pass of the same model. What `mlml bench`
//! prints and `cargo xtask gpu-check` records.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{Distribution, Tensor};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{targets_from_labels, LossContext};
use serde::Serialize;

use crate::error::{bail, Result};
use crate::{
    BackboneKind, Classifier, Input, ModelConfig, ParameterGroups, Precision, StepAt, TorchAdam,
    TorchAdamConfig, TrainBackend,
};

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The network (an image backbone with its head).
    pub backbone: BackboneKind,
    /// Square images of this side, 3 channels (1 for the small CNN).
    pub image_size: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Classes of the head (COCO's 80 by default).
    pub classes: usize,
    /// The training step's precision.
    pub precision: Precision,
    /// Timed steps (and as many timed inference batches), after `warmup` untimed ones.
    pub steps: usize,
    /// Untimed steps first (kernel compilation, autotuning, the allocator's pools).
    pub warmup: usize,
}

/// Seconds per step and images per second.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// The network.
    pub backbone: String,
    /// Image side in pixels.
    pub image_size: usize,
    /// Images per step.
    pub batch_size: usize,
    /// `f32`, `f16` or `bf16`.
    pub precision: String,
    /// Timed steps.
    pub steps: usize,
    /// Mean seconds of a training step (forward, loss, backward, optimizer step).
    pub train_step_seconds: f64,
    /// Training images per second.
    pub train_images_per_second: f64,
    /// Mean seconds of an inference batch (f32, running statistics).
    pub infer_batch_seconds: f64,
    /// Inference images per second.
    pub infer_images_per_second: f64,
}

/// Times `config` on `device`. Each step reads its loss back and each inference batch its
/// logits, so the times include the device's work, not only its queueing.
///
/// # Errors
/// A backbone that takes no images, no step or batch, a precision the device cannot do, or a
/// step that fails.
pub fn time_backbone<B: TrainBackend>(config: &BenchConfig, device: &B::Device) -> Result<Timing> {
    if config.steps == 0 || config.batch_size == 0 || config.image_size == 0 {
        bail!("bench: steps, batch size and image size must be positive");
    }
    config.precision.check::<B>(device)?;
    let model_config = ModelConfig {
        backbone: config.backbone,
        ..Default::default()
    };
    if !model_config.takes_images() {
        bail!("bench: times image backbones (small-cnn, resnet18/34/50/101, efficientnet-lite0), not the MLP");
    }
    let channels = if config.backbone == BackboneKind::SmallCnn {
        1
    } else {
        3
    };
    let (batch, classes) = (config.batch_size, config.classes);
    let mut model: Classifier<B> =
        crate::seeded_init::<B, _>(device, 0, || model_config.init(channels, classes, device))?;
    let labels = LabelMatrix::new(
        (0..classes).map(|c| format!("c{c}")).collect(),
        (0..batch).map(|r| format!("r{r}")).collect(),
        (0..batch * classes)
            .map(|i| i8::from(i % classes == (i / classes) % classes))
            .collect(),
    )?;
    let setup = LossSetup::<B> {
        epochs: 1,
        train_labels: &labels,
        seed: 0,
        device: device.clone(),
    };
    let mut loss = registry::build("an", None, &serde_json::Value::Null, &setup)?;
    let mut optimizer: OptimizerAdaptor<TorchAdam, Classifier<B>, B> =
        OptimizerAdaptor::from(TorchAdamConfig::new().init());
    let mut loss_scale = config.precision.initial_loss_scale();
    let rows: Vec<usize> = (0..batch).collect();
    let context = LossContext::train(1, &rows)?;
    let shape = [batch, channels, config.image_size, config.image_size];
    let images = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let targets = targets_from_labels::<B>(&labels, &rows, device);
    let autocast = config.precision.autocast();
    let mut train_step = |model: Classifier<B>| -> Result<Classifier<B>> {
        let logits = mlml_ops::autocast(autocast, || model.logits(Input::Images(images.clone())))?;
        let at = StepAt {
            epoch: 1,
            batch: 1,
            lr: 1e-4,
        };
        let (model, _) = crate::step(
            model,
            &mut optimizer,
            &mut loss,
            logits,
            targets.clone(),
            &context,
            at,
            ParameterGroups::default(),
            None,
            loss_scale.as_mut(),
        )?;
        Ok(model)
    };
    for _ in 0..config.warmup {
        model = train_step(model)?;
    }
    let start = Instant::now();
    for _ in 0..config.steps {
        model = train_step(model)?;
    }
    let train_step_seconds = start.elapsed().as_secs_f64() / config.steps as f64;

    let model = model.valid();
    let images = images.inner();
    let infer = || -> Result<()> {
        let logits = model.logits(Input::Images(images.clone()))?;
        let _ = logits.into_data();
        Ok(())
    };
    for _ in 0..config.warmup {
        infer()?;
    }
    let start = Instant::now();
    for _ in 0..config.steps {
        infer()?;
    }
    let infer_batch_seconds = start.elapsed().as_secs_f64() / config.steps as f64;
    Ok(Timing {
        backbone: config.backbone.name().into(),
        image_size: config.image_size,
        batch_size: batch,
        precision: config.precision.name().into(),
        steps: config.steps,
        train_step_seconds,
        train_images_per_second: batch as f64 / train_step_seconds,
        infer_batch_seconds,
        infer_images_per_second: batch as f64 / infer_batch_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_cnn_times_on_the_cpu_and_the_mlp_is_refused() {
        type B = burn::backend::Autodiff<burn::backend::Flex>;
        let device = Default::default();
        let config = BenchConfig {
            backbone: BackboneKind::SmallCnn,
            image_size: 16,
            batch_size: 4,
            classes: 3,
            precision: Precision::F32,
            steps: 2,
            warmup: 1,
        };
        let timing = time_backbone::<B>(&config, &device).unwrap();
        assert_eq!((timing.backbone.as_str(), timing.steps), ("small-cnn", 2));
        assert!(timing.train_images_per_second > 0.0 && timing.infer_images_per_second > 0.0);
        let mlp = BenchConfig {
            backbone: BackboneKind::Mlp,
            ..config.clone()
        };
        let message = time_backbone::<B>(&mlp, &device).unwrap_err().to_string();
        assert!(message.contains("not the MLP"), "{message}");
        let half = BenchConfig {
            precision: Precision::F16,
            ..config
        };
        assert!(time_backbone::<B>(&half, &device).is_err());
    }
}
