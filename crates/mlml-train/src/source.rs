//! Where the loop's batches come from: feature vectors, images held in memory as an array, or
//! image files through `mlml-data`'s pipeline. Every source yields the dataset rows of each
//! batch (the losses key their state by row) and the input on the device.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use mlml_data::fingerprint::{file_stamp_text, fnv1a, fnv1a_extend, FNV_START};
use mlml_data::pipeline::{
    batch_rows, BadImagePolicy, BatchPixels, ImageLoader, LoaderConfig, Shard, Transform,
};
use mlml_data::rng::epoch_order;
use mlml_data::LabelMatrix;
use rand::Rng;

use crate::error::{Result, TrainError};
use crate::features::{kept_rows, mean_and_std, FeatureSet};
use crate::model::Input;

/// Which pass over a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Training: shuffled by (seed, epoch), augmented by (seed, epoch, row).
    Training {
        /// 1-based epoch.
        epoch: usize,
        /// The run's seed.
        seed: u64,
        /// Leave out the epoch's last batch when it is short (PyTorch's `drop_last`).
        drop_last: bool,
        /// Only this device's shard of every batch (data-parallel training).
        shard: Option<Shard>,
    },
    /// Scoring (validation, test, prediction): every row in order, no augmentation.
    Scoring,
}

/// A batch: its dataset rows and its input.
pub type SourceBatch<B> = (Vec<usize>, Input<B>);

/// The batches of one pass, in order.
pub type BatchIter<'a, B> = Box<dyn Iterator<Item = Result<SourceBatch<B>>> + 'a>;

/// A dataset the loop can train on or score.
pub trait Source {
    /// The labels, one row per sample (observed labels for training, clean ones for scoring).
    fn labels(&self) -> &LabelMatrix;

    /// What the model's input layer needs: the feature width, or the image channels.
    fn input_size(&self) -> usize;

    /// The batches of one pass.
    ///
    /// # Errors
    /// A pass that cannot start (a loader that cannot be built); errors while it runs come
    /// as items.
    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> Result<BatchIter<'a, B>>;

    /// A stable description of the rows' inputs as a scoring pass sees them (content hash,
    /// shapes, preprocessing): the feature cache's key.
    fn fingerprint(&self) -> String;

    /// Images left out so far (their paths and the decoder's messages), with
    /// `bad_images = "skip"`.
    fn skipped(&self) -> Vec<String> {
        Vec::new()
    }

    /// Rows.
    fn len(&self) -> usize {
        self.labels().n_samples()
    }

    /// Whether there is no row.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rows of each batch of a pass over `n` rows: shuffled by (seed, epoch) in training, the
/// short last batch left out with `drop_last`, cut to the pass's shard.
pub(crate) fn pass_batches(pass: Pass, n: usize, batch_size: usize) -> Vec<Vec<usize>> {
    match pass {
        Pass::Training {
            epoch,
            seed,
            drop_last,
            shard,
        } => batch_rows(&epoch_order(seed, epoch, n), batch_size, drop_last, shard),
        Pass::Scoring => batch_rows(&(0..n).collect::<Vec<_>>(), batch_size, false, None),
    }
}

impl Source for FeatureSet {
    fn labels(&self) -> &LabelMatrix {
        &self.labels
    }

    fn input_size(&self) -> usize {
        self.dim
    }

    fn fingerprint(&self) -> String {
        let hash = self
            .features
            .iter()
            .fold(FNV_START, |h, v| fnv1a_extend(h, &v.to_le_bytes()));
        format!("features [{}, {}] fnv1a {hash:016x}", self.len(), self.dim)
    }

    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> Result<BatchIter<'a, B>> {
        let dim = self.dim;
        let chunks = pass_batches(pass, self.len(), batch_size);
        Ok(Box::new(chunks.into_iter().map(move |rows| {
            let mut x = Vec::with_capacity(rows.len() * dim);
            for &r in &rows {
                x.extend_from_slice(&self.features[r * dim..(r + 1) * dim]);
            }
            let input = Tensor::<B, 2>::from_data(TensorData::new(x, [rows.len(), dim]), device);
            Ok((rows, Input::Features(input)))
        })))
    }
}

