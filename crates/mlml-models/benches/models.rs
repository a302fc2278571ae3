//! Forward and forward + backward of ResNet-50 and EfficientNet-Lite0 at batch 8, 224 x 224, on
//! the CPU backend (random weights: speed does not depend on them). `benches/models_torch.py`
//! times the same with PyTorch on the CPU for docs/benchmarks.md.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mlml_models::{EfficientNetLite0, ResNetConfig};

const BATCH: usize = 8;

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group("cpu_backbone_b8_224");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(BATCH as u64));
    let images = Tensor::<Flex, 4>::ones([BATCH, 3, 224, 224], &device);

    let resnet = ResNetConfig::resnet50().init::<Flex>(&device);
    group.bench_function("resnet50_forward", |b| {
        b.iter(|| resnet.forward(images.clone()).into_data())
    });
    let effnet = EfficientNetLite0::<Flex>::init(&device);
    group.bench_function("efficientnet_lite0_forward", |b| {
        b.iter(|| effnet.forward(images.clone()).into_data())
    });

    let images = Tensor::<Autodiff<Flex>, 4>::ones([BATCH, 3, 224, 224], &device);
    let resnet = ResNetConfig::resnet50().init::<Autodiff<Flex>>(&device);
    group.bench_function("resnet50_forward_backward", |b| {
        b.iter(|| resnet.forward(images.clone()).mean().backward())
    });
    let effnet = EfficientNetLite0::<Autodiff<Flex>>::init(&device);
    group.bench_function("efficientnet_lite0_forward_backward", |b| {
        b.iter(|| effnet.forward(images.clone()).mean().backward())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
