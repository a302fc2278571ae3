//! Times inference of ResNet-50 and EfficientNet-Lite0 at batch 8, 224 x 224 on the CPU backend
//! (a quick companion of `benches/models.rs`): `cargo run --release -p mlml-models --example time_backbones`.

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::Tensor;
use mlml_models::{EfficientNetLite0, ResNetConfig};

fn time(name: &str, f: impl Fn()) {
    f();
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    let secs = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{name}: {secs:.3} s per batch of 8 ({:.1} img/s)",
        8.0 / secs
    );
}

fn main() {
    let device = Default::default();
    let images = Tensor::<Flex, 4>::ones([8, 3, 224, 224], &device);
    let resnet = ResNetConfig::resnet50().init::<Flex>(&device);
    time("resnet50 forward", || {
        resnet.forward(images.clone()).into_data();
    });
    let effnet = EfficientNetLite0::<Flex>::init(&device);
    time("efficientnet_lite0 forward", || {
        effnet.forward(images.clone()).into_data();
    });
}
