//! `conv2d_forward` (the `ConvBackend` op with its own backward) against burn's `Conv2d::forward`
//! on `Autodiff<Flex>`: the output and the gradients of the input, the weight and the bias, over
//! random geometries (batch, channels, non-square kernels, strides, padding including
//! asymmetric "SAME", dilation, groups up to depthwise) and random values.
//!
//! Tolerance: 1e-5 relative plus a floor of 1e-5 of the tensor's largest magnitude (the two
//! weight gradients sum the same products in a different order).

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Tensor, TensorData};
use mlml_ops::conv2d_forward;
use mlml_testing::Tolerance;
use proptest::prelude::*;

type B = Autodiff<Flex>;

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// 1e-5 relative, with a floor of 1e-5 of the largest expected magnitude.
fn prop_close(got: &[f32], expected: &[f32], what: &str) -> Result<(), TestCaseError> {
    Tolerance::relative(1e-5)
        .scaled_to(expected, 1e-5)
        .check_all(what, got, expected)
        .map_err(TestCaseError::fail)
}

#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    groups: usize,
    in_per_group: usize,
    out_per_group: usize,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: PaddingConfig2d,
    bias: bool,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    let padding = prop_oneof![
        Just(PaddingConfig2d::Valid),
        Just(PaddingConfig2d::Same),
        (0usize..3, 0usize..3).prop_map(|(h, w)| PaddingConfig2d::Explicit(h, w, h, w)),
    ];
    (
        (1usize..4, 1usize..4, 1usize..5, 1usize..4),
        (4usize..12, 4usize..12),
        (1usize..5, 1usize..4),
        (1usize..4, 1usize..3),
        (1usize..3, 1usize..3),
        padding,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                (batch, groups, in_per_group, out_per_group),
                (h, w),
                (kh, kw),
                (sh, sw),
                (dh, dw),
                padding,
                bias,
                seed,
            )| Case {
                batch,
                groups,
                in_per_group,
                out_per_group,
                size: [h, w],
                kernel: [kh, kw],
                stride: [sh, sw],
                dilation: [dh, dw],
                padding,
                bias,
                seed,
            },
        )
        // The dilated kernel must fit the padded input.
        .prop_filter("kernel larger than the input", |case| {
            (0..2).all(|axis| (case.kernel[axis] - 1) * case.dilation[axis] < case.size[axis])
        })
        // burn's `Same` is only defined for odd kernels, stride one or no dilation.
        .prop_filter("Same with dilation", |case| {
            !matches!(case.padding, PaddingConfig2d::Same) || case.dilation == [1, 1]
        })
}

/// Values uniform in [-1, 1) from the case's seed (splitmix64): burn's global generator is
/// shared by the tests running in parallel, so a draw from it would not be the case's own.
fn uniform<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    let mut state = seed;
    let len = shape.iter().product();
    let values: Vec<f32> = (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let device = Default::default();
    let channels = case.groups * case.in_per_group;
    let out_channels = case.groups * case.out_per_group;
    let [h, w] = case.size;
    let conv: Conv2d<B> = Conv2dConfig::new([channels, out_channels], case.kernel)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_groups(case.groups)
        .with_padding(case.padding.clone())
        .with_bias(case.bias)
        .init(&device);
    let conv = Conv2d {
        weight: Param::from_tensor(uniform(conv.weight.dims(), case.seed ^ 2)),
        bias: conv
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(uniform(b.dims(), case.seed ^ 3))),
        ..conv
    };
    let x = uniform([case.batch, channels, h, w], case.seed);

    let run = |ours: bool| {
        let weight = Param::from_tensor(conv.weight.val().detach().require_grad());
        let bias = conv
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().detach().require_grad()));
        let layer = Conv2d {
            weight,
            bias,
            ..conv.clone()
        };
        let input = x.clone().detach().require_grad();
        let output = if ours {
            conv2d_forward(&layer, input.clone())
        } else {
            layer.forward(input.clone())
        };
        // A fixed random upstream gradient, the same for both runs.
        let upstream = uniform(output.dims(), case.seed ^ 1);
        let grads = (output.clone() * upstream).sum().backward();
        (
            values(output.inner()),
            values(input.grad(&grads).unwrap()),
            values(layer.weight.val().grad(&grads).unwrap()),
            layer.bias.map(|b| values(b.val().grad(&grads).unwrap())),
        )
    };
    let (out, dx, dw, db) = run(true);
    let (out_ref, dx_ref, dw_ref, db_ref) = run(false);
    prop_close(&out, &out_ref, "output")?;
    prop_close(&dx, &dx_ref, "input gradient")?;
    prop_close(&dw, &dw_ref, "weight gradient")?;
    prop_assert_eq!(db.is_some(), db_ref.is_some());
    if let (Some(db), Some(db_ref)) = (db, db_ref) {
        prop_close(&db, &db_ref, "bias gradient")?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_forward_equals_burns_conv_in_value_and_gradient(case in cases()) {
        check(&case)?;
    }

    /// Depthwise layers (one filter per channel) take their own input-gradient path on Flex.
    #[test]
    fn depthwise_conv2d_forward_equals_burns_conv(case in cases(), groups in 1usize..9) {
        check(&Case { groups, in_per_group: 1, out_per_group: 1, ..case })?;
    }
}

/// The shapes the models train with: a 3x3 stride-1 layer, a strided 1x1 projection and a
/// depthwise stride-2 "SAME" layer (EfficientNet's asymmetric padding).
#[test]
fn model_layers_equal_burns_conv() {
    let layer = |channels, out, kernel, stride, groups, padding| Case {
        batch: 4,
        groups,
        in_per_group: channels / groups,
        out_per_group: out / groups,
        size: [14, 14],
        kernel: [kernel, kernel],
        stride: [stride, stride],
        dilation: [1, 1],
        padding,
        bias: false,
        seed: 7,
    };
    for case in [
        layer(16, 32, 3, 1, 1, PaddingConfig2d::Explicit(1, 1, 1, 1)),
        layer(16, 64, 1, 2, 1, PaddingConfig2d::Valid),
        layer(24, 24, 3, 2, 24, PaddingConfig2d::Same),
        layer(24, 24, 5, 2, 24, PaddingConfig2d::Same),
    ] {
        check(&case).unwrap();
    }
}