/// Images held in memory as `u8` `[n, channels, height, width]` (the embedded Fashion set),
/// scaled to [0, 1] and normalised per channel; training flips each image horizontally with
/// probability `hflip` (drawn from the sample's own generator, so batches do not depend on
/// threads or order).
#[derive(Clone, Debug)]
pub struct ImageArray {
    /// Row-major pixels.
    pub pixels: Vec<u8>,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// One row per image.
    pub labels: LabelMatrix,
    /// Per-channel mean and standard deviation of `x / 255` (`None`: inputs in [0, 1]).
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// Probability of a horizontal flip in training.
    pub hflip: f64,
}

impl ImageArray {
    /// Reads `u8` images `[n, h, w]` (grey) or `[n, c, h, w]` (`.npy` or `.npy.gz`) with their
    /// `[n, C]` 0/1 labels, or, without a labels file, with every label unobserved (images to
    /// score). Inputs in [0, 1], no flip.
    ///
    /// # Errors
    /// Unreadable files, another dtype, or shapes that disagree, naming the file.
    pub fn from_npy(images: &Path, labels: Option<&Path>, classes: Vec<String>) -> Result<Self> {
        let array = mlml_data::formats::npy::read_u8(images)?;
        let bad = |message: String| TrainError::Config(format!("{}: {message}", images.display()));
        let (n, channels, height, width) = match array.shape[..] {
            [n, h, w] => (n, 1, h, w),
            [n, c, h, w] => (n, c, h, w),
            ref other => {
                return Err(bad(format!(
                    "images of shape {other:?}; expected [n, h, w] or [n, c, h, w]"
                )))
            }
        };
        let ids: Vec<String> = (0..n).map(|i| format!("image{i}")).collect();
        let labels = match labels {
            None => LabelMatrix::unobserved(classes, ids)?,
            Some(path) => {
                let y = mlml_data::formats::npy::read_labels(
                    path,
                    mlml_data::formats::ZeroMeans::Negative,
                )?;
                if y.n_samples != n || y.n_classes != classes.len() {
                    return Err(bad(format!(
                        "{n} images, but {} holds {} x {} labels for {} class names",
                        path.display(),
                        y.n_samples,
                        y.n_classes,
                        classes.len()
                    )));
                }
                LabelMatrix::new(classes, ids, y.values)?
            }
        };
        Ok(Self {
            pixels: array.values,
            channels,
            height,
            width,
            labels,
            normalize: None,
            hflip: 0.0,
        })
    }

    fn per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The images `rows` (ascending), with their labels.
    pub fn select(&self, rows: &[usize]) -> Self {
        let (keep, labels) = kept_rows(&self.labels, rows);
        let size = self.per_image();
        let mut pixels = Vec::with_capacity(rows.len() * size);
        for (i, image) in self.pixels.chunks_exact(size).enumerate() {
            if keep[i] {
                pixels.extend_from_slice(image);
            }
        }
        Self {
            pixels,
            labels,
            ..self.clone()
        }
    }

    /// Per-channel mean and standard deviation of `x / 255` over every image (population).
    pub fn channel_statistics(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0u64; self.channels];
        let mut square = vec![0u64; self.channels];
        for image in self.pixels.chunks_exact(self.per_image()) {
            for (c, values) in image.chunks_exact(plane).enumerate() {
                for &v in values {
                    sum[c] += u64::from(v);
                    square[c] += u64::from(v) * u64::from(v);
                }
            }
        }
        let count = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / count / 255.0).collect();
        let square: Vec<f64> = square.iter().map(|&s| s as f64 / count / 65025.0).collect();
        mean_and_std(&mean, &square)
    }

    fn write(&self, row: usize, flip: bool, out: &mut [f32]) {
        let (h, w) = (self.height, self.width);
        let image = &self.pixels[row * self.per_image()..(row + 1) * self.per_image()];
        for (c, (plane, dst)) in image
            .chunks_exact(h * w)
            .zip(out.chunks_exact_mut(h * w))
            .enumerate()
        {
            let (scale, shift) = match &self.normalize {
                Some((mean, std)) => (1.0 / (255.0 * std[c]), -mean[c] / std[c]),
                None => (1.0 / 255.0, 0.0),
            };
            for (src, dst) in plane.chunks_exact(w).zip(dst.chunks_exact_mut(w)) {
                if flip {
                    for (d, &s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = f32::from(s) * scale + shift;
                    }
                } else {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = f32::from(s) * scale + shift;
                    }
                }
            }
        }
    }
}

