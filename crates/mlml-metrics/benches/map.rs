//! mAP on COCO val2014's shape (40,504 x 80) and a large one (200,000 x 1,000), both
//! definitions. `benches/map_sklearn.py` builds the same matrices (SplitMix64 from the same
//! seeds) and times `sklearn.metrics.average_precision_score` on them for docs/benchmarks.md.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mlml_data::LabelMatrix;
use mlml_metrics::{mean_average_precision, ApDefinition, MapOptions};

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Scores in [0, 1) with 24 bits (exact in f32); about 5 % positives, scored 0.25 higher.
fn problem(n: usize, c: usize) -> (Vec<f32>, LabelMatrix) {
    let mut scores = Vec::with_capacity(n * c);
    let mut codes = Vec::with_capacity(n * c);
    for k in 0..(n * c) as u64 {
        let positive = (splitmix64(k ^ 0x5eed) >> 40) < (1 << 24) / 20;
        let score = (splitmix64(k) >> 40) as f32 / (1u64 << 24) as f32;
        scores.push(if positive {
            (score + 0.25).min(1.0)
        } else {
            score
        });
        codes.push(if positive { 1 } else { -1 });
    }
    let labels = LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| i.to_string()).collect(),
        codes,
    )
    .unwrap();
    (scores, labels)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_map");
    group.sample_size(10);
    for (n, classes) in [(40_504, 80), (200_000, 1_000)] {
        let (scores, labels) = problem(n, classes);
        for definition in [ApDefinition::Ranked, ApDefinition::Sklearn] {
            let options = MapOptions {
                definition,
                skip_empty: false,
            };
            let id = BenchmarkId::new(format!("{definition:?}"), format!("{n}x{classes}"));
            group.bench_with_input(id, &options, |b, options| {
                b.iter(|| {
                    black_box(
                        mean_average_precision(&scores, &labels, *options)
                            .unwrap()
                            .map,
                    )
                })
            });
        }
        let report = mean_average_precision(&scores, &labels, MapOptions::default()).unwrap();
        eprintln!("{n}x{classes}: ranked mAP {:.6}", report.map);
        let options = MapOptions {
            definition: ApDefinition::Sklearn,
            skip_empty: false,
        };
        let report = mean_average_precision(&scores, &labels, options).unwrap();
        eprintln!("{n}x{classes}: sklearn mAP {:.6}", report.map);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
