//! Convolution followed by BatchNorm, folded into one convolution at inference.
//!
//! burn 0.21's CPU backend spends about three times longer in an inference BatchNorm (four
//! broadcast passes over the activations) than in the convolution before it (measured on
//! `[8, 64, 56, 56]`: 58 ms against 21 ms for a 3x3 convolution). At inference the BatchNorm is a
//! per-channel affine map, so it folds into the convolution: `conv(x, W) * s + b'` with `s =
//! gamma / sqrt(var + eps)` and `b' = (b - mean) * s + beta`, the scale and bias applied in the
//! convolution's output pass on Flex (other backends fold the scale into the weights, `W * s`:
//! on Flex that was a pass over all of ResNet-50's weights at every batch, 4 % of its
//! inference).
//!
//! In training (autodiff backends) BatchNorm uses batch statistics, through
//! [`batch_norm_train`] rather than burn's `BatchNorm::forward`: burn's broadcasts its `[1, C,
//! 1, 1]` statistics over the batch, a stride pattern that burn-flex's SIMD paths do not take,
//! so every such pass (four forward, more backward) walked the activations element by element
//! (`StridedIter`): 42 % of a small-CNN training step in the profile (docs/benchmarks.md).
//! [`batch_norm_train`] is one op, [`crate::BatchNormBackend::batch_norm_train_op`], with its
//! own backward and a three-pass forward on Flex (`norm/`); [`batch_norm_activation_train`]
//! joins the residual and the activation that follow it to that op, so a training
//! `conv_bn_fused` is two ops, the convolution and this one.

use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::conv::{conv2d_forward, padded_input, Activation, ConvBackend};
use crate::norm::BatchNormBackend;

/// `bn(conv(x))`, folded into one convolution when the backend does not track gradients; in
/// training the convolution is [`conv2d_forward`] (its fast weight gradient) and the BatchNorm
/// [`batch_norm_train`].
pub fn conv_bn<B: ConvBackend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    conv_bn_fused(conv, bn, x, None, Activation::Identity)
}

/// `activation(bn(conv(x)) + residual)`: at inference the BatchNorm folds into the convolution
/// and the residual and activation join its output pass ([`ConvBackend::conv2d_fused`]); in
/// training they are tensor ops after [`conv_bn`]'s. `residual` has the output's shape.
pub fn conv_bn_fused<B: ConvBackend>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    activation: Activation,
) -> Tensor<B, 4> {
    if B::ad_enabled(&x.device()) {
        return batch_norm_activation_train(bn, conv2d_forward(conv, x), residual, activation);
    }
    let scale = bn.gamma.val() / bn.running_var.value().add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale.clone() + shift,
        None => shift,
    };
    let (x, options) = padded_input(conv, x);
    let output = B::conv2d_fused(
        x.into_primitive().tensor(),
        conv.weight.val().into_primitive().tensor(),
        (
            Some(scale.into_primitive().tensor()),
            Some(bias.into_primitive().tensor()),
        ),
        options,
        residual.map(|residual| residual.into_primitive().tensor()),
        activation,
    );
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// Training-mode BatchNorm of `x` `[N, C, H, W]` with `bn`'s parameters: batch statistics
/// (biased variance in the normalisation), and the running statistics moved by `bn.momentum`
/// as PyTorch moves them (the running variance takes the **unbiased** batch variance, `* m / (m
/// - 1)` for `m = N H W`; burn's `BatchNorm` takes the biased one).
///
/// Value and gradients are burn's `BatchNorm::forward` (tested); the normalisation is one op,
/// [`BatchNormBackend::batch_norm_train_op`], with its own backward (fused passes on Flex,
/// burn's tensor ops elsewhere).
pub fn batch_norm_train<B: BatchNormBackend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    batch_norm_activation_train(bn, x, None, Activation::Identity)
}

/// `activation(bn(x) + residual)` in training mode, `bn` as in [`batch_norm_train`]: one op,
/// [`BatchNormBackend::batch_norm_activation_train_op`], whose Flex kernel adds the residual
/// and applies the activation in the BatchNorm's write pass (and its backward gates the
/// gradient in its read pass). `residual` has `x`'s shape (panics otherwise, as burn's ops on
/// mismatched shapes do).
pub fn batch_norm_activation_train<B: BatchNormBackend>(
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
    residual: Option<Tensor<B, 4>>,
    activation: Activation,
) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    if let Some(residual) = &residual {
        // The residual's gradient is the activation's, of the output's shape: no broadcast.
        assert_eq!(
            residual.dims(),
            x.dims(),
            "the residual's shape is not the input's"
        );
    }
    let count = n * h * w;
    let (x, gamma, beta) = (
        x.into_primitive().tensor(),
        bn.gamma.val().into_primitive().tensor(),
        bn.beta.val().into_primitive().tensor(),
    );
    let computed = match (residual, activation) {
        (None, Activation::Identity) => B::batch_norm_train_op(x, gamma, beta, bn.epsilon),
        (residual, activation) => B::batch_norm_activation_train_op(
            x,
            gamma,
            beta,
            bn.epsilon,
            residual.map(|r| r.into_primitive().tensor()),
            activation,
        ),
    };
    let y = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(computed.output));
    let mean = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(computed.mean));
    let var = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(computed.variance));

    let momentum = bn.momentum;
    let unbiased = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    let device = y.device();
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update(running_mean.mul_scalar(1.0 - momentum) + mean.detach().mul_scalar(momentum));
    bn.running_var.update(
        running_var.mul_scalar(1.0 - momentum) + var.detach().mul_scalar(momentum * unbiased),
    );
    y
}
