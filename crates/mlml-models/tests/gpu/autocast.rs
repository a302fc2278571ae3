//! Mixed precision (`autocast`): the training convolution computes in f16 on a backend that
//! can (wgpu: lavapipe in CI) and hands f32 values and f32 gradients on; on Flex, whose kernels
//! are f32 only, autocast changes nothing.
//!
//! A module of mlml-models' `gpu` test binary, which builds the GPU backend anyway.

use burn::backend::Autodiff;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use mlml_ops::{autocast, conv2d_forward, ConvBackend};

/// Fixed pseudo-random values in [-1, 1).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    device: &B::Device,
) -> Tensor<B, D> {
    let count = shape.iter().product();
    Tensor::from_data(TensorData::new(values(count, seed), shape), device)
}

/// What a training step sees of one convolution: its output and the gradients of its input,
/// weight and bias under `loss = sum(output * r)`, with their dtypes.
struct Pass {
    output: (DType, Vec<f32>),
    grads: Vec<(DType, Vec<f32>)>,
}

fn pass<B: ConvBackend + burn::tensor::backend::AutodiffBackend>(
    dtype: Option<FloatDType>,
    device: &B::Device,
) -> Pass {
    let mut conv: Conv2d<B> = Conv2dConfig::new([8, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device);
    conv.weight = Param::from_tensor(tensor([16, 8, 3, 3], 1, device).mul_scalar(0.3));
    conv.bias = Some(Param::from_tensor(tensor([16], 2, device)));
    let x = tensor::<B, 4>([2, 8, 10, 10], 3, device).require_grad();
    let output = autocast(dtype, || conv2d_forward(&conv, x.clone()));
    let r = tensor::<B, 4>([2, 16, 10, 10], 4, device);
    let grads = (output.clone() * r).sum().backward();
    let read = |t: Tensor<B::InnerBackend, 1>| {
        (
            t.dtype(),
            t.into_data().convert::<f32>().to_vec::<f32>().unwrap(),
        )
    };
    Pass {
        output: (
            output.dtype(),
            output.into_data().convert::<f32>().to_vec().unwrap(),
        ),
        grads: vec![
            read(x.grad(&grads).unwrap().flatten(0, 3)),
            read(conv.weight.grad(&grads).unwrap().flatten(0, 3)),
            read(conv.bias.as_ref().unwrap().grad(&grads).unwrap()),
        ],
    }
}

#[cfg(feature = "wgpu")]
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(feature = "wgpu")]
fn largest(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

#[test]
fn autocast_leaves_flex_in_f32() {
    type B = Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let plain = pass::<B>(None, &device);
    let cast = pass::<B>(Some(FloatDType::F16), &device);
    const { assert!(!<B as ConvBackend>::MIXED_PRECISION) };
    assert_eq!(cast.output, plain.output);
    assert_eq!(cast.grads, plain.grads);
}

#[cfg(feature = "wgpu")]
#[test]
fn f16_convolution_on_wgpu_hands_f32_values_and_gradients_close_to_f32() {
    let _device = crate::one_at_a_time();
    type B = Autodiff<burn::backend::Wgpu>;
    let device = Default::default();
    let plain = pass::<B>(None, &device);
    let half = pass::<B>(Some(FloatDType::F16), &device);
    assert_eq!(plain.output.0, DType::F32);
    assert_eq!(
        half.output.0,
        DType::F32,
        "the convolution's output reaches the next layer in f32"
    );
    // f16 keeps 11 significant bits (a relative step of 4.9e-4 on each input and product);
    // the sums of 72 products (output) and of 200-1,600 (gradients) stay within 1 % of the
    // largest value. The difference must not be zero: the convolution really ran in f16.
    let check = |what: &str, got: &[f32], expected: &[f32]| {
        let difference = largest_difference(got, expected);
        assert!(
            difference <= 1e-2 * largest(expected),
            "{what}: f16 differs by {difference} from f32 (largest {})",
            largest(expected)
        );
        assert!(difference > 0.0, "{what}: f16 gave the f32 values exactly");
    };
    check("output", &half.output.1, &plain.output.1);
    for ((what, (dtype, got)), (_, expected)) in
        ["input gradient", "weight gradient", "bias gradient"]
            .iter()
            .zip(&half.grads)
            .zip(&plain.grads)
    {
        assert_eq!(
            *dtype,
            DType::F32,
            "{what} reaches the f32 parameters in f32"
        );
        if *what == "bias gradient" {
            // The bias gradient is the sum of `r` over each channel: computed from the f32
            // `r` through the output's cast, it is exact up to f16's rounding of the sum.
            assert!(
                largest_difference(got, expected) <= 1e-2 * largest(expected),
                "{what}"
            );
        } else {
            check(what, got, expected);
        }
    }
}
