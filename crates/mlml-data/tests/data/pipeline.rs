//! The image loader end to end on generated files: determinism across worker counts, order and
//! rows, drop_last, early shutdown, and every bad-image case under both policies.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mlml_data::pipeline::{
    BadImagePolicy, Batch, BatchPixels, ImageLoader, LoaderConfig, Shard, Transform,
};

fn photo_like(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let (w, h) = if i % 2 == 0 { (64, 48) } else { (50, 37) };
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 4 + i as u32 * 9) as u8,
                    (y * 5) as u8,
                    ((x * y) % 251) as u8,
                ])
            });
            let path = dir.join(format!(
                "img{i:02}.{}",
                if i % 3 == 0 { "png" } else { "jpg" }
            ));
            img.save(&path).unwrap();
            path
        })
        .collect()
}

fn collect(loader: &ImageLoader, epoch: usize) -> Vec<Batch> {
    loader.epoch(epoch).map(Result::unwrap).collect()
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 4,
        workers,
        seed: 11,
        ..Default::default()
    }
}

#[test]
fn batches_are_the_same_with_one_or_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 10);
    let one = ImageLoader::new(paths.clone(), Transform::spml(24), config(1)).unwrap();
    let three = ImageLoader::new(paths, Transform::spml(24), config(3)).unwrap();
    for epoch in [1, 2] {
        assert_eq!(collect(&one, epoch), collect(&three, epoch));
    }
    let batches = collect(&one, 1);
    assert_eq!(
        batches.iter().map(|b| b.rows.len()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    let mut rows: Vec<usize> = batches.iter().flat_map(|b| b.rows.clone()).collect();
    assert_eq!(rows, one.epoch_order(1));
    rows.sort_unstable();
    assert_eq!(rows, (0..10).collect::<Vec<_>>());
    // Another epoch reshuffles and redraws the flips.
    assert_ne!(one.epoch_order(1), one.epoch_order(2));
    let BatchPixels::F32(values) = &batches[0].pixels else {
        panic!("f32 batches by default")
    };
    assert_eq!(values.len(), 4 * 3 * 24 * 24);
    assert!(values
        .iter()
        .all(|v| v.is_finite() && (-2.2..=2.7).contains(v)));
}

#[test]
fn u8_batches_hold_the_same_pixels_before_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 5);
    let eval = Transform::eval(16, None);
    let plain = LoaderConfig {
        shuffle: false,
        ..config(2)
    };
    let f32s = collect(
        &ImageLoader::new(paths.clone(), eval.clone(), plain.clone()).unwrap(),
        1,
    );
    let u8s = collect(
        &ImageLoader::new(
            paths,
            eval,
            LoaderConfig {
                u8_batches: true,
                ..plain
            },
        )
        .unwrap(),
        1,
    );
    for (a, b) in f32s.iter().zip(&u8s) {
        let (BatchPixels::F32(a), BatchPixels::U8(b)) = (&a.pixels, &b.pixels) else {
            panic!("pixel kinds")
        };
        assert!(a
            .iter()
            .zip(b)
            .all(|(x, y)| (x - f32::from(*y) / 255.0).abs() < 1e-7));
    }
    assert_eq!(u8s[0].rows, [0, 1, 2, 3]);
}

#[test]
fn drop_last_and_early_stop() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 10);
    let loader = ImageLoader::new(
        paths,
        Transform::spml(16),
        LoaderConfig {
            drop_last: true,
            prefetch: 1,
            ..config(2)
        },
    )
    .unwrap();
    assert_eq!(collect(&loader, 1).len(), 2);
    // Taking one batch and dropping the rest returns (the producer, blocked on a full queue,
    // sees the queue close and stops) instead of hanging.
    let mut batches = loader.epoch(1);
    assert!(batches.next().unwrap().is_ok());
    drop(batches);
}

