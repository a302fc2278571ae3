//! The ImageNet preprocessing the shipped weights expect: shorter side to 256 with an
//! antialiased bilinear filter, centre crop 224, RGB scaled to [0, 1], ImageNet mean / std;
//! the steps are `mlml-data`'s image pipeline (one decoder and one resizer for training,
//! evaluation and `verify`).

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use mlml_data::pipeline::{decode_rgb, sample_rng, Transform};

use crate::error::{ModelError, Result};

/// ImageNet channel means.
pub const IMAGENET_MEAN: [f32; 3] = mlml_data::pipeline::IMAGENET_MEAN;
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = mlml_data::pipeline::IMAGENET_STD;

/// Decodes an image file and returns its `[3, crop, crop]` normalised values, through the
/// data pipeline's decoder and torchvision's `Resize(resize)` + `CenterCrop(crop)` (grey
/// images are repeated over the three channels).
///
/// # Errors
/// When the file cannot be read or decoded.
pub fn imagenet_input(path: &Path, resize: u32, crop: u32) -> Result<Vec<f32>> {
    let img = decode_rgb(path).map_err(|e| ModelError::Image {
        path: e.path,
        message: e.message,
    })?;
    let transform = Transform {
        resize: mlml_data::pipeline::ResizeSpec::ShorterCenterCrop {
            shorter: resize,
            crop,
        },
        ..Transform::imagenet_eval()
    };
    // The evaluation transform draws nothing; the generator is there for the signature.
    let resized = transform.apply(&img, &mut sample_rng(0, 0, 0));
    let mut out = vec![0.0f32; 3 * (crop * crop) as usize];
    transform.write_chw_f32(&resized, &mut out);
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
