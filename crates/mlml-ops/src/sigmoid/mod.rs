//! The losses' sigmoid and log-sigmoid, with their own kernels on the CPU backend.
//!
//! Every loss starts from `sigmoid(logits)`. burn-flex 0.21 evaluates it one element at a time
//! through libm's `expf` behind a sign branch that random logits mispredict, and burn's autodiff
//! evaluates it a second time in the backward pass (its sigmoid node keeps the input, not the
//! output): in a `perf` profile of the BCE benchmark at 128 x 80 these took about half of the
//! time (`__expf_fma` 29 %, the scalar loop 21 %). [`SigmoidBackend`] is a backend extension in the
//! way burn's custom-kernel examples extend a backend: on Flex (f32) the sigmoid is a
//! branch-free kernel that the compiler vectorises, and on `Autodiff<B>` its node keeps the
//! output, whose backward is `grad s (1 - s)`. Other backends (wgpu, CUDA) and dtypes compose
//! the same formula from burn's ops (see [`SigmoidBackend::sigmoid_tracked`]). `ln sigmoid` (PyTorch's BCE with logits, in the large-loss schemes, BoostLU and
//! SPLC) is the same story, libm's `expf` and `log1pf` per element in both passes; its kernel
//! here is branch-free as well and its node's backward `grad sigmoid(-x)` uses the sigmoid
//! kernel. Values are tested against f64 and burn's ops, gradients against burn's.

mod autodiff;
mod flex;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// A backend the losses run on: burn's backend plus the losses' sigmoid.
///
/// The method defaults to burn's op, so a backend opts in with an empty `impl`.
pub trait SigmoidBackend: Backend {
    /// The logistic sigmoid `1 / (1 + e^-x)`. The default (wgpu, CUDA) composes burn's ops the
    /// way the CPU kernel computes it, `select(x >= 0, 1, e) / (1 + e)` with `e = e^-|x|`:
    /// burn's own `e^-ln(1 + e^-x)` lands an ulp off just below 1, where the ASL and Hill
    /// scripts' `ln(max(1 - p, eps))` turns that ulp into up to 0.7 of loss (on lavapipe the
    /// BCE vector of those scripts came out 0.15 off in 126).
    fn sigmoid_tracked(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // select(x >= 0, 1, e) is e^min(x, 0): e^0 is exactly 1, and for x < 0 it is e.
        let e = Self::float_exp(Self::float_neg(Self::float_abs(x.clone())));
        let numerator = Self::float_exp(Self::float_clamp_max(x, 0.0.into()));
        Self::float_div(numerator, Self::float_add_scalar(e, 1.0.into()))
    }

    /// `ln sigmoid(x)`, the stable `min(x, 0) - ln(1 + e^-|x|)`.
    fn log_sigmoid_tracked(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::log_sigmoid(x)
    }

    /// The gradient of [`SigmoidBackend::log_sigmoid_tracked`] at `x`: `grad sigmoid(-x)`.
    fn log_sigmoid_tracked_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::log_sigmoid_backward(x, grad)
    }
}

#[cfg(feature = "wgpu")]
impl SigmoidBackend for burn::backend::Wgpu {}

#[cfg(feature = "cuda")]
impl SigmoidBackend for burn::backend::Cuda {}

/// `ln sigmoid(x)` through [`SigmoidBackend::log_sigmoid_tracked`].
pub fn log_sigmoid<B: SigmoidBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::log_sigmoid_tracked(
        x.into_primitive().tensor(),
    )))
}

/// The logistic sigmoid through [`SigmoidBackend::sigmoid_tracked`].
pub fn sigmoid<B: SigmoidBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::sigmoid_tracked(
        x.into_primitive().tensor(),
    )))
}
