//! Max pooling with a parallel CPU path, forward and backward.
//!
//! burn-flex 0.21 computes every 2-D max pooling as a 3-D one with indices, one output at a
//! time through bounds-checked `isize` arithmetic, even at inference where the indices are
//! thrown away, and its backward scatter runs on one thread: together 13-17 % of a small-CNN
//! training step in the profile (docs/benchmarks.md). [`PoolBackend`] is a backend extension
//! in the way of [`crate::ConvBackend`]: [`PoolBackend::max_pool2d_tracked`] is `max_pool2d`
//! on a plain backend and, on `Autodiff<B>`, a node whose forward keeps `B`'s argmax indices
//! ([`PoolBackend::max_pool2d_argmax`]) and whose backward scatters through them
//! ([`PoolBackend::max_pool2d_argmax_backward`]). On Flex (f32) all three walk each
//! `(sample, channel)` plane in parallel, kernel tap by kernel tap over the ranges of outputs
//! where the tap is inside the image, with a direct path for the 2x2, stride-2 pooling of the
//! small CNN. The indices are burn's (`i64`, the input position inside its plane), the first
//! maximum in kernel order is the one taken, as in burn, so values and gradients are burn's
//! (tested); wgpu, CUDA and other dtypes keep burn's op.

mod autodiff;
mod flex;

use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Tensor, TensorPrimitive};

/// The settings of a 2-D max pooling, as burn's `max_pool2d` takes them (symmetric padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolOptions {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit `-inf` border on each side.
    pub padding: [usize; 2],
    /// Spacing between the window's taps.
    pub dilation: [usize; 2],
    /// Whether a partial window at the end still makes an output.
    pub ceil_mode: bool,
}

impl MaxPoolOptions {
    /// A `kernel x kernel` window moved by `stride`, no padding or dilation.
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self {
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        }
    }
}

/// A backend whose max pooling may bring its own forward and backward.
///
/// Every method defaults to burn's ops, so a backend opts in with an empty `impl`.
pub trait PoolBackend: Backend {
    /// `max_pool2d(x)`; on an autodiff backend its backward scatters through the inner
    /// backend's [`Self::max_pool2d_argmax`] indices.
    fn max_pool2d_tracked(x: FloatTensor<Self>, options: MaxPoolOptions) -> FloatTensor<Self> {
        let o = options;
        Self::max_pool2d(x, o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode)
    }

    /// The pooled values and, for each, the position of its maximum inside its input plane.
    fn max_pool2d_argmax(
        x: FloatTensor<Self>,
        options: MaxPoolOptions,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        burns_argmax::<Self>(x, options)
    }

    /// The input gradient of the pooling of `x` given its output gradient and argmax indices.
    fn max_pool2d_argmax_backward(
        x: FloatTensor<Self>,
        options: MaxPoolOptions,
        output_grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        burns_argmax_backward::<Self>(x, options, output_grad, indices)
    }
}

#[cfg(feature = "wgpu")]
impl PoolBackend for burn::backend::Wgpu {}

#[cfg(feature = "cuda")]
impl PoolBackend for burn::backend::Cuda {}

/// burn's `max_pool2d_with_indices`: the default, and Flex's path for other dtypes.
fn burns_argmax<B: Backend>(
    x: FloatTensor<B>,
    o: MaxPoolOptions,
) -> (FloatTensor<B>, IntTensor<B>) {
    let pooled =
        B::max_pool2d_with_indices(x, o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode);
    (pooled.output, pooled.indices)
}

/// burn's `max_pool2d_with_indices_backward`.
fn burns_argmax_backward<B: Backend>(
    x: FloatTensor<B>,
    o: MaxPoolOptions,
    output_grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    let (k, s, p, d) = (o.kernel, o.stride, o.padding, o.dilation);
    B::max_pool2d_with_indices_backward(x, k, s, p, d, o.ceil_mode, output_grad, indices).x_grad
}

/// `max_pool2d(x, options)` through [`PoolBackend::max_pool2d_tracked`].
pub fn max_pool2d_forward<B: PoolBackend>(
    x: Tensor<B, 4>,
    options: MaxPoolOptions,
) -> Tensor<B, 4> {
    let output = B::max_pool2d_tracked(x.into_primitive().tensor(), options);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// `pool.forward(x)` through [`PoolBackend::max_pool2d_tracked`] where its padding is
/// symmetric (burn's module pads `Same` and asymmetric borders first; those keep its path).
pub fn max_pool2d_module<B: PoolBackend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return pool.forward(x),
    };
    let options = MaxPoolOptions {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding,
        dilation: pool.dilation,
        ceil_mode: pool.ceil_mode,
    };
    max_pool2d_forward(x, options)
}
