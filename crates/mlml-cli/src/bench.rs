//! `mlml bench`: an image backbone's training step and inference timed on a device
//! (`mlml_train::bench`), as a line or as JSON with the device and adapter.

use anyhow::{anyhow, Result};
use mlml_train::bench::{time_backbone, BenchConfig};
use mlml_train::TrainBackend;
use serde::de::DeserializeOwned;

use crate::backend::Placement;
use crate::stdout::print;

/// `mlml bench`'s arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// small-cnn, resnet18, resnet34, resnet50, resnet101 or efficientnet-lite0.
    #[arg(long, default_value = "resnet50")]
    backbone: String,
    /// Square images of this side.
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Classes of the head.
    #[arg(long, default_value_t = 80)]
    classes: usize,
    /// The training step's precision: f32, f16 or bf16 (training.precision).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Timed steps (and inference batches).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first (kernel compilation, autotuning).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A name as a config spells it (`resnet50`, `bf16`), read by the type's own serde names.
fn named<T: DeserializeOwned>(value: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).ok()
}

impl BenchArgs {
    /// What to time.
    ///
    /// # Errors
    /// A backbone or precision that does not exist, naming the ones that do.
    pub fn config(&self) -> Result<BenchConfig> {
        let backbone = named(&self.backbone).ok_or_else(|| {
            anyhow!(
                "--backbone {}: expected small-cnn, resnet18, resnet34, resnet50, resnet101 or efficientnet-lite0",
                self.backbone
            )
        })?;
        let precision = named(&self.precision)
            .ok_or_else(|| anyhow!("--precision {}: expected f32, f16 or bf16", self.precision))?;
        Ok(BenchConfig {
            backbone,
            image_size: self.image_size,
            batch_size: self.batch_size,
            classes: self.classes,
            precision,
            steps: self.steps,
            warmup: self.warmup,
        })
    }
}

pub fn bench_cmd<B: TrainBackend>(
    config: &BenchConfig,
    json: bool,
    device: &B::Device,
    placement: &Placement,
) -> Result<()> {
    let timing = time_backbone::<B>(config, device)?;
    if json {
        let mut row = serde_json::to_value(&timing)?;
        row["backend"] = placement.backend.into();
        row["device"] = placement.device.clone().into();
        row["adapter"] = placement.adapter.clone().into();
        return print(&serde_json::to_string_pretty(&row)?);
    }
    print(&format!(
        "{} {} px, batch {}, {} on {} ({}): training {:.1} images/s ({:.3} s a step), inference {:.1} images/s ({:.3} s a batch)",
        timing.backbone,
        timing.image_size,
        timing.batch_size,
        timing.precision,
        placement.device,
        placement.adapter,
        timing.train_images_per_second,
        timing.train_step_seconds,
        timing.infer_images_per_second,
        timing.infer_batch_seconds
    ))
}
