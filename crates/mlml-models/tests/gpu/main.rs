//! The networks on a GPU backend against `Flex` with the same weights and inputs:
//! `Cuda` with `--features cuda` (`cargo xtask gpu-check`), else `Wgpu` with `--features wgpu`
//! (lavapipe, Mesa's Vulkan on the CPU, in CI).
//!
//! Inference (running statistics) to 1e-4, and the training pass (BatchNorm on the batch's
//! statistics: features and the input's gradient through every layer) to 2e-3. A training
//! batch must give BatchNorm enough values per channel: over the last 1x1 or 2x2 maps of a
//! 2-image batch its variance is near zero and turns each rounding difference of the shaders
//! into percents (ResNet-18 at 32 px: 4 % on some features; Lite0's input gradient: 9 %); with 4
//! images at 64 px (16 values a channel at the last BatchNorm) all three agree to 2e-3.
//!
//! ResNet-18's and Lite0's training passes take about ten minutes on lavapipe, so CI runs the
//! small CNN's and leaves those two to `cargo xtask gpu-check`, which runs this file with
//! `--include-ignored` (seconds on a GPU).
//!
//! `autocast` (mlml-ops' mixed precision) runs here rather than in mlml-ops' own tests: each
//! test binary that uses the GPU backend compiles its generic code again (minutes in CI).
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod autocast;

/// One test at a time on the GPU backend: with the autocast tests beside the networks' in one
/// process, the small CNN's training pass once came out 9 % off on lavapipe while the others
/// ran beside it, and passed alone. Each test holds this for its whole run.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static DEVICE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed holding it leaves it poisoned; the next may still run.
    DEVICE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

use burn::backend::Flex;
#[cfg(feature = "cuda")]
type Gpu = burn::backend::Cuda;
#[cfg(not(feature = "cuda"))]
type Gpu = burn::backend::Wgpu;
use burn::backend::Autodiff;
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use mlml_models::{EfficientNetLite0, ResNetConfig, SmallCnnConfig};
use mlml_testing::{assert_all_close, Tolerance};

/// Relative tolerance, with a floor of this fraction of the largest feature: the shaders sum
/// the convolutions in other orders than the CPU kernels.
const RELATIVE: f64 = 1e-4;
const FLOOR: f64 = 1e-4;

