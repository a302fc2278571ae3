//! Conv + BatchNorm folded into one convolution for inference gives the two layers' output.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData, Tolerance};
use mlml_ops::{conv_bn, conv_bn_fused, Activation};

type B = Flex;

#[test]
fn folded_conv_batchnorm_equals_the_two_layers() {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    /// Seeded values in [lo, hi) from a fixed xorshift stream, independent of burn's RNG
    /// (which other tests of this binary share and reseed concurrently).
    fn seeded<const D: usize>(shape: [usize; D], seed: u64, lo: f32, hi: f32) -> Tensor<B, D> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }
    let device = Default::default();
    let mut conv = Conv2dConfig::new([4, 6], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Same)
        .init::<B>(&device);
    conv.weight = burn::module::Param::from_tensor(seeded([6, 4, 3, 3], 1, -0.5, 0.5));
    conv.bias = Some(burn::module::Param::from_tensor(seeded([6], 2, -0.5, 0.5)));
    let mut bn = BatchNormConfig::new(6)
        .with_epsilon(1e-3)
        .init::<B>(&device);
    bn.gamma = burn::module::Param::from_tensor(seeded([6], 3, 0.5, 1.5));
    bn.beta = burn::module::Param::from_tensor(seeded([6], 4, -0.5, 0.5));
    bn.running_mean = burn::module::RunningState::new(seeded([6], 5, -0.5, 0.5));
    bn.running_var = burn::module::RunningState::new(seeded([6], 6, 0.05, 2.0));
    let x = seeded([2, 4, 9, 10], 7, -2.0, 2.0);
    let close = |got: Tensor<B, 4>, expected: Tensor<B, 4>| {
        got.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4))
    };
    let layered = bn.forward(conv.forward(x.clone()));
    close(conv_bn(&conv, &bn, x.clone()), layered.clone());
    // With a residual and an activation in the convolution's output pass.
    let residual = seeded(layered.dims(), 8, -3.0, 3.0);
    for activation in [Activation::Relu, Activation::Relu6] {
        let fused = conv_bn_fused(&conv, &bn, x.clone(), Some(residual.clone()), activation);
        let layered = layered.clone() + residual.clone();
        let layered = match activation {
            Activation::Relu6 => layered.clamp(0.0, 6.0),
            _ => layered.clamp_min(0.0),
        };
        close(fused, layered);
    }
}
