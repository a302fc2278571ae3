//! The models on the CPU backend (Flex), with random weights (speed does not depend on them):
//! - `infer/resnet50-224-b8`, `infer/lite0-224-b8`: forward at batch 8, 224 x 224;
//! - `train/resnet50-224-b8`, `train/resnet50-448-b8`, `train/lite0-224-b8`: forward + backward
//!   of the mean output, in training mode (batch statistics);
//! - `train/small-cnn-64-b64`: the small CNN with its GAP + linear head, 64 x 64 grey images at
//!   batch 64, BCE with logits on 10 classes, backward and an Adam step (eps 1e-8, PyTorch's).
//!
//! `benches/models_torch.py` times the same with PyTorch on the CPU for docs/benchmarks.md.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::cell::OnceCell;
use std::time::Duration;

/// The allocator of the `mlml` binary, which runs these models, kept as it keeps it.
#[global_allocator]
static ALLOCATOR: mlml_ops::allocator::Allocator = mlml_ops::allocator::Allocator;

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mlml_models::{ConvBackend, EfficientNetLite0, ResNetConfig, SmallCnn, SmallCnnConfig};

type B = Autodiff<Flex>;

const BATCH: usize = 8;

/// The small CNN as `mlml train` builds it: features, global average pool, linear head.
#[derive(Module, Debug)]
struct SmallClassifier<B: Backend> {
    features: SmallCnn<B>,
    head: Linear<B>,
}

impl<B: ConvBackend> SmallClassifier<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head.forward(self.features.features(images))
    }
}

fn bench(c: &mut Criterion) {
    mlml_ops::allocator::keep_freed_memory();
    let device = Default::default();
    // Each network is built when the first bench that asks for it runs, so that a filtered run
    // (`--bench train/resnet50-448`) holds only its own: its peak memory is that bench's.
    let inference_resnet = OnceCell::new();
    let inference_lite0 = OnceCell::new();
    let mut infer = c.benchmark_group("infer");
    infer
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(BATCH as u64));
    let images = Tensor::<Flex, 4>::ones([BATCH, 3, 224, 224], &device);
    infer.bench_function("resnet50-224-b8", |b| {
        let resnet =
            inference_resnet.get_or_init(|| ResNetConfig::resnet50().init::<Flex>(&device));
        b.iter(|| resnet.forward(images.clone()).into_data())
    });
    infer.bench_function("lite0-224-b8", |b| {
        let effnet = inference_lite0.get_or_init(|| EfficientNetLite0::<Flex>::init(&device));
        b.iter(|| effnet.forward(images.clone()).into_data())
    });
    infer.finish();

    let training_resnet = OnceCell::new();
    let mut train = c.benchmark_group("train");
    train
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(BATCH as u64));
    for side in [224, 448] {
        let images = Tensor::<B, 4>::ones([BATCH, 3, side, side], &device);
        train.bench_function(format!("resnet50-{side}-b8"), |b| {
            let resnet =
                training_resnet.get_or_init(|| ResNetConfig::resnet50().init::<B>(&device));
            b.iter(|| resnet.forward(images.clone()).mean().backward())
        });
    }
    let images = Tensor::<B, 4>::ones([BATCH, 3, 224, 224], &device);
    let training_lite0 = OnceCell::new();
    train.bench_function("lite0-224-b8", |b| {
        let effnet = training_lite0.get_or_init(|| EfficientNetLite0::<B>::init(&device));
        b.iter(|| effnet.forward(images.clone()).mean().backward())
    });

    let (batch, classes) = (64, 10);
    let features = SmallCnnConfig::new().init::<B>(&device);
    let width = features
        .stages
        .last()
        .map_or(1, |s| s.conv.weight.dims()[0]);
    let mut model = Some(SmallClassifier {
        features,
        head: LinearConfig::new(width, classes).init(&device),
    });
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let grey = Tensor::<B, 4>::random([batch, 1, 64, 64], Distribution::Default, &device);
    let targets = Tensor::<B, 2>::random([batch, classes], Distribution::Default, &device)
        .lower_elem(0.25)
        .int();
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    train.throughput(Throughput::Elements(batch as u64));
    train.bench_function("small-cnn-64-b64", |b| {
        b.iter(|| {
            let net = model.take().expect("the model between steps");
            let loss = bce.forward(net.forward(grey.clone()), targets.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            model = Some(optimizer.step(1e-3, net, grads));
        })
    });
    train.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
