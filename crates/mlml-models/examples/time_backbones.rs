//! Times inference of ResNet-50 and EfficientNet-Lite0 at batch 8, 224 x 224 on the CPU backend
//! (a quick companion of `benches/models.rs`), on the `mlml` binary's allocator: the minimum and
//! the median of `RUNS` batches (10 unless given). The minimum is the figure to compare builds
//! by on a shared host, whose load slows some runs and never speeds one up:
//! `cargo run --release -p mlml-models --example time_backbones [-- RUNS]`.

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::Tensor;
use mlml_models::{EfficientNetLite0, ResNetConfig};

/// The allocator of the `mlml` binary.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

fn time(name: &str, runs: usize, f: impl Fn()) {
    f();
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{name}: min {:.1} median {:.1} ms per batch of 8",
        times[0],
        times[times.len() / 2]
    );
}

fn main() {
    mlml_ops::allocator::keep_freed_memory();
    let runs = match std::env::args().nth(1).map(|arg| arg.parse::<usize>()) {
        None => 10,
        Some(Ok(runs)) => runs,
        Some(Err(_)) => {
            eprintln!("usage: time_backbones [RUNS]");
            std::process::exit(2);
        }
    };
    let device = Default::default();
    let images = Tensor::<Flex, 4>::ones([8, 3, 224, 224], &device);
    let resnet = ResNetConfig::resnet50().init::<Flex>(&device);
    time("resnet50 forward", runs, || {
        resnet.forward(images.clone()).into_data();
    });
    let effnet = EfficientNetLite0::<Flex>::init(&device);
    time("efficientnet_lite0 forward", runs, || {
        effnet.forward(images.clone()).into_data();
    });
}