impl Source for ImageArray {
    fn labels(&self) -> &LabelMatrix {
        &self.labels
    }

    fn input_size(&self) -> usize {
        self.channels
    }

    fn fingerprint(&self) -> String {
        format!(
            "u8 images [{}, {}, {}, {}] fnv1a {:016x} normalize {:?}",
            self.len(),
            self.channels,
            self.height,
            self.width,
            fnv1a(&self.pixels),
            self.normalize
        )
    }

    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> Result<BatchIter<'a, B>> {
        let size = self.per_image();
        let chunks = pass_batches(pass, self.len(), batch_size);
        Ok(Box::new(chunks.into_iter().map(move |rows| {
            let mut x = vec![0.0f32; rows.len() * size];
            for (&row, out) in rows.iter().zip(x.chunks_exact_mut(size)) {
                let flip = match pass {
                    Pass::Training { epoch, seed, .. } if self.hflip > 0.0 => {
                        mlml_data::pipeline::sample_rng(seed, epoch as u64, row as u64)
                            .random_bool(self.hflip)
                    }
                    _ => false,
                };
                self.write(row, flip, out);
            }
            let shape = [rows.len(), self.channels, self.height, self.width];
            let input = Tensor::<B, 4>::from_data(TensorData::new(x, shape), device);
            Ok((rows, Input::Images(input)))
        })))
    }
}

/// Image files through the pipeline: a training transform (augmentation) and an evaluation
/// transform, decoded by `workers` threads ahead of the consumer.
#[derive(Debug)]
pub struct ImageFiles {
    /// Row `i` is `paths[i]`.
    pub paths: Vec<PathBuf>,
    /// One row per image.
    pub labels: LabelMatrix,
    /// The training transform.
    pub train_transform: Transform,
    /// The scoring transform.
    pub eval_transform: Transform,
    /// Decoding threads.
    pub workers: usize,
    /// Batches decoded ahead.
    pub prefetch: usize,
    /// What a bad image does.
    pub bad_images: BadImagePolicy,
    /// Folder of the decoded-image cache.
    pub cache_dir: Option<PathBuf>,
    skipped: Mutex<Vec<String>>,
    /// The loaders built so far, by their settings (a thread pool and a decoded cache are
    /// opened once per kind of pass, not once per pass).
    loaders: Mutex<Vec<(LoaderConfig, Transform, ImageLoader)>>,
}

impl ImageFiles {
    /// Files with their labels, decoded by two workers with two batches of prefetch, failing
    /// on a bad image.
    ///
    /// # Errors
    /// As many paths as label rows are needed.
    pub fn new(
        paths: Vec<PathBuf>,
        labels: LabelMatrix,
        train_transform: Transform,
        eval_transform: Transform,
    ) -> Result<Self> {
        if paths.len() != labels.n_samples() {
            return Err(TrainError::Config(format!(
                "{} image files for {} label rows",
                paths.len(),
                labels.n_samples()
            )));
        }
        Ok(Self {
            paths,
            labels,
            train_transform,
            eval_transform,
            workers: 2,
            prefetch: 2,
            bad_images: BadImagePolicy::Fail,
            cache_dir: None,
            skipped: Mutex::new(Vec::new()),
            loaders: Mutex::new(Vec::new()),
        })
    }

