//! Times every convolution shape of ResNet-50's training step (torchvision's v1.5 layout, batch
//! 8, 224 px by default): forward, input gradient and weight gradient through [`ConvBackend`] on
//! the CPU backend, each shape's milliseconds times the number of layers that have it, and the
//! totals. Its PyTorch twin, `benches/resnet50_convs_torch.py`, prints the same table, so the
//! two show which shapes lag: `cargo run --release -p mlml-ops --example time_resnet50_convs [--
//! SIDE]`.

use std::time::Instant;

/// The allocator of the `mlml` binary.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use mlml_ops::ConvBackend;

fn median_ms(f: impl Fn()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[2]
}

fn primitive(t: &Tensor<Flex, 4>) -> FloatTensor<Flex> {
    t.clone().into_primitive().tensor()
}

fn materialise(t: FloatTensor<Flex>) {
    Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(t)).into_data();
}

/// ResNet-50's convolutions at `side` px: (in, out, input side, kernel, stride, layers).
fn resnet50_convs(side: usize) -> Vec<(usize, usize, usize, usize, usize, usize)> {
    let mut convs = vec![(3, 64, side, 7, 2, 1)];
    let mut size = side / 4;
    let mut channels = 64;
    for (stage, (width, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)]
        .into_iter()
        .enumerate()
    {
        let out = width * 4;
        let stride = if stage == 0 { 1 } else { 2 };
        let after = size / stride;
        // The first block: its 1x1 reduction at the stage's input, the strided 3x3, the 1x1
        // expansion and the strided projection of the shortcut.
        convs.push((channels, width, size, 1, 1, 1));
        convs.push((width, width, size, 3, stride, 1));
        convs.push((width, out, after, 1, 1, 1));
        convs.push((channels, out, size, 1, stride, 1));
        convs.push((out, width, after, 1, 1, blocks - 1));
        convs.push((width, width, after, 3, 1, blocks - 1));
        convs.push((width, out, after, 1, 1, blocks - 1));
        channels = out;
        size = after;
    }
    convs
}

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let side: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(224);
    let batch = 8;
    let device = Default::default();
    println!("| conv | layers | forward | input grad | weight grad | total x layers |");
    println!("|---|---|---|---|---|---|");
    let mut totals = [0.0f64; 3];
    for (c, o, size, k, s, layers) in resnet50_convs(side) {
        let options = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], 1);
        let x = Tensor::<Flex, 4>::random([batch, c, size, size], Distribution::Default, &device);
        let w = Tensor::<Flex, 4>::random([o, c, k, k], Distribution::Default, &device);
        let y = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(Flex::conv2d_tracked(
            primitive(&x),
            primitive(&w),
            None,
            options.clone(),
        )));
        let dy = Tensor::<Flex, 4>::random(y.dims(), Distribution::Default, &device);
        let forward = median_ms(|| {
            materialise(Flex::conv2d_tracked(
                primitive(&x),
                primitive(&w),
                None,
                options.clone(),
            ))
        });
        // The stem's input is the images, which take no gradient.
        let input_grad = if c == 3 {
            0.0
        } else {
            median_ms(|| {
                materialise(Flex::conv2d_input_grad(
                    primitive(&x),
                    primitive(&w),
                    primitive(&dy),
                    options.clone(),
                ))
            })
        };
        let weight_grad = median_ms(|| {
            materialise(Flex::conv2d_weight_grad(
                primitive(&x),
                primitive(&w),
                primitive(&dy),
                options.clone(),
            ))
        });
        let parts = [forward, input_grad, weight_grad];
        for (total, part) in totals.iter_mut().zip(parts) {
            *total += part * layers as f64;
        }
        println!(
            "| {k}x{k}/{s} {c}->{o} @{size} | {layers} | {forward:.1} | {input_grad:.1} | {weight_grad:.1} | {:.1} |",
            parts.iter().sum::<f64>() * layers as f64
        );
    }
    let [forward, input_grad, weight_grad] = totals;
    println!(
        "| total | | {forward:.0} | {input_grad:.0} | {weight_grad:.0} | {:.0} |",
        forward + input_grad + weight_grad
    );
}
