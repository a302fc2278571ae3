//! The ImageNet preprocessing the shipped weights expect: shorter side to 256 with an
//! antialiased bilinear filter, centre crop 224, RGB scaled to [0, 1], ImageNet mean / std.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::imageops::FilterType;

use crate::error::{ModelError, Result};

/// ImageNet channel means.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes an image file and returns its `[3, crop, crop]` normalised values (grey images are
/// repeated over the three channels).
///
/// # Errors
/// When the file cannot be read or decoded.
pub fn imagenet_input(path: &Path, resize: u32, crop: u32) -> Result<Vec<f32>> {
    let img = image::ImageReader::open(path)
        .map_err(|e| ModelError::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .with_guessed_format()
        .map_err(|e| ModelError::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .decode()
        .map_err(|e| ModelError::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let scale = resize as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(crop),
        ((h as f64 * scale).round() as u32).max(crop),
    );
    // `Triangle` widens its support when downscaling: the antialiased bilinear of PIL/torchvision.
    let resized = image::imageops::resize(&img, nw, nh, FilterType::Triangle);
    let (x0, y0) = ((nw - crop) / 2, (nh - crop) / 2);
    let plane = (crop * crop) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for y in 0..crop {
        for x in 0..crop {
            let p = resized.get_pixel(x0 + x, y0 + y).0;
            for c in 0..3 {
                out[c * plane + (y * crop + x) as usize] =
                    (p[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            }
        }
    }
    Ok(out)
}

/// A batch `[n, 3, 224, 224]` of images preprocessed for ImageNet backbones.
///
/// # Errors
/// When an image cannot be read.
pub fn imagenet_batch<B: Backend>(paths: &[&Path], device: &B::Device) -> Result<Tensor<B, 4>> {
    let mut values = Vec::with_capacity(paths.len() * 3 * 224 * 224);
    for path in paths {
        values.extend(imagenet_input(path, 256, 224)?);
    }
    Ok(Tensor::from_data(
        TensorData::new(values, [paths.len(), 3, 224, 224]),
        device,
    ))
}

/// The 1000 ImageNet-1k class names, in index order.
pub fn imagenet_classes() -> Vec<&'static str> {
    include_str!("../assets/imagenet_classes.txt")
        .lines()
        .collect()
}
