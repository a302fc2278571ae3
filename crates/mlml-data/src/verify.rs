//! Checks that every image of a dataset exists and decodes, in parallel.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::Dataset;

/// An image that failed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadImage {
    /// Path as checked (root joined).
    pub path: PathBuf,
    /// Why: missing, unreadable, or the decoder's message.
    pub reason: String,
}

/// Decodes every image of `dataset` under `root`, calling `progress` once per image (from any
/// thread), and returns the failures in dataset order.
pub fn verify_images(dataset: &Dataset, root: &Path, progress: impl Fn() + Sync) -> Vec<BadImage> {
    dataset
        .image_paths
        .par_iter()
        .filter_map(|relative| {
            let path = root.join(relative);
            let result = check_image(&path);
            progress();
            result.err().map(|reason| BadImage { path, reason })
        })
        .collect()
}

fn check_image(path: &Path) -> Result<(), String> {
    crate::pipeline::decode_rgb(path)
        .map(|_| ())
        .map_err(|e| e.message)
}
