//! Forward + backward of every registered loss at batch 128 x 80 classes (COCO's class count)
//! on the CPU backend. `benches/losses_torch.py` times the PyTorch formulations of the same
//! losses on the same shapes for docs/benchmarks.md.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mlml_data::LabelMatrix;
use mlml_losses::registry::{build, LossSetup, LOSSES};
use mlml_losses::LossContext;

type B = Autodiff<Flex>;

const N: usize = 128;
const C: usize = 80;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bench(c: &mut Criterion) {
    // Logits uniform in [-6, 6); one observed positive per row, the rest unobserved.
    let logits: Vec<f32> = (0..(N * C) as u64)
        .map(|k| (splitmix64(k) >> 40) as f32 / (1u64 << 24) as f32 * 12.0 - 6.0)
        .collect();
    let mut codes = vec![0i8; N * C];
    for i in 0..N {
        codes[i * C + (splitmix64(1_000_000 + i as u64) % C as u64) as usize] = 1;
    }
    let train = LabelMatrix::new(
        (0..C).map(|j| j.to_string()).collect(),
        (0..N).map(|i| i.to_string()).collect(),
        codes.clone(),
    )
    .unwrap();
    let device = Default::default();
    let targets = Tensor::<B, 2>::from_data(
        TensorData::new(
            codes.iter().map(|v| f32::from(*v)).collect::<Vec<_>>(),
            [N, C],
        ),
        &device,
    );
    let rows: Vec<usize> = (0..N).collect();
    let setup = LossSetup::<B> {
        epochs: 10,
        train_labels: &train,
        seed: 0,
        device,
    };
    let mut group = c.benchmark_group("cpu_loss_fwd_bwd_128x80");
    for info in LOSSES {
        let mut loss = build::<B>(info.name, None, &serde_json::Value::Null, &setup).unwrap();
        // Epoch 3: the scheduled losses (SPLC, LL-*, GR) run their active branch.
        let ctx = LossContext::train(3, &rows).unwrap();
        // Stateful losses start every step from their initial state: repeating one batch forever
        // would otherwise make LL-Cp correct every entry of it.
        let initial = loss.state();
        group.bench_function(BenchmarkId::from_parameter(info.name), |b| {
            b.iter(|| {
                if !initial.is_empty() {
                    loss.load_state(&initial).unwrap();
                }
                let z = Tensor::<B, 2>::from_data(
                    TensorData::new(logits.clone(), [N, C]),
                    &Default::default(),
                )
                .require_grad();
                let value = loss.forward(z.clone(), targets.clone(), &ctx).unwrap();
                let grads = value.backward();
                z.grad(&grads).unwrap().into_data()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
