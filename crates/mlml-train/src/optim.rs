//! PyTorch's Adam with coupled L2 weight decay on multi-dimensional parameters and a beta1 that
//! can change between steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burn::config::Config;
use burn::optim::SimpleOptimizer;
use burn::record::Record;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Hyperparameters of [`AdamL2`]; the defaults are PyTorch's `Adam`.
#[derive(Config, Debug, PartialEq)]
pub struct AdamL2Config {
    /// First-moment decay (the starting value when a schedule cycles it).
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// Second-moment decay.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Added to the denominator; PyTorch's default 1e-8 (burn's Adam uses 1e-5).
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// Coupled L2 weight decay: `g += weight_decay * p` before the moments.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Only parameters with at least this many dimensions are decayed: 2 leaves biases and
    /// BatchNorm's gamma and beta out, as the ASL recipe's `add_weight_decay` does.
    #[config(default = 2)]
    pub decay_min_dims: usize,
}

impl AdamL2Config {
    /// The optimizer (wrap it with `burn::optim::adaptor::OptimizerAdaptor::from`).
    pub fn init(&self) -> AdamL2 {
        AdamL2 {
            beta_1: Beta1::new(self.beta_1),
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            decay_min_dims: self.decay_min_dims,
        }
    }
}

/// The current beta1 of an [`AdamL2`], shared with the schedule that cycles it: clones of the
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
pub struct AdamL2 {
    beta_1: Beta1,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    decay_min_dims: usize,
}

impl AdamL2 {
    /// The handle a schedule sets beta1 through.
    pub fn beta_1(&self) -> Beta1 {
        self.beta_1.clone()
    }
}

/// Per-tensor state: the step count and both moments.
#[derive(Record, Clone)]
pub struct AdamL2State<B: Backend, const D: usize> {
    /// Steps taken.
    pub step: usize,
    /// First moment.
    pub moment_1: Tensor<B, D>,
    /// Second moment.
    pub moment_2: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for AdamL2 {
    type State<const D: usize> = AdamL2State<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        mut grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if self.weight_decay != 0.0 && D >= self.decay_min_dims {
            grad = grad + tensor.clone().mul_scalar(self.weight_decay);
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
            Some(AdamL2State {
                step,
                moment_1,
                moment_2,
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        AdamL2State {
            step: state.step,
            moment_1: state.moment_1.to_device(device),
            moment_2: state.moment_2.to_device(device),
        }
    }
}
