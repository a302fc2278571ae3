//! Mixed precision (`training.precision`): the training convolutions in f16 or bf16 through
//! [`mlml_ops::autocast`], with the master weights, the optimizer's state, BatchNorm and the
//! loss in f32, as PyTorch's AMP; f16 with PyTorch's dynamic loss scaling ([`LossScale`]).
//! Validation and prediction stay in f32.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, ElementConversion, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::TrainBackend;

/// The float type a training step's convolutions compute in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// The convolutions in f16, with dynamic loss scaling against gradients that underflow.
    F16,
    /// The convolutions in bf16 (f32's range: no loss scaling).
    Bf16,
}

impl Precision {
    /// Whether it is f32 (the default, left out of written configs).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The type [`mlml_ops::autocast`] computes in (`None`: f32).
    pub fn autocast(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(FloatDType::F16),
            Precision::Bf16 => Some(FloatDType::BF16),
        }
    }

    /// The name `training.precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Checks that `B` on `device` can train in this precision.
    ///
    /// # Errors
    /// The CPU backend (its kernels are f32 only), or a device without the type (lavapipe and
    /// wgpu have no bf16), saying what to use instead.
    pub fn check<B: TrainBackend>(self, device: &B::Device) -> Result<()> {
        let Some(dtype) = self.autocast() else {
            return Ok(());
        };
        let name = self.name();
        if !<B as mlml_ops::ConvBackend>::MIXED_PRECISION {
            return Err(TrainError::Config(format!(
                "training.precision = \"{name}\": the CPU backend computes in f32 only; mixed precision runs on --device cuda (f16, bf16) or wgpu (f16 where the adapter has it)"
            )));
        }
        let dtype = DType::from(dtype);
        if !B::supports_dtype(device, dtype) {
            return Err(TrainError::Config(format!(
                "training.precision = \"{name}\": this device has no {name} arithmetic (wgpu has no bf16; f16 needs the adapter's shader-f16); use {}",
                if self == Precision::Bf16 { "\"f16\", or bf16 on --device cuda" } else { "\"f32\"" }
            )));
        }
        Ok(())
    }

    /// The loss scale an f16 run starts with; `None` for the others.
    pub fn initial_loss_scale(self) -> Option<LossScale> {
        (self == Precision::F16).then(LossScale::default)
    }
}

/// PyTorch's `GradScaler` with its defaults: the loss is multiplied by `scale` before the
/// backward pass so that small f16 gradients do not flush to zero, and the gradients divided by
/// it before the optimizer step. A step whose gradients are not all finite is skipped and the
/// scale halved; after `GROWTH_INTERVAL` finite steps in a row it doubles. Part of a run's
/// progress, so that a resumed run scales as the uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The factor the loss is multiplied by.
    pub scale: f32,
    /// Finite steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped for non-finite gradients, over the run.
    pub skipped_steps: u64,
}

impl Default for LossScale {
    fn default() -> Self {
        Self {
            scale: Self::INITIAL,
            good_steps: 0,
            skipped_steps: 0,
        }
    }
}

impl LossScale {
    /// `GradScaler`'s `init_scale`.
    pub const INITIAL: f32 = 65536.0;
    /// `GradScaler`'s `growth_interval`.
    pub const GROWTH_INTERVAL: u32 = 2000;
    /// Below this the gradients are not finite whatever the scale (f16's smallest
    /// subnormal, 2^-24): the run stops instead of skipping every step.
    pub const SMALLEST: f32 = 5.960_464_5e-8;

    /// Takes a step's outcome: whether its gradients were all finite (then the step is taken).
    /// Returns whether to take it.
    pub fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
            self.skipped_steps += 1;
        }
        finite
    }
}

/// `grads` of `module`'s parameters multiplied by `factor` (the loss scale's inverse), and
/// whether every one of them is finite: one sum of absolute values over all of them, read back
/// once.
pub(crate) fn unscaled<B: AutodiffBackend, M: AutodiffModule<B>>(
    grads: GradientsParams,
    module: &M,
    factor: f32,
) -> (GradientsParams, bool) {
    struct Unscale<I: Backend> {
        grads: GradientsParams,
        factor: f32,
        total: Option<Tensor<I, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Unscale<B::InnerBackend> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
                return;
            };
            let grad = grad.mul_scalar(self.factor);
            let size = grad.clone().abs().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + size,
                None => size,
            });
            self.grads.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
    let mut visitor = Unscale::<B::InnerBackend> {
        grads,
        factor,
        total: None,
    };
    module.visit(&mut visitor);
    let finite = visitor
        .total
        .is_none_or(|total| total.into_scalar().elem::<f32>().is_finite());
    (visitor.grads, finite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_the_growth_interval() {
        let mut scale = LossScale::default();
        assert!(!scale.update(false));
        assert_eq!((scale.scale, scale.skipped_steps), (32768.0, 1));
        for _ in 0..LossScale::GROWTH_INTERVAL - 1 {
            assert!(scale.update(true));
        }
        assert_eq!(scale.scale, 32768.0);
        assert!(scale.update(true));
        assert_eq!((scale.scale, scale.good_steps), (65536.0, 0));
        // An overflow resets the count towards growth.
        for _ in 0..10 {
            scale.update(true);
        }
        scale.update(false);
        assert_eq!(
            (scale.scale, scale.good_steps, scale.skipped_steps),
            (32768.0, 0, 2)
        );
    }

    #[test]
    fn precision_reads_as_training_precision_writes_it() {
        #[derive(Deserialize)]
        struct Training {
            precision: Precision,
        }
        let read = |text: &str| toml::from_str::<Training>(text).map(|t| t.precision);
        assert_eq!(read("precision = \"bf16\"").unwrap(), Precision::Bf16);
        assert_eq!(read("precision = \"f16\"").unwrap(), Precision::F16);
        assert!(read("precision = \"fp16\"").is_err());
    }

    #[test]
    fn the_cpu_backend_refuses_mixed_precision_by_name() {
        type B = burn::backend::Autodiff<burn::backend::Flex>;
        let device = Default::default();
        assert!(Precision::F32.check::<B>(&device).is_ok());
        for precision in [Precision::F16, Precision::Bf16] {
            let message = precision.check::<B>(&device).unwrap_err().to_string();
            assert!(
                message.contains(&format!("training.precision = \"{}\"", precision.name()))
                    && message.contains("--device cuda"),
                "{message}"
            );
        }
    }
}
