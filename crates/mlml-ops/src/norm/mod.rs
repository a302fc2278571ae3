//! Training-mode BatchNorm as one op with its own backward.
//!
//! Written with burn's tensor ops, a training BatchNorm is a dozen full passes over the
//! activations forward and backward, several of them burn-flex's single-threaded per-row
//! broadcasts: on the small CNN's four activation shapes 446 ms of forward and backward per
//! step against a step of about 600 ms (`examples/time_batch_norm.rs`, docs/benchmarks.md).
//! [`BatchNormBackend::batch_norm_train_op`] computes the output and the batch statistics;
//! on `Autodiff<B>` its backward asks `B` for [`BatchNormBackend::batch_norm_train_backward`].
//! Both default to burn's tensor ops; on Flex (f32) the forward is two read passes for the
//! statistics (per channel, in parallel) and one write pass, the backward one read pass for
//! the two per-channel sums and one write pass for `dX`:
//!
//! `dbeta = sum dY`, `dgamma = sum dY x_hat`,
//! `dX = gamma / std (dY - dbeta / m - x_hat dgamma / m)` with `m = N H W`.
//!
//! [`BatchNormBackend::batch_norm_activation_train_op`] is the same op with what follows a
//! BatchNorm in a residual network joined to its write pass: `activation(bn(x) + residual)`
//! (ResNet's blocks, EfficientNet's ReLU6). As tensor ops the sum and the activation are two
//! more passes forward and one more backward, each over a new activation-sized tensor; here the
//! forward writes the output once and the backward's read pass writes the activation's gradient
//! `g = dY [y in the activation's open range]`, which is the residual's gradient too, and the
//! write pass reads it in place of `dY`.

mod autodiff;
mod flex;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::conv::Activation;

/// The output of a training BatchNorm and the batch statistics it normalised with.
#[derive(Debug)]
pub struct BatchNormOutput<B: Backend> {
    /// `(x - mean) / sqrt(var + eps) * gamma + beta`, `[N, C, H, W]`.
    pub output: FloatTensor<B>,
    /// Per-channel mean `[C]` (not tracked).
    pub mean: FloatTensor<B>,
    /// Per-channel biased variance `[C]` (not tracked).
    pub variance: FloatTensor<B>,
}

/// The gradients of a training BatchNorm's input, gamma and beta.
#[derive(Debug)]
pub struct BatchNormGrads<B: Backend> {
    /// `dX`, `[N, C, H, W]`.
    pub x: FloatTensor<B>,
    /// `dgamma`, `[C]`.
    pub gamma: FloatTensor<B>,
    /// `dbeta`, `[C]`.
    pub beta: FloatTensor<B>,
}

/// The gradients of [`BatchNormBackend::batch_norm_activation_train_op`].
#[derive(Debug)]
pub struct BatchNormActivationGrads<B: Backend> {
    /// The BatchNorm's input, gamma and beta gradients.
    pub norm: BatchNormGrads<B>,
    /// The gradient of `bn(x) + residual`, the activation's input: the residual's gradient.
    pub sum: FloatTensor<B>,
}

fn tensor<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// A backend whose training BatchNorm may bring its own forward and backward.
///
/// Both methods default to burn's tensor ops, so a backend opts in with an empty `impl`.
pub trait BatchNormBackend: Backend {
    /// BatchNorm of `x` `[N, C, H, W]` with its batch statistics; on an autodiff backend the
    /// output's backward is [`Self::batch_norm_train_backward`] of the inner backend.
    fn batch_norm_train_op(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormOutput<Self> {
        batch_norm_forward_with_tensor_ops::<Self>(x, gamma, beta, epsilon)
    }

    /// The gradients of [`Self::batch_norm_train_op`] given its output gradient and the
    /// statistics its forward returned.
    fn batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> BatchNormGrads<Self> {
        batch_norm_backward_with_tensor_ops::<Self>(x, gamma, mean, variance, epsilon, output_grad)
    }

    /// `activation(bn(x) + residual)` with `x`'s batch statistics (`residual`, if any, of
    /// `x`'s shape); on an autodiff backend the output's backward is
    /// [`Self::batch_norm_activation_train_backward`] of the inner backend.
    fn batch_norm_activation_train_op(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        residual: Option<FloatTensor<Self>>,
        activation: Activation,
    ) -> BatchNormOutput<Self> {
        batch_norm_activation_forward_with_tensor_ops::<Self>(
            x, gamma, beta, epsilon, residual, activation,
        )
    }

    /// The gradients of [`Self::batch_norm_activation_train_op`] given its `output`, its
    /// output gradient and the statistics its forward returned. The activation's gradient is
    /// read off its output: ReLU passes it where `y > 0`, ReLU6 where `0 < y < 6` (PyTorch's
    /// `hardtanh_backward`; burn's `clamp_max` also passes it at exactly 6).
    #[allow(clippy::too_many_arguments)] // The forward's inputs, state and output gradient.
    fn batch_norm_activation_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output: FloatTensor<Self>,
        activation: Activation,
        output_grad: FloatTensor<Self>,
    ) -> BatchNormActivationGrads<Self> {
        batch_norm_activation_backward_with_tensor_ops::<Self>(
            x,
            gamma,
            mean,
            variance,
            epsilon,
            output,
            activation,
            output_grad,
        )
    }
}