#[test]
fn bad_images_stop_with_their_path_or_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = photo_like(dir.path(), 6);
    let truncated = dir.path().join("truncated.png");
    let bytes = std::fs::read(&paths[0]).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"GIF? no").unwrap();
    let missing = dir.path().join("missing.jpg");
    // A JPEG cut at 90 %: its decoder would fill the rest with grey and report nothing.
    let whole_jpeg = dir.path().join("whole.jpg");
    image::RgbImage::from_fn(40, 32, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 7) as u8, 90])
    })
    .save(&whole_jpeg)
    .unwrap();
    let cut_jpeg = dir.path().join("cut.jpg");
    let bytes = std::fs::read(&whole_jpeg).unwrap();
    std::fs::write(&cut_jpeg, &bytes[..bytes.len() * 9 / 10]).unwrap();
    paths.extend([
        truncated.clone(),
        garbage.clone(),
        missing.clone(),
        cut_jpeg.clone(),
    ]);
    let plain = LoaderConfig {
        shuffle: false,
        ..config(2)
    };

    let failing = ImageLoader::new(paths.clone(), Transform::spml(16), plain.clone()).unwrap();
    let results: Vec<_> = failing.epoch(1).collect();
    // Rows 0-3, then rows 4-7 where row 6 is the truncated file: the error ends the epoch.
    assert_eq!(results.len(), 2);
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("truncated.png"), "{err}");

    let skipping = ImageLoader::new(
        paths,
        Transform::spml(16),
        LoaderConfig {
            bad_images: BadImagePolicy::Skip,
            ..plain
        },
    )
    .unwrap();
    // The kept images close ranks in the batch: each slot holds its own row's pixels.
    let none = Mutex::new(Vec::new());
    let mixed = skipping.build(1, &[6, 0, 7, 1], &none).unwrap();
    assert_eq!(mixed.rows, [0, 1]);
    let BatchPixels::F32(mixed) = &mixed.pixels else {
        panic!("f32")
    };
    let per_image = 3 * 16 * 16;
    assert_eq!(mixed.len(), 2 * per_image);
    for (slot, row) in [0usize, 1].iter().enumerate() {
        let alone = skipping.build(1, &[*row], &none).unwrap();
        let BatchPixels::F32(alone) = &alone.pixels else {
            panic!("f32")
        };
        assert_eq!(&mixed[slot * per_image..(slot + 1) * per_image], &alone[..]);
    }
    assert_eq!(none.lock().unwrap().len(), 2);

    let mut batches = skipping.epoch(1);
    let rows: Vec<usize> = batches.by_ref().flat_map(|b| b.unwrap().rows).collect();
    assert_eq!(rows, [0, 1, 2, 3, 4, 5]);
    let skipped = batches.skipped();
    let names: Vec<PathBuf> = skipped.iter().map(|s| s.path.clone()).collect();
    assert_eq!(names, [truncated, garbage, missing.clone(), cut_jpeg]);
    assert_eq!(skipped[2].message, "missing");
    assert!(
        skipped[3].message.contains("truncated"),
        "{}",
        skipped[3].message
    );
}

#[test]
fn zero_sizes_are_refused() {
    let err = ImageLoader::new(
        vec![],
        Transform::spml(16),
        LoaderConfig {
            workers: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`workers` must be at least 1"),
        "{err}"
    );
}

#[test]
fn the_decoded_cache_fills_in_epoch_one_and_then_needs_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 9);
    let cache_dir = dir.path().join("cache");
    let cached_config = LoaderConfig {
        cache_dir: Some(cache_dir.clone()),
        ..config(2)
    };
    let plain = ImageLoader::new(paths.clone(), Transform::spml(24), config(2)).unwrap();
    let cached =
        ImageLoader::new(paths.clone(), Transform::spml(24), cached_config.clone()).unwrap();
    assert!(!cached.cache().unwrap().is_complete());
    // The cache changes nothing in what the batches hold.
    assert_eq!(collect(&cached, 1), collect(&plain, 1));
    assert!(cached.cache().unwrap().is_complete());
    assert_eq!(collect(&cached, 2), collect(&plain, 2));
    let files: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one complete file, no partial left: {files:?}"
    );

    // A later run opens the complete cache and decodes nothing: a deleted image is not missed.
    let next_run =
        ImageLoader::new(paths.clone(), Transform::spml(24), cached_config.clone()).unwrap();
    assert!(next_run.cache().unwrap().is_complete());
    let expected = collect(&plain, 3);
    std::fs::remove_file(&paths[4]).unwrap();
    assert_eq!(collect(&next_run, 3), expected);
}

