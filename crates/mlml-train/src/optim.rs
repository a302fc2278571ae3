//! PyTorch's Adam (coupled L2 weight decay) and AdamW (decoupled weight decay), decaying only
//! multi-dimensional parameters, with a beta1 that can change between steps.
//!
//! burn's own `Adam` and `AdamW` default to epsilon 1e-5, decay every parameter (BatchNorm's
//! gamma and beta and the biases too) and fix beta1 at construction, so a one-cycle schedule
//! could not cycle it; hence this one. SGD is burn's `Sgd`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burn::config::Config;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{SgdConfig, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Hyperparameters of [`TorchAdam`]; the defaults are PyTorch's `Adam`, and
/// `decoupled_weight_decay` makes it PyTorch's `AdamW`.
#[derive(Config, Debug, PartialEq)]
pub struct TorchAdamConfig {
    /// First-moment decay (the starting value when a schedule cycles it).
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// Second-moment decay.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Added to the denominator; PyTorch's default 1e-8 (burn's Adam uses 1e-5).
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// Weight decay: coupled L2 (`g += weight_decay * p` before the moments, `Adam`) or, with
    /// `decoupled_weight_decay`, `p *= 1 - lr * weight_decay` before the update (`AdamW`).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// AdamW's decoupled decay instead of Adam's coupled L2.
    #[config(default = false)]
    pub decoupled_weight_decay: bool,
    /// Only parameters with at least this many dimensions are decayed: 2 leaves biases and
    /// BatchNorm's gamma and beta out, as the ASL recipe's `add_weight_decay` does.
    #[config(default = 2)]
    pub decay_min_dims: usize,
}

impl TorchAdamConfig {
    /// The optimizer (wrap it with `burn::optim::adaptor::OptimizerAdaptor::from`).
    pub fn init(&self) -> TorchAdam {
        TorchAdam {
            beta_1: Beta1::new(self.beta_1),
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: self.decoupled_weight_decay,
            decay_min_dims: self.decay_min_dims,
        }
    }
}

/// The current beta1 of an [`TorchAdam`], shared with the schedule that cycles it: clones of the
/// optimizer and of this handle see the same value.
#[derive(Clone, Debug)]
pub struct Beta1(Arc<AtomicU64>);

impl Beta1 {
    fn new(value: f64) -> Self {
        Self(Arc::new(AtomicU64::new(value.to_bits())))
    }

    /// The value the next step uses.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Sets the value of the next step.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// See the crate docs.
#[derive(Clone, Debug)]
pub struct TorchAdam {
    beta_1: Beta1,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    decoupled_weight_decay: bool,
    decay_min_dims: usize,
}

impl TorchAdam {
    /// The handle a schedule sets beta1 through.
    pub fn beta_1(&self) -> Beta1 {
        self.beta_1.clone()
    }
}

/// Per-tensor state: the step count and both moments.
#[derive(Record, Clone)]
pub struct TorchAdamState<B: Backend, const D: usize> {
    /// Steps taken.
    pub step: usize,
    /// First moment.
    pub moment_1: Tensor<B, D>,
    /// Second moment.
    pub moment_2: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for TorchAdam {
    type State<const D: usize> = TorchAdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        mut tensor: Tensor<B, D>,
        mut grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if self.weight_decay != 0.0 && D >= self.decay_min_dims {
            if self.decoupled_weight_decay {
                tensor = tensor.mul_scalar(1.0 - lr * self.weight_decay);
            } else {
                grad = grad + tensor.clone().mul_scalar(self.weight_decay);
            }
        }
        let beta_1 = self.beta_1.get();
        let (step, moment_1, moment_2) = match state {
            Some(s) => (
                s.step + 1,
                s.moment_1.mul_scalar(beta_1) + grad.clone().mul_scalar(1.0 - beta_1),
                s.moment_2.mul_scalar(self.beta_2)
                    + grad.clone().mul(grad).mul_scalar(1.0 - self.beta_2),
            ),
            None => (
                1,
                grad.clone().mul_scalar(1.0 - beta_1),
                grad.clone().mul(grad).mul_scalar(1.0 - self.beta_2),
            ),
        };
        // PyTorch: step_size = lr / (1 - beta1^t); denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
        // with the beta1 of this step (a cycled beta1 changes the correction too).
        let correction_1 = 1.0 - beta_1.powi(step as i32);
        let correction_2 = (1.0 - self.beta_2.powi(step as i32)).sqrt();
        let denominator = moment_2
            .clone()
            .sqrt()
            .div_scalar(correction_2)
            .add_scalar(self.epsilon);
        let update = moment_1
            .clone()
            .div(denominator)
            .mul_scalar(lr / correction_1);
        (
            tensor - update,
            Some(TorchAdamState {
                step,
                moment_1,
                moment_2,
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        TorchAdamState {
            step: state.step,
            moment_1: state.moment_1.to_device(device),
            moment_2: state.moment_2.to_device(device),
        }
    }
}

/// burn's `Sgd` set up as PyTorch's `SGD(momentum, nesterov, weight_decay)` with one parameter
/// group: no dampening (burn's default is 0.1), L2 decay on every parameter, no momentum buffer
/// when `momentum` is 0.
pub fn torch_sgd(momentum: f64, nesterov: bool, weight_decay: f64) -> SgdConfig {
    SgdConfig::new()
        .with_momentum((momentum > 0.0).then(|| {
            MomentumConfig::new()
                .with_momentum(momentum)
                .with_dampening(0.0)
                .with_nesterov(nesterov)
        }))
        // burn keeps the decay in f32 (1e-3 moves by 5e-8 relative).
        .with_weight_decay(
            (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
        )
}