#[cfg(feature = "wgpu")]
impl BatchNormBackend for burn::backend::Wgpu {}

#[cfg(feature = "cuda")]
impl BatchNormBackend for burn::backend::Cuda {}

/// [`BatchNormBackend::batch_norm_train_op`] in burn's tensor ops: the default, and Flex's path
/// for dtypes other than f32.
pub fn batch_norm_forward_with_tensor_ops<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> BatchNormOutput<B> {
    let x = tensor::<B, 4>(x);
    let [n, c, h, w] = x.dims();
    let x = x.reshape([n, c, h * w]);
    let per_sample = |t: Tensor<B, 3>| t.repeat_dim(0, n);
    let mean = x.clone().mean_dim(2).mean_dim(0); // [1, C, 1]
    let centered = x - per_sample(mean.clone());
    let variance = centered.clone().square().mean_dim(2).mean_dim(0);
    let inv_std = variance.clone().add_scalar(epsilon).sqrt().recip();
    let scale = inv_std * tensor::<B, 1>(gamma).reshape([1, c, 1]);
    let shift = tensor::<B, 1>(beta).reshape([1, c, 1]);
    let output = centered * per_sample(scale) + per_sample(shift);
    BatchNormOutput {
        output: primitive(output.reshape([n, c, h, w])),
        mean: primitive(mean.reshape([c])),
        variance: primitive(variance.reshape([c])),
    }
}

/// [`BatchNormBackend::batch_norm_train_backward`] in burn's tensor ops.
pub fn batch_norm_backward_with_tensor_ops<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> BatchNormGrads<B> {
    let x = tensor::<B, 4>(x);
    let [n, c, h, w] = x.dims();
    let count = (n * h * w) as f64;
    let per_sample = |t: Tensor<B, 1>| t.reshape([1, c, 1]).repeat_dim(0, n);
    let dy = tensor::<B, 4>(output_grad).reshape([n, c, h * w]);
    let inv_std = tensor::<B, 1>(variance).add_scalar(epsilon).sqrt().recip();
    let x_hat = (x.reshape([n, c, h * w]) - per_sample(tensor(mean))) * per_sample(inv_std.clone());
    let channel_sum = |t: Tensor<B, 3>| t.sum_dim(2).sum_dim(0).reshape([c]);
    let d_beta = channel_sum(dy.clone());
    let d_gamma = channel_sum(dy.clone() * x_hat.clone());
    let scale = inv_std * tensor::<B, 1>(gamma);
    let dx = (dy
        - per_sample(d_beta.clone().div_scalar(count))
        - x_hat * per_sample(d_gamma.clone().div_scalar(count)))
        * per_sample(scale);
    BatchNormGrads {
        x: primitive(dx.reshape([n, c, h, w])),
        gamma: primitive(d_gamma),
        beta: primitive(d_beta),
    }
}

/// [`BatchNormBackend::batch_norm_activation_train_op`] as `B`'s BatchNorm followed by burn's
/// tensor ops: the default, and Flex's path for dtypes other than f32.
pub fn batch_norm_activation_forward_with_tensor_ops<B: BatchNormBackend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    residual: Option<FloatTensor<B>>,
    activation: Activation,
) -> BatchNormOutput<B> {
    let normalised = B::batch_norm_train_op(x, gamma, beta, epsilon);
    let sum = tensor::<B, 4>(normalised.output);
    let sum = match residual {
        Some(residual) => sum + tensor::<B, 4>(residual),
        None => sum,
    };
    BatchNormOutput {
        output: primitive(activation.apply(sum)),
        ..normalised
    }
}

/// [`BatchNormBackend::batch_norm_activation_train_backward`] as burn's tensor ops for the
/// activation's gradient, then `B`'s BatchNorm backward.
#[allow(clippy::too_many_arguments)] // The forward's inputs, state and output gradient.
pub fn batch_norm_activation_backward_with_tensor_ops<B: BatchNormBackend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output: FloatTensor<B>,
    activation: Activation,
    output_grad: FloatTensor<B>,
) -> BatchNormActivationGrads<B> {
    let grad = tensor::<B, 4>(output_grad);
    let output = tensor::<B, 4>(output);
    let sum = match activation {
        Activation::Identity => grad,
        Activation::Relu => grad.mask_fill(output.lower_equal_elem(0.0), 0.0),
        Activation::Relu6 => {
            let passes = output
                .clone()
                .greater_elem(0.0)
                .bool_and(output.lower_elem(6.0));
            grad.mask_fill(passes.bool_not(), 0.0)
        }
    };
    let sum = primitive(sum);
    BatchNormActivationGrads {
        norm: B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, sum.clone()),
        sum,
    }
}
