//! Times one convolution as inference runs it on the CPU backend: `conv2d_fused` with a scale,
//! a bias and a ReLU (a BatchNorm folded in), batch 8 unless `BATCH` says, square maps, the minimum and the median of `RUNS`
//! calls. Its PyTorch twin is `benches/conv_layer_torch.py` (same arguments):
//! `cargo run --release -p mlml-ops --example time_conv_layer -- IN OUT SIDE KERNEL STRIDE RUNS [BATCH]`.

use std::time::Instant;

/// The allocator of the `mlml` binary.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Distribution, Tensor};
use mlml_ops::{Activation, ConvBackend};

fn primitive<const D: usize>(t: &Tensor<Flex, D>) -> FloatTensor<Flex> {
    t.clone().into_primitive().tensor()
}

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("arguments are whole numbers"))
        .collect();
    let batch = if args.len() == 7 { args[6] } else { 8 };
    let [channels, out_channels, side, kernel, stride, runs] = args[..args.len().min(6)] else {
        eprintln!("usage: time_conv_layer IN OUT SIDE KERNEL STRIDE RUNS [BATCH]");
        std::process::exit(2);
    };
    let device = Default::default();
    let options = ConvOptions::new([stride, stride], [kernel / 2, kernel / 2], [1, 1], 1);
    let x = Tensor::<Flex, 4>::random(
        [batch, channels, side, side],
        Distribution::Default,
        &device,
    );
    let weight = Tensor::<Flex, 4>::random(
        [out_channels, channels, kernel, kernel],
        Distribution::Default,
        &device,
    );
    let bias = Tensor::<Flex, 1>::random([out_channels], Distribution::Default, &device);
    let scale = Tensor::<Flex, 1>::random([out_channels], Distribution::Default, &device);
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            let y = Flex::conv2d_fused(
                primitive(&x),
                primitive(&weight),
                (Some(primitive(&scale)), Some(primitive(&bias))),
                options.clone(),
                None,
                Activation::Relu,
            );
            drop(y);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{channels}->{out_channels} @{side} k{kernel} s{stride}: min {:.2} median {:.2} ms",
        times[0],
        times[times.len() / 2]
    );
}