#[test]
fn the_cache_key_follows_the_list_the_size_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 6);
    let cached = |paths: &[PathBuf], size: u32| {
        ImageLoader::new(
            paths.to_vec(),
            Transform::eval(size, None),
            LoaderConfig {
                cache_dir: Some(dir.path().join("cache")),
                ..config(2)
            },
        )
        .unwrap()
    };
    let first = cached(&paths, 16);
    collect(&first, 1);
    assert!(cached(&paths, 16).cache().unwrap().is_complete());
    // Another file list, another working size: not the same cache.
    assert!(!cached(&paths[..5], 16).cache().unwrap().is_complete());
    assert!(!cached(&paths, 20).cache().unwrap().is_complete());
    // A rewritten image (other bytes, other length): not the same cache either, and the
    // batches show the new image.
    image::RgbImage::from_pixel(40, 30, image::Rgb([250, 0, 0]))
        .save(&paths[2])
        .unwrap();
    let after = cached(&paths, 16);
    assert!(!after.cache().unwrap().is_complete());
    let plain = ImageLoader::new(paths.clone(), Transform::eval(16, None), config(2)).unwrap();
    assert_eq!(collect(&after, 1), collect(&plain, 1));

    let random_crop = Transform {
        resize: mlml_data::pipeline::ResizeSpec::RandomResizedCrop {
            size: 16,
            scale: (0.08, 1.0),
            ratio: (0.75, 4.0 / 3.0),
        },
        ..Transform::spml(16)
    };
    let err = ImageLoader::new(
        paths,
        random_crop,
        LoaderConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..config(2)
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs a resize that draws nothing"),
        "{err}"
    );
}

/// Data-parallel training splits every batch among devices: each shard, built by a loader of
/// its own, is its part of the single-device batch, pixel for pixel, and a batch shorter than
/// the shard count leaves some shards empty rather than shifting the others.
#[test]
fn the_shards_of_a_batch_are_its_rows_built_apart() {
    let dir = tempfile::tempdir().unwrap();
    let paths = photo_like(dir.path(), 7);
    let whole = collect(
        &ImageLoader::new(paths.clone(), Transform::spml(24), config(2)).unwrap(),
        2,
    );
    for count in [2, 3, 5] {
        let shards: Vec<Vec<Batch>> = (0..count)
            .map(|index| {
                let sharded = LoaderConfig {
                    shard: Some(Shard { index, count }),
                    ..config(2)
                };
                collect(
                    &ImageLoader::new(paths.clone(), Transform::spml(24), sharded).unwrap(),
                    2,
                )
            })
            .collect();
        for (b, batch) in whole.iter().enumerate() {
            let parts: Vec<&Batch> = shards.iter().map(|s| &s[b]).collect();
            let rows: Vec<usize> = parts.iter().flat_map(|p| p.rows.clone()).collect();
            assert_eq!(rows, batch.rows, "{count} shards, batch {b}");
            let pixels: Vec<f32> = parts
                .iter()
                .flat_map(|p| match &p.pixels {
                    BatchPixels::F32(v) => v.clone(),
                    BatchPixels::U8(_) => panic!("f32 batches were asked for"),
                })
                .collect();
            assert_eq!(BatchPixels::F32(pixels), batch.pixels, "{count} shards");
            let sizes: Vec<usize> = parts.iter().map(|p| p.rows.len()).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
        }
    }
}