/// `from`'s parameters in `into` (a module of the same shape on wgpu), through burn's byte
/// recorder in full precision. Counting `from`'s parameters draws its lazy ones first, so that
/// the copy holds `from`'s values.
fn moved<C: Backend, G: Backend, M: Module<C>, N: Module<G>>(from: &M, into: N) -> N {
    assert!(from.num_params() > 0);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<C>::record(&recorder, from.clone().into_record(), ()).unwrap();
    let record = Recorder::<G>::load::<N::Record>(&recorder, bytes, &Default::default()).unwrap();
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
    let _device = one_at_a_time();
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
    let _device = one_at_a_time();
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

/// How far the training-mode pass may land from Flex's: relative, with a floor of this
/// fraction of the largest value compared. BatchNorm on batch statistics divides by each
/// channel's spread over the batch, which amplifies the shaders' other summation orders layer
/// after layer; the batches here are big enough (at least 16 values per channel at the last
/// BatchNorm) that no channel's spread is near zero.
const TRAINING_RELATIVE: f64 = 2e-3;
const TRAINING_FLOOR: f64 = 2e-3;

/// The gradients of `y`'s sum weighted by position (`1 + (i mod 7) / 7`, so that every position
/// counts differently), on both backends.
fn weighted_backward<const D: usize>(
    y_cpu: &Tensor<Autodiff<Flex>, D>,
    y_gpu: &Tensor<Autodiff<Gpu>, D>,
) -> (
    <Autodiff<Flex> as AutodiffBackend>::Gradients,
    <Autodiff<Gpu> as AutodiffBackend>::Gradients,
) {
    let dims = y_cpu.dims();
    let weights = TensorData::new(
        (0..dims.iter().product::<usize>())
            .map(|i| 1.0 + (i % 7) as f32 / 7.0)
            .collect::<Vec<f32>>(),
        dims,
    );
    let g_cpu = (y_cpu.clone() * Tensor::from_data(weights.clone(), &Default::default()))
        .sum()
        .backward();
    let g_gpu = (y_gpu.clone() * Tensor::from_data(weights, &Default::default()))
        .sum()
        .backward();
    (g_cpu, g_gpu)
}

/// A network's features in training mode (BatchNorm on the batch's statistics) and the input's
/// gradient of their sum weighted by position, on `Autodiff<Flex>` and `Autodiff<Gpu>` with the
/// same weights and images.
fn training_pass_agrees<M, N>(
    name: &str,
    cpu: M,
    gpu: N,
    shape: [usize; 4],
    features_cpu: fn(&M, Tensor<Autodiff<Flex>, 4>) -> Tensor<Autodiff<Flex>, 2>,
    features_gpu: fn(&N, Tensor<Autodiff<Gpu>, 4>) -> Tensor<Autodiff<Gpu>, 2>,
) where
    M: Module<Autodiff<Flex>>,
    N: Module<Autodiff<Gpu>>,
{
    let gpu = moved(&cpu, gpu);
    let pixels = images(shape);
    let x_cpu =
        Tensor::<Autodiff<Flex>, 4>::from_data(pixels.clone(), &Default::default()).require_grad();
    let x_gpu = Tensor::<Autodiff<Gpu>, 4>::from_data(pixels, &Default::default()).require_grad();
    let (y_cpu, y_gpu) = (
        features_cpu(&cpu, x_cpu.clone()),
        features_gpu(&gpu, x_gpu.clone()),
    );
    let (g_cpu, g_gpu) = weighted_backward(&y_cpu, &y_gpu);
    let floats = |data: TensorData| data.convert::<f32>().to_vec::<f32>().unwrap();
    let compare = |what: &str, got: Vec<f32>, expected: Vec<f32>| {
        let tolerance = Tolerance::relative(TRAINING_RELATIVE).scaled_to(&expected, TRAINING_FLOOR);
        assert_all_close(format!("{name}: {what}"), &got, &expected, tolerance);
    };
    compare(
        "training-mode features",
        floats(y_gpu.into_data()),
        floats(y_cpu.into_data()),
    );
    compare(
        "input gradient",
        floats(x_gpu.grad(&g_gpu).unwrap().into_data()),
        floats(x_cpu.grad(&g_cpu).unwrap().into_data()),
    );
}

#[test]
fn the_small_cnn_trains_on_the_gpu_as_on_flex() {
    let _device = one_at_a_time();
    let config = SmallCnnConfig::new().with_in_channels(3);
    training_pass_agrees(
        "small CNN",
        config.init::<Autodiff<Flex>>(&Default::default()),
        config.init::<Autodiff<Gpu>>(&Default::default()),
        [4, 3, 32, 32],
        |m, x| m.features(x),
        |m, x| m.features(x),
    );
}

#[test]
#[ignore = "ten minutes on lavapipe (CI's wgpu): run by cargo xtask gpu-check"]
fn resnet18_trains_on_the_gpu_as_on_flex() {
    let _device = one_at_a_time();
    let config = ResNetConfig::resnet18();
    training_pass_agrees(
        "ResNet-18",
        config.init::<Autodiff<Flex>>(&Default::default()),
        config.init::<Autodiff<Gpu>>(&Default::default()),
        [4, 3, 64, 64],
        |m, x| m.features(x),
        |m, x| m.features(x),
    );
}

#[test]
#[ignore = "ten minutes on lavapipe (CI's wgpu): run by cargo xtask gpu-check"]
fn efficientnet_lite0_trains_on_the_gpu_as_on_flex() {
    let _device = one_at_a_time();
    training_pass_agrees(
        "EfficientNet-Lite0",
        EfficientNetLite0::<Autodiff<Flex>>::init(&Default::default()),
        EfficientNetLite0::<Autodiff<Gpu>>::init(&Default::default()),
        [4, 3, 64, 64],
        |m, x| m.features(x),
        |m, x| m.features(x),
    );
}

/// The training BatchNorm with a residual and an activation after it (ResNet's block ends,
/// EfficientNet's ReLU6) on the GPU, where it is burn's tensor ops, as on Flex, where it is one
/// kernel: the output and the gradients of the input, the residual and gamma. (The small CNN
/// above has no residual; the ResNet-18 test, which has, is a GPU machine's.)
#[test]
fn batch_norm_with_residual_and_activation_trains_on_the_gpu_as_on_flex() {
    use burn::nn::BatchNormConfig;
    use mlml_ops::{batch_norm_activation_train, Activation};
    let _device = one_at_a_time();
    let shape = [4, 6, 5, 7];
    let channels = shape[1];
    for activation in [Activation::Relu, Activation::Relu6] {
        // gamma 3 and beta 2.5 spread the outputs past both of ReLU6's bounds.
        let mut bn_cpu = BatchNormConfig::new(channels).init::<Autodiff<Flex>>(&Default::default());
        let constant = |value: f32| {
            burn::module::Param::from_tensor(
                Tensor::full([channels], value, &Default::default()).require_grad(),
            )
        };
        bn_cpu.gamma = constant(3.0);
        bn_cpu.beta = constant(2.5);
        let bn_gpu = moved(
            &bn_cpu,
            BatchNormConfig::new(channels).init::<Autodiff<Gpu>>(&Default::default()),
        );
        let leaf_cpu = |data: TensorData| {
            Tensor::<Autodiff<Flex>, 4>::from_data(data, &Default::default()).require_grad()
        };
        let leaf_gpu = |data: TensorData| {
            Tensor::<Autodiff<Gpu>, 4>::from_data(data, &Default::default()).require_grad()
        };
        // The generator's stream is fixed: the residual is the input's values reversed.
        let x = images(shape);
        let mut reversed: Vec<f32> = x.to_vec().unwrap();
        reversed.reverse();
        let residual = TensorData::new(reversed, shape);
        let (x_cpu, r_cpu) = (leaf_cpu(x.clone()), leaf_cpu(residual.clone()));
        let (x_gpu, r_gpu) = (leaf_gpu(x), leaf_gpu(residual));
        let y_cpu =
            batch_norm_activation_train(&bn_cpu, x_cpu.clone(), Some(r_cpu.clone()), activation);
        let y_gpu =
            batch_norm_activation_train(&bn_gpu, x_gpu.clone(), Some(r_gpu.clone()), activation);
        let (g_cpu, g_gpu) = weighted_backward(&y_cpu, &y_gpu);
        let floats = |data: TensorData| data.convert::<f32>().to_vec::<f32>().unwrap();
        let compare = |what: &str, got: Vec<f32>, expected: Vec<f32>| {
            let tolerance = Tolerance::relative(1e-4).scaled_to(&expected, 1e-4);
            assert_all_close(
                format!("{activation:?}: {what}"),
                &got,
                &expected,
                tolerance,
            );
        };
        let expected = floats(y_cpu.into_data());
        assert!(expected.contains(&0.0), "{activation:?}: nothing below 0");
        compare("output", floats(y_gpu.into_data()), expected);
        for (what, cpu, gpu) in [("input", &x_cpu, &x_gpu), ("residual", &r_cpu, &r_gpu)] {
            compare(
                &format!("{what} gradient"),
                floats(gpu.grad(&g_gpu).unwrap().into_data()),
                floats(cpu.grad(&g_cpu).unwrap().into_data()),
            );
        }
        compare(
            "gamma gradient",
            floats(bn_gpu.gamma.val().grad(&g_gpu).unwrap().into_data()),
            floats(bn_cpu.gamma.val().grad(&g_cpu).unwrap().into_data()),
        );
    }
}
