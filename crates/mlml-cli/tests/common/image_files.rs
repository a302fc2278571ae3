//! Image files and a run config over them, for the tests that train on images (`images.rs`,
//! `wgpu.rs`): each test binary that needs them includes this file by path, so the others
//! carry no unused helpers.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

pub const CLASSES: [&str; 3] = ["red", "green", "blue"];

/// Image `i` shows a bar of each present class's colour on grey; the classes present follow
/// the bits of `i % 7 + 1`, so every image has at least one.
pub fn write_images(dir: &Path, rows: std::ops::Range<usize>, list: &str) -> PathBuf {
    let mut text = format!("#classes\t{}\n", CLASSES.join(","));
    for i in rows {
        let bits = i % 7 + 1;
        let mut img = RgbImage::from_pixel(40, 40, Rgb([100, 100, 100]));
        let mut present = Vec::new();
        for (k, name) in CLASSES.iter().enumerate() {
            if bits & (1 << k) == 0 {
                continue;
            }
            present.push(*name);
            let mut colour = [20u8; 3];
            colour[k] = 235;
            for y in 0..40 {
                for x in 13 * k as u32..13 * k as u32 + 10 {
                    img.put_pixel(x, y, Rgb(colour));
                }
            }
        }
        let name = format!("img{i}.png");
        img.save(dir.join(&name)).unwrap();
        text.push_str(&format!("{name}\t{}\n", present.join(",")));
    }
    let path = dir.join(list);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn write_config(dir: &Path, model: &str, extra_data: &str) -> PathBuf {
    let train = write_images(dir, 0..30, "train.tsv");
    let test = write_images(dir, 30..44, "test.tsv");
    let text = format!(
        "[data]\ntrain_set = {train:?}\ntest_set = {test:?}\nlabels = \"single-positive\"\n\
         image_size = 32\ntransform = \"eval\"\nfeature_cache = {cache:?}\nval_fraction = 0.3\n\
         {extra_data}\n\n[model]\n{model}\n\n[training]\nloss = \"an\"\nepochs = 2\nbatch_size = 8\n\
         lr = 0.003\n",
        cache = dir.join("feature-cache"),
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}
