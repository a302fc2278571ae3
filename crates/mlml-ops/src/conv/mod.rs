//! Convolutions with fast forward, gradients and inference epilogue on the CPU backend.
//!
//! burn 0.21 computes a convolution's weight gradient (`conv2d_weight_backward`) for every
//! backend as a convolution of the batch-swapped input with the output gradient as its kernel.
//! On burn-flex that kernel is as large as the feature map and the batch-swap copies walk the
//! tensors element by element, so the weight gradient of a 3x3 layer costs several times its
//! forward pass (`examples/time_conv_parts.rs`, docs/benchmarks.md).
//!
//! [`ConvBackend`] is a backend extension in the way burn's custom-kernel examples extend a
//! backend: [`ConvBackend::conv2d_tracked`] is burn's `conv2d` on a plain backend and, on
//! `Autodiff<B>`, a convolution whose backward asks `B` for its gradients through
//! [`ConvBackend::conv2d_weight_grad`] and [`ConvBackend::conv2d_input_grad`]. On Flex (f32) the
//! weight gradient is one im2col of the input and one GEMM per chunk of samples accumulated in
//! place, `dW += dY [O, n L] x cols^T [n L, C K]` (per group, the groups in parallel); the input
//! gradient `W^T dY` and a parallel col2im, or a direct scatter through the taps of a depthwise
//! layer (EfficientNet's), instead of burn-flex's transposed convolution; the forward im2col and
//! one GEMM per chunk of samples. A 3x3 stride-1 layer with at least 32 channels in and out
//! takes Winograd's F(4x4, 3x3) for its forward and both gradients instead (F(2x2, 3x3) for
//! a weight gradient over few tiles; `flex/winograd.rs`). Every GEMM writes into buffers of ours ([`matmul_into`]), the scratch
//! ones kept by the calling thread between calls.
//! [`ConvBackend::conv2d_fused`] adds a residual and an [`Activation`] in the forward's output
//! pass for the folded inference layers. Every other case, backend (wgpu, CUDA) and dtype keeps
//! burn's own ops, and so does the bias gradient. Values and gradients are tested equal to burn's.

mod autodiff;
mod flex;

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor, PadMode};
use burn::tensor::{FloatDType, Tensor, TensorPrimitive};

use crate::precision::autocast_dtype;

use crate::norm::BatchNormBackend;
use crate::pool::PoolBackend;

/// The activation that follows a convolution, applied in the convolution's output pass by
/// [`ConvBackend::conv2d_fused`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// None: the convolution's output as it is.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet's and EfficientNet-Lite's).
    Relu6,
}

impl Activation {
    /// The activation as burn's tensor ops.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            // Measured on burn 0.21's CPU backend: relu then clamp_max takes half the time of
            // clamp(0, 6).
            Activation::Relu6 => relu(x).clamp_max(6.0),
        }
    }

    /// The activation of one value, as [`Self::apply`] computes it.
    pub(crate) fn of(self, value: f32) -> f32 {
        match self {
            Activation::Identity => value,
            Activation::Relu => value.max(0.0),
            Activation::Relu6 => value.clamp(0.0, 6.0),
        }
    }
}

/// [`ConvBackend::conv2d_fused`] as burn's ops: `conv2d`, then add, then the activation.
pub(crate) fn unfused_conv2d<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
    residual: Option<FloatTensor<B>>,
    activation: Activation,
) -> FloatTensor<B> {
    let output =
        Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(B::conv2d(x, weight, bias, options)));
    let output = match residual {
        Some(residual) => output + Tensor::from_primitive(TensorPrimitive::Float(residual)),
        None => output,
    };
    activation.apply(output).into_primitive().tensor()
}

/// `weight [O, C, K, K]` times `scale [O]`, output channel by output channel (as a matrix with
/// one row per output channel, so that the per-row scale is one of burn-flex's SIMD
/// broadcasts); the weight as it is without a scale.
pub(crate) fn scaled_weight<B: Backend>(
    weight: FloatTensor<B>,
    scale: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let Some(scale) = scale else {
        return weight;
    };
    let weight = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(weight));
    let scale = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(scale));
    let dims = weight.dims();
    let out = dims[0];
    (weight.reshape([out, dims[1] * dims[2] * dims[3]]) * scale.reshape([out, 1]))
        .reshape(dims)
        .into_primitive()
        .tensor()
}

