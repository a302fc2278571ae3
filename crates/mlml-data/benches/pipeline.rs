#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The image pipeline's throughput (images per second) with two worker threads, over the JPEGs
//! of `MLML_BENCH_IMAGES` when set, otherwise 64 generated photo-like JPEGs at COCO's typical
//! sizes (640 x 480 and 500 x 375, quality 90). `benches/pipeline_torchvision.py` measures
//! PIL + torchvision + `DataLoader(num_workers=2, batch_size=32)` on the same files. The
//! `-cached` ids time the epochs after the first under the decoded cache.

use std::path::PathBuf;

/// The allocator of the `mlml` and `mlml-data` binaries, which run this pipeline.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mlml_data::pipeline::{ImageLoader, LoaderConfig, Transform};
use mlml_data::rng::{interval, Mt19937};

/// Smooth gradients plus noise and a few blocks: compresses like a photo, not like a flat
/// colour.
fn photo_like(seed: u32, width: u32, height: u32) -> image::RgbImage {
    let mut rng = Mt19937::new(seed);
    let blocks: Vec<(u32, u32, [u8; 3])> = (0..12)
        .map(|_| {
            (
                interval(&mut rng, width - 1),
                interval(&mut rng, height - 1),
                [
                    interval(&mut rng, 255) as u8,
                    interval(&mut rng, 255) as u8,
                    interval(&mut rng, 255) as u8,
                ],
            )
        })
        .collect();
    image::RgbImage::from_fn(width, height, |x, y| {
        let mut p = [
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x + y) * 127 / (width + height)) as u8,
        ];
        for (bx, by, colour) in &blocks {
            if x.abs_diff(*bx) < 40 && y.abs_diff(*by) < 30 {
                p = *colour;
            }
        }
        let noise = (interval(&mut rng, 15)) as u8;
        image::Rgb(p.map(|v| v.saturating_add(noise)))
    })
}

fn images() -> (Vec<PathBuf>, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("MLML_BENCH_IMAGES") {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("MLML_BENCH_IMAGES is a readable folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no .jpg in MLML_BENCH_IMAGES");
        return (paths, None);
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let paths = (0..64u32)
        .map(|i| {
            let (w, h) = if i % 2 == 0 { (640, 480) } else { (500, 375) };
            let path = dir.path().join(format!("{i:03}.jpg"));
            let file = std::fs::File::create(&path).expect("writable");
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
                std::io::BufWriter::new(file),
                90,
            );
            encoder.encode_image(&photo_like(i, w, h)).expect("encodes");
            path
        })
        .collect();
    (paths, Some(dir))
}

fn pipeline(c: &mut Criterion) {
    let (paths, _keep) = images();
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(paths.len() as u64));
    let cache = tempfile::tempdir().expect("a temporary folder");
    // The `-cached` ids time epoch 2 onwards: the first epoch (untimed) fills the cache.
    for (id, transform, cached) in [
        ("spml-448", Transform::spml(448), false),
        ("asl-224", Transform::asl(224), false),
        ("eval-224", Transform::eval(224, None), false),
        ("spml-448-cached", Transform::spml(448), true),
        ("asl-224-cached", Transform::asl(224), true),
    ] {
        let loader = ImageLoader::new(
            paths.clone(),
            transform,
            LoaderConfig {
                batch_size: 32,
                workers: 2,
                cache_dir: cached.then(|| cache.path().to_path_buf()),
                ..Default::default()
            },
        )
        .expect("a loader");
        let mut epoch = 0;
        if cached {
            epoch += 1;
            loader.epoch(epoch).for_each(|b| drop(b.expect("decodes")));
            assert!(loader.cache().is_some_and(|c| c.is_complete()));
        }
        group.bench_function(id, |b| {
            b.iter(|| {
                epoch += 1;
                loader
                    .epoch(epoch)
                    .map(|b| b.expect("decodes").rows.len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