    /// The images `rows` (ascending), with their labels and the same settings.
    pub fn select(&self, rows: &[usize]) -> Self {
        let (keep, labels) = kept_rows(&self.labels, rows);
        Self {
            paths: (0..self.paths.len())
                .filter(|&i| keep[i])
                .map(|i| self.paths[i].clone())
                .collect(),
            labels,
            train_transform: self.train_transform.clone(),
            eval_transform: self.eval_transform.clone(),
            workers: self.workers,
            prefetch: self.prefetch,
            bad_images: self.bad_images,
            cache_dir: self.cache_dir.clone(),
            skipped: Mutex::new(Vec::new()),
            loaders: Mutex::new(Vec::new()),
        }
    }

    /// The same files with other labels.
    ///
    /// # Errors
    /// Labels with another number of rows.
    pub fn with_labels(mut self, labels: LabelMatrix) -> Result<Self> {
        if labels.n_samples() != self.paths.len() {
            return Err(TrainError::Config(format!(
                "{} label rows for {} image files",
                labels.n_samples(),
                self.paths.len()
            )));
        }
        self.labels = labels;
        Ok(self)
    }

    fn record_skipped(&self, skipped: Vec<mlml_data::pipeline::Skipped>) {
        let mut seen = self.skipped.lock().expect("no panic holds the lock");
        for s in skipped {
            let line = s.to_string();
            if !seen.contains(&line) {
                seen.push(line);
            }
        }
    }
}

impl Source for ImageFiles {
    fn labels(&self) -> &LabelMatrix {
        &self.labels
    }

    fn input_size(&self) -> usize {
        3
    }

    fn fingerprint(&self) -> String {
        let files = self.paths.iter().fold(FNV_START, |h, p| {
            fnv1a_extend(h, file_stamp_text(p).as_bytes())
        });
        format!(
            "{} image files (paths, sizes, times) fnv1a {files:016x} transform {}",
            self.paths.len(),
            serde_json::to_string(&self.eval_transform).expect("a transform serialises")
        )
    }

    fn batches<'a, B: Backend>(
        &'a self,
        pass: Pass,
        batch_size: usize,
        device: &'a B::Device,
    ) -> Result<BatchIter<'a, B>> {
        let (transform, epoch, seed, shuffle, drop_last, shard) = match pass {
            Pass::Training {
                epoch,
                seed,
                drop_last,
                shard,
            } => (&self.train_transform, epoch, seed, true, drop_last, shard),
            Pass::Scoring => (&self.eval_transform, 1, 0, false, false, None),
        };
        // The cache holds resized images, so only a transform whose resize draws nothing can
        // use it.
        let cache_dir = self
            .cache_dir
            .clone()
            .filter(|_| transform.cacheable_prefix().is_some());
        let config = LoaderConfig {
            batch_size,
            shuffle,
            drop_last,
            workers: self.workers,
            prefetch: self.prefetch,
            u8_batches: false,
            bad_images: self.bad_images,
            seed,
            cache_dir,
            shard,
        };
        let loader = {
            let mut loaders = self
                .loaders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let built = loaders
                .iter()
                .find(|(c, t, _)| *c == config && t == transform);
            match built {
                Some((_, _, loader)) => loader.clone(),
                None => {
                    let loader =
                        ImageLoader::new(self.paths.clone(), transform.clone(), config.clone())?;
                    loaders.push((config, transform.clone(), loader.clone()));
                    loader
                }
            }
        };
        let mut batches = loader.epoch(epoch);
        let mut done = false;
        Ok(Box::new(std::iter::from_fn(move || {
            if done {
                return None;
            }
            match batches.next() {
                Some(Ok(batch)) => {
                    let BatchPixels::F32(pixels) = batch.pixels else {
                        unreachable!("the loader was asked for f32 batches")
                    };
                    let shape = [
                        batch.rows.len(),
                        3,
                        batch.height as usize,
                        batch.width as usize,
                    ];
                    let input = Tensor::<B, 4>::from_data(TensorData::new(pixels, shape), device);
                    Some(Ok((batch.rows, Input::Images(input))))
                }
                Some(Err(e)) => {
                    done = true;
                    Some(Err(e.into()))
                }
                None => {
                    done = true;
                    self.record_skipped(batches.skipped());
                    None
                }
            }
        })))
    }

    fn skipped(&self) -> Vec<String> {
        self.skipped
            .lock()
            .expect("no panic holds the lock")
            .clone()
    }
}