/// A backend whose training convolution may bring its own weight gradient.
///
/// Both methods default to burn's ops, so a backend opts in with an empty `impl`. Its
/// supertraits [`PoolBackend`] and [`BatchNormBackend`] bring the max pooling and the training
/// BatchNorm the same networks train with.
pub trait ConvBackend: PoolBackend + BatchNormBackend {
    /// Whether its training convolutions compute in f16 or bf16 inside [`crate::autocast`]
    /// (the GPU backends, where the device has the type); Flex's kernels are f32 only.
    const MIXED_PRECISION: bool = false;

    /// `conv2d(x, weight, bias)` with symmetric padding; on an autodiff backend its backward
    /// takes the weight gradient from the inner backend's [`Self::conv2d_weight_grad`].
    fn conv2d_tracked(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// `activation(conv2d(x, weight) * scale + bias + residual)` where nothing tracks gradients
    /// (inference layers with their BatchNorm folded in), `scale` and `bias` `[O]`, one value
    /// per output channel (no scale: 1): burn's `conv2d` with the scale folded into the weight,
    /// add and activation unless the backend fuses them into the convolution's output pass.
    /// `residual` has the output's shape.
    fn conv2d_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        (scale, bias): (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>),
        options: ConvOptions<2>,
        residual: Option<FloatTensor<Self>>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        let weight = scaled_weight::<Self>(weight, scale);
        unfused_conv2d::<Self>(x, weight, bias, options, residual, activation)
    }

    /// The gradient of `conv2d(x, weight)`'s input given the output gradient: burn's
    /// `conv2d_x_backward` (a transposed convolution) unless the backend has a faster one.
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of `conv2d(x, weight)`'s weight given the output gradient: burn's
    /// `conv2d_weight_backward` unless the backend has a faster one.
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

#[cfg(feature = "wgpu")]
impl ConvBackend for burn::backend::Wgpu {
    const MIXED_PRECISION: bool = true;
}

#[cfg(feature = "cuda")]
impl ConvBackend for burn::backend::Cuda {
    const MIXED_PRECISION: bool = true;
}

/// `conv.forward(x)` through [`ConvBackend::conv2d_tracked`]: the same padding (an asymmetric
/// `Same` padding pads the input first, as burn's `Conv2d` does), the same value and gradients.
///
/// Inside [`crate::autocast`] on a backend with [`ConvBackend::MIXED_PRECISION`], it computes in
/// the autocast type and returns f32: the casts are tracked, so the gradients reach the f32
/// weights as f32.
pub fn conv2d_forward<B: ConvBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let (x, options) = padded_input(conv, x);
    let low = autocast_dtype().filter(|_| B::MIXED_PRECISION);
    fn cast<B: Backend, const D: usize>(
        low: Option<FloatDType>,
        tensor: Tensor<B, D>,
    ) -> FloatTensor<B> {
        match low {
            Some(dtype) => tensor.cast(dtype),
            None => tensor,
        }
        .into_primitive()
        .tensor()
    }
    let output = B::conv2d_tracked(
        cast(low, x),
        cast(low, conv.weight.val()),
        conv.bias.as_ref().map(|bias| cast(low, bias.val())),
        options,
    );
    let output = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(output));
    match low {
        Some(_) => output.cast(FloatDType::F32),
        None => output,
    }
}

/// The input and options of `conv`'s convolution with symmetric padding: an asymmetric `Same`
/// padding pads the input first, as burn's `Conv2d` does.
pub(crate) fn padded_input<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> (Tensor<B, 4>, ConvOptions<2>) {
    let [_, _, height, width] = x.dims();
    let ((top, bottom), (left, right)) = match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same_padding(conv.kernel_size[0], conv.stride[0], height),
            same_padding(conv.kernel_size[1], conv.stride[1], width),
        ),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    };
    let (x, padding) = if top == bottom && left == right {
        (x, [top, left])
    } else {
        (
            x.pad((left, right, top, bottom), PadMode::Constant(0.0)),
            [0, 0],
        )
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    (x, options)
}

/// TensorFlow's "SAME" padding `(start, end)` of one axis, as burn's `PaddingConfig2d::Same`
/// computes it.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}
