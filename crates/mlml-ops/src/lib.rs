//! # mlml-ops
//!
//! What mlml adds to burn's backends, in one place. Each op is a backend extension trait in the
//! way of burn's custom-kernel examples: every method defaults to burn's own ops, so a backend
//! opts in with an empty `impl` (wgpu and CUDA do, behind the `wgpu` and `cuda` features); burn's
//! CPU backend `Flex` (f32) brings its own kernels; `Autodiff<B>` of such a backend is one too,
//! with a backward that asks `B` for the gradients. Each op's folder holds the trait
//! (`mod.rs`), the CPU kernels (`flex.rs`) and the autodiff node (`autodiff.rs`):
//!
//! - [`ConvBackend`] (`conv/`): the training convolution with its own weight and input
//!   gradients, and the inference convolution with its residual and [`Activation`] fused into
//!   the output pass. Its supertraits are the two below, so the networks ask for it alone.
//! - [`BatchNormBackend`] (`norm/`): training BatchNorm as one op with its own backward, alone
//!   or with the residual and activation that follow it.
//! - [`PoolBackend`] (`pool/`): max pooling that keeps its argmax for the backward.
//! - [`SigmoidBackend`] (`sigmoid/`): the sigmoid and log-sigmoid the losses compute with.
//! - [`autocast`] (`precision.rs`): mixed precision, the training convolutions in f16 or bf16
//!   with f32 weights, as PyTorch's autocast (on the backends whose
//!   [`ConvBackend::MIXED_PRECISION`] says so).
//! - [`conv_bn`], [`conv_bn_fused`], [`batch_norm_train`], [`batch_norm_activation_train`]
//!   (`fused.rs`): a convolution and its BatchNorm through the ops above, folded into one
//!   convolution at inference.
//! - [`allocator`]: the binaries' allocator (mimalloc), told to keep freed memory for the next
//!   training step.
//! - `gemm.rs`: f32 products into a caller's buffer; `buffer.rs`: new activations filled piece
//!   by piece in parallel, each piece zeroed by its own thread; with `allocator.rs`'s option
//!   setter and one call in `conv/flex/winograd.rs` (its AVX-512 passes) the workspace's
//!   `unsafe`;
//!   `shape.rs`: the shape arithmetic conv, pool and BatchNorm share.
//!
//! [`TrainBackend`] is the backend a training run asks for: all of it, on an autodiff backend
//! and on its inner backend.
//!
//! Every kernel is tested equal to burn's op in value and gradient.

pub mod allocator;
mod buffer;
mod conv;
mod fused;
mod gemm;
mod norm;
mod pool;
mod precision;
mod shape;
mod sigmoid;

pub use conv::{conv2d_forward, Activation, ConvBackend};
pub use fused::{batch_norm_activation_train, batch_norm_train, conv_bn, conv_bn_fused};
pub use norm::{
    batch_norm_activation_backward_with_tensor_ops, batch_norm_activation_forward_with_tensor_ops,
    batch_norm_backward_with_tensor_ops, batch_norm_forward_with_tensor_ops,
    BatchNormActivationGrads, BatchNormBackend, BatchNormGrads, BatchNormOutput,
};
pub use pool::{max_pool2d_forward, max_pool2d_module, MaxPoolOptions, PoolBackend};
pub use precision::{autocast, autocast_dtype};
pub use sigmoid::{log_sigmoid, sigmoid, SigmoidBackend};

/// An autodiff backend that trains mlml's models with mlml's losses: the models' ops
/// ([`ConvBackend`]) and the losses' sigmoid ([`SigmoidBackend`]) on it and on its inner
/// backend (validation, inference).
pub trait TrainBackend:
    burn::tensor::backend::AutodiffBackend<InnerBackend: ConvBackend + SigmoidBackend>
    + ConvBackend
    + SigmoidBackend
{
}

impl<B> TrainBackend for B where
    B: burn::tensor::backend::AutodiffBackend<InnerBackend: ConvBackend + SigmoidBackend>
        + ConvBackend
        + SigmoidBackend
{
}
