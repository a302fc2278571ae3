#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Loading a COCO-sized `instances_*.json`: 82,783 images, 600,000 annotations with polygon
//! segmentations, 80 sparse category ids. The file is generated from a seed in a temporary
//! folder (about 250 MB) and never committed.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mlml_data::formats::{read_coco, CocoOptions};
use mlml_data::rng::{interval, Mt19937};

const IMAGES: u32 = 82_783;
const ANNOTATIONS: u32 = 600_000;

fn coco_json() -> String {
    let mut rng = Mt19937::new(2014);
    // COCO's 80 category ids lie in 1..=90 with gaps.
    let ids: Vec<u32> = (1..=90)
        .filter(|i| ![12, 26, 29, 30, 45, 66, 68, 69, 71, 83].contains(i))
        .collect();
    let mut s = String::with_capacity(300 << 20);
    s.push_str("{\"info\": {\"year\": 2014}, \"images\": [");
    for i in 0..IMAGES {
        let sep = if i == 0 { "" } else { ", " };
        let id = 9 + 7 * i;
        write!(s, "{sep}{{\"license\": 3, \"file_name\": \"COCO_train2014_{id:012}.jpg\", \"height\": 480, \"width\": 640, \"id\": {id}}}").unwrap();
    }
    s.push_str("], \"annotations\": [");
    for k in 0..ANNOTATIONS {
        let sep = if k == 0 { "" } else { ", " };
        let image = 9 + 7 * interval(&mut rng, IMAGES - 1);
        let category = ids[interval(&mut rng, 79) as usize];
        write!(s, "{sep}{{\"segmentation\": [[").unwrap();
        for p in 0..24 {
            let comma = if p == 0 { "" } else { "," };
            write!(
                s,
                "{comma}{}.{}",
                interval(&mut rng, 639),
                interval(&mut rng, 99)
            )
            .unwrap();
        }
        write!(
            s,
            "]], \"area\": 702.1057, \"iscrowd\": 0, \"image_id\": {image}, \"bbox\": [473.07, 395.93, 38.65, 28.67], \"category_id\": {category}, \"id\": {}}}",
            k + 1
        )
        .unwrap();
    }
    s.push_str("], \"categories\": [");
    for (j, id) in ids.iter().enumerate() {
        let sep = if j == 0 { "" } else { ", " };
        write!(
            s,
            "{sep}{{\"supercategory\": \"thing\", \"id\": {id}, \"name\": \"class {id}\"}}"
        )
        .unwrap();
    }
    s.push_str("]}");
    s
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances_train2014.json");
    std::fs::write(&path, coco_json()).unwrap();
    let mut group = c.benchmark_group("coco");
    group.sample_size(10);
    group.bench_function("read_instances_83k_images_600k_annotations", |b| {
        b.iter(|| black_box(read_coco(&path, &CocoOptions::default()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
