//! The networks' inference on a GPU backend against `Flex` with the same weights and inputs:
//! `Cuda` with `--features cuda` (`cargo xtask gpu-check`), else `Wgpu` with `--features wgpu`
//! (lavapipe, Mesa's Vulkan on the CPU, in CI).
//!
//! Inference only, for now: in training mode, BatchNorm over the last 1x1 or 2x2 maps of a
//! 2-image batch divides by a batch variance near zero, which turns each rounding difference of
//! the shaders into percents (ResNet-18 at 32 px: 4 % on some features; Lite0's input gradient:
//! 9 %), and the three networks' backward passes take minutes on lavapipe. With running
//! statistics ResNet-18's features agree to 3e-5.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::backend::Flex;
#[cfg(feature = "cuda")]
type Gpu = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Gpu = burn::backend::Wgpu;
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::{Tensor, TensorData};
use mlml_models::{EfficientNetLite0, ResNetConfig};
use mlml_testing::{assert_all_close, Tolerance};

/// Relative tolerance, with a floor of this fraction of the largest feature: the shaders sum
/// the convolutions in other orders than the CPU kernels.
const RELATIVE: f64 = 1e-4;
const FLOOR: f64 = 1e-4;

/// `from`'s parameters in `into` (a module of the same shape on wgpu), through burn's byte
/// recorder in full precision. Counting `from`'s parameters draws its lazy ones first, so that
/// the copy holds `from`'s values.
fn moved<M: Module<Flex>, N: Module<Gpu>>(from: &M, into: N) -> N {
    assert!(from.num_params() > 0);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<Flex>::record(&recorder, from.clone().into_record(), ()).unwrap();
    let record = Recorder::<Gpu>::load::<N::Record>(&recorder, bytes, &Default::default()).unwrap();
    into.load_record(record)
}

/// A fixed pseudo-random image batch in [-1, 1).
fn images(shape: [usize; 4]) -> TensorData {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let values = (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    TensorData::new(values, shape)
}

fn check(name: &str, cpu: Tensor<Flex, 2>, gpu: Tensor<Gpu, 2>) {
    let expected: Vec<f32> = cpu.into_data().to_vec().unwrap();
    let got: Vec<f32> = gpu.into_data().to_vec().unwrap();
    let tolerance = Tolerance::relative(RELATIVE).scaled_to(&expected, FLOOR);
    assert_all_close(format!("{name}: features"), &got, &expected, tolerance);
}

#[test]
fn resnet18_infers_on_wgpu_as_on_flex() {
    let config = ResNetConfig::resnet18();
    let cpu = config.init::<Flex>(&Default::default());
    let gpu = moved(&cpu, config.init::<Gpu>(&Default::default()));
    let shape = [2, 3, 32, 32];
    let x = images(shape);
    check(
        "ResNet-18",
        cpu.features(Tensor::from_data(x.clone(), &Default::default())),
        gpu.features(Tensor::from_data(x, &Default::default())),
    );
}

#[test]
fn efficientnet_lite0_infers_on_wgpu_as_on_flex() {
    let cpu = EfficientNetLite0::<Flex>::init(&Default::default());
    let gpu = moved(&cpu, EfficientNetLite0::<Gpu>::init(&Default::default()));
    let shape = [2, 3, 64, 64];
    let x = images(shape);
    check(
        "EfficientNet-Lite0",
        cpu.features(Tensor::from_data(x.clone(), &Default::default())),
        gpu.features(Tensor::from_data(x, &Default::default())),
    );
}
