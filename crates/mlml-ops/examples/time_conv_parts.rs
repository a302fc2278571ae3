//! Times the three parts of a training convolution on the CPU backend (forward, input gradient,
//! weight gradient) for the layer shapes of the small CNN and ResNet-50, so that a fix goes where
//! the time is, and burn's weight gradient beside [`ConvBackend`]'s: `cargo run --release -p mlml-ops --example time_conv_parts [NAME]`.

use std::time::Instant;

/// The allocator of the `mlml` binary: on the system allocator every large output is mapped
/// and faulted in afresh at every call (the small CNN's 1 -> 32 forward: 14 ms, against 8 ms
/// with this one).
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::Flex;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, ModuleOps};
use burn::tensor::{Distribution, Tensor};
use mlml_ops::ConvBackend;

fn mean_ms(f: impl Fn()) -> f64 {
    f();
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / runs as f64
}

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let device = Default::default();
    // (name, batch, in, out, size, kernel, stride, groups)
    let layers = [
        ("small-cnn conv1 64px", 64, 1, 32, 64, 3, 1, 1),
        ("small-cnn conv2 64px", 64, 32, 64, 32, 3, 1, 1),
        ("small-cnn conv3", 64, 64, 128, 16, 3, 1, 1),
        ("small-cnn conv4", 64, 128, 128, 8, 3, 1, 1),
        ("resnet stem 7x7/2", 8, 3, 64, 224, 7, 2, 1),
        ("resnet 3x3 64 @56", 8, 64, 64, 56, 3, 1, 1),
        ("resnet 1x1 64->256 @56", 8, 64, 256, 56, 1, 1, 1),
        ("resnet 3x3 512 @7", 8, 512, 512, 7, 3, 1, 1),
        ("resnet 1x1/2 512->1024 @28", 8, 512, 1024, 28, 1, 2, 1),
        ("lite0 stem 3x3/2 3->32 @224", 8, 3, 32, 224, 3, 2, 1),
        ("lite0 1x1 16->96 @112", 8, 16, 96, 112, 1, 1, 1),
        ("lite0 dw 3x3 96 @112", 8, 96, 96, 112, 3, 2, 96),
        ("lite0 dw 5x5 144 @56", 8, 144, 144, 56, 5, 2, 144),
        ("lite0 dw 3x3 240 @28 s1", 8, 240, 240, 28, 3, 1, 240),
        ("lite0 dw 3x3 480 @14 s1", 8, 480, 480, 14, 3, 1, 480),
        ("lite0 dw 5x5 1152 @7 s1", 8, 1152, 1152, 7, 5, 1, 1152),
    ];
    println!(
        "| layer | forward: burn | forward: `ConvBackend` | input grad: burn | input grad: `ConvBackend` | weight grad: burn | weight grad: `ConvBackend` |"
    );
    println!("|---|---|---|---|---|---|---|");
    // An argument keeps only the layers whose name contains it.
    let filter = std::env::args().nth(1).unwrap_or_default();
    for (name, n, c, o, size, k, s, g) in layers {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let options = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], g);
        let x = Tensor::<Flex, 4>::random([n, c, size, size], Distribution::Default, &device);
        let w = Tensor::<Flex, 4>::random([o, c / g, k, k], Distribution::Default, &device);
        let y = conv2d(x.clone(), w.clone(), None, options.clone());
        let dy = Tensor::<Flex, 4>::random(y.dims(), Distribution::Default, &device);
        let forward = mean_ms(|| {
            conv2d(x.clone(), w.clone(), None, options.clone()).into_data();
        });
        let fast_forward = mean_ms(|| {
            let y = Flex::conv2d_tracked(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                None,
                options.clone(),
            );
            Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(y)).into_data();
        });
        let input_grad = mean_ms(|| {
            let g = Flex::conv2d_x_backward(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                dy.clone().into_primitive().tensor(),
                options.clone(),
            );
            Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(g)).into_data();
        });
        let weight_grad = mean_ms(|| {
            let g = Flex::conv2d_weight_backward(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                dy.clone().into_primitive().tensor(),
                options.clone(),
            );
            Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(g)).into_data();
        });
        let fast_input_grad = mean_ms(|| {
            let g = Flex::conv2d_input_grad(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                dy.clone().into_primitive().tensor(),
                options.clone(),
            );
            Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(g)).into_data();
        });
        let fast_weight_grad = mean_ms(|| {
            let g = Flex::conv2d_weight_grad(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                dy.clone().into_primitive().tensor(),
                options.clone(),
            );
            Tensor::<Flex, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(g)).into_data();
        });
        println!(
            "| {name} | {forward:.1} | {fast_forward:.1} | {input_grad:.1} | {fast_input_grad:.1} | {weight_grad:.1} | {fast_weight_grad:.1} |"
        );
    }
}
