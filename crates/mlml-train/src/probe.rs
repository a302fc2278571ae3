//! Linear-probe mode: a frozen backbone turns every image into a feature vector once; the head
//! then trains on those vectors like any feature dataset. The vectors are cached on disk under
//! a key of everything they depend on (backbone, weights, preprocessing, the images), so the
//! next run with the same images and backbone skips the backbone entirely.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData};
use mlml_data::formats::{npy, write_atomic};
use mlml_ops::ConvBackend;

use crate::error::{Result, TrainError};
use crate::model::{Backbone, Input};
use crate::source::{Pass, Source};

/// How images reach the backbone in probe mode, beyond what the source already does.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeInput {
    /// Resize to `size x size` on the device (bilinear), e.g. 64 px canvases to 128 for an
    /// ImageNet backbone (`None`: as the source delivers).
    pub size: Option<usize>,
    /// Repeat a single grey channel to three.
    pub grey_to_rgb: bool,
    /// Per-channel `(x - mean) / std` on the device, after the resize (`None`: none).
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

impl ProbeInput {
    /// A stable description, part of the cache key.
    pub fn describe(&self) -> String {
        format!(
            "size={:?} grey_to_rgb={} normalize={:?}",
            self.size, self.grey_to_rgb, self.normalize
        )
    }

    fn apply<B: Backend>(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, c, _, _] = images.dims();
        let mut x = if self.grey_to_rgb && c == 1 {
            images.repeat_dim(1, 3)
        } else {
            images
        };
        if let Some(size) = self.size {
            x = interpolate(
                x,
                [size, size],
                InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
            );
        }
        if let Some((mean, std)) = self.normalize {
            let device = x.device();
            let column = |v: [f32; 3]| {
                Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), [1, 3, 1, 1]), &device)
            };
            x = (x - column(mean)) / column(std);
        }
        x
    }
}

/// Pooled backbone features `[n, D]`, row-major in the source's row order (rows the source
/// skipped stay 0), in eval mode.
///
/// # Errors
/// A batch the source cannot build, or a source of feature vectors.
pub fn extract_features<B: ConvBackend, S: Source>(
    backbone: &Backbone<B>,
    source: &S,
    input: &ProbeInput,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let mut out: Vec<f32> = Vec::new();
    let mut dim = 0;
    for batch in source.batches::<B>(Pass::Scoring, batch_size, device)? {
        let (rows, batch) = batch?;
        if rows.is_empty() {
            continue;
        }
        let Input::Images(images) = batch else {
            return Err(TrainError::Config(
                "linear-probe mode needs images, the data gives feature vectors".into(),
            ));
        };
        let features = backbone.features(input.apply(images));
        let d = features.dims()[1];
        if out.is_empty() {
            dim = d;
            out = vec![0.0; source.len() * d];
        }
        let values = features
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        for (&r, row) in rows.iter().zip(values.chunks_exact(dim)) {
            out[r * dim..(r + 1) * dim].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// A feature cache: `<dir>/<hash>.npy` (f32 `[n, D]`) beside `<hash>.key.txt`, the key in
/// full (checked on every hit, so a hash collision can never serve the wrong features).
#[derive(Clone, Debug)]
pub struct FeatureCache {
    /// The folder.
    pub dir: PathBuf,
}

/// Whether features came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read from the cache; the backbone did not run.
    Hit,
    /// Computed and stored.
    Miss,
}

impl FeatureCache {
    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let hash = mlml_data::fingerprint::fnv1a(key.as_bytes());
        (
            self.dir.join(format!("{hash:016x}.npy")),
            self.dir.join(format!("{hash:016x}.key.txt")),
        )
    }

    /// The features stored under `key` for `rows` rows, or `compute`'s, stored for next time.
    ///
    /// # Errors
    /// A cache file that cannot be read or written, or `compute`'s error.
    pub fn get_or_compute(
        &self,
        key: &str,
        rows: usize,
        compute: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<(Vec<f32>, usize, CacheOutcome)> {
        let (data, key_file) = self.paths(key);
        if data.is_file() && std::fs::read_to_string(&key_file).is_ok_and(|k| k == key) {
            let stored = npy::read_f32(&data)?;
            if let [n, d] = stored.shape[..] {
                if n == rows {
                    return Ok((stored.values, d, CacheOutcome::Hit));
                }
            }
        }
        let features = compute()?;
        let dim = features.len().checked_div(rows).unwrap_or(0);
        std::fs::create_dir_all(&self.dir).map_err(|error| mlml_data::DataError::Io {
            path: self.dir.clone(),
            error,
        })?;
        // The data first: a key file only ever names complete data.
        write_atomic(&data, &npy::f32_bytes(&[rows, dim], &features))?;
        write_atomic(&key_file, key.as_bytes())?;
        Ok((features, dim, CacheOutcome::Miss))
    }
}
