//! Batches of transformed images from a list of files, built by a pool of worker threads ahead
//! of the consumer (a bounded prefetch queue), deterministic whatever the number of workers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cache::DecodedCache;
use super::decode::{decode_rgb, ImageError};
use super::transform::{sample_rng, Transform};
use crate::error::{DataError, Result};

/// What a bad image (missing, truncated, undecodable) does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadImagePolicy {
    /// Stop with the image's path and the decoder's message.
    #[default]
    Fail,
    /// Leave the sample out of its batch and record it in [`Batches::skipped`].
    Skip,
}

/// How a loader batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle the rows each epoch (ChaCha8, stream = epoch).
    pub shuffle: bool,
    /// Drop the last, smaller batch of an epoch.
    pub drop_last: bool,
    /// Worker threads that decode and transform (at least 1).
    pub workers: usize,
    /// Batches built ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// `u8` batches (normalisation left to the device) instead of f32.
    pub u8_batches: bool,
    /// What a bad image does.
    pub bad_images: BadImagePolicy,
    /// Seed of the shuffling and of every sample's random choices.
    pub seed: u64,
    /// Folder of the decoded-image cache (`None`: decode every epoch). Needs a transform whose
    /// resize draws nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Build only this shard of every batch (data-parallel training: each device decodes its
    /// own part of the batch the whole run would have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// One device's part of every batch in data-parallel training: of a batch of `n` rows, shard
/// `index` of `count` takes rows `n * index / count .. n * (index + 1) / count`, in the batch's
/// order. The batches themselves are the single-device run's, so the shards of a batch are
/// contiguous, disjoint, cover it, and differ in size by at most one row (a batch shorter than
/// `count` leaves some shards empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// Shards of every batch (at least 1).
    pub count: usize,
}

impl Shard {
    /// This shard's positions in a batch of `len` rows.
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        len * self.index / self.count..len * (self.index + 1) / self.count
    }

    /// This shard's rows of `batch`.
    pub fn of<'a, T>(&self, batch: &'a [T]) -> &'a [T] {
        &batch[self.range(batch.len())]
    }
}

/// The rows of each batch of a pass taken in `order`: chunks of `batch_size`, the short last
/// one left out with `drop_last`, each cut to `shard` when there is one. The image loader and
/// the training loop's sources batch through this one function, so a device's shard is the
/// same rows whichever builds it.
pub fn batch_rows(
    order: &[usize],
    batch_size: usize,
    drop_last: bool,
    shard: Option<Shard>,
) -> Vec<Vec<usize>> {
    let mut chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
    if drop_last && chunks.last().is_some_and(|c| c.len() < batch_size) {
        chunks.pop();
    }
    chunks
        .into_iter()
        .map(|chunk| shard.map_or(chunk, |s| s.of(chunk)).to_vec())
        .collect()
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            shuffle: true,
            drop_last: false,
            workers: 2,
            prefetch: 2,
            u8_batches: false,
            bad_images: BadImagePolicy::Fail,
            seed: 0,
            cache_dir: None,
            shard: None,
        }
    }
}

/// A batch's pixels, `[B, 3, H, W]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchPixels {
    /// `x / 255`, normalised as the transform says.
    F32(Vec<f32>),
    /// Raw 8-bit values after the geometric steps.
    U8(Vec<u8>),
}

/// One batch: the pixels and the dataset rows they come from, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[rows.len(), 3, height, width]`.
    pub pixels: BatchPixels,
    /// Dataset rows, one per image (the losses key their state by row).
    pub rows: Vec<usize>,
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
}

/// A skipped image.
pub type Skipped = ImageError;

/// Builds batches of `paths` (dataset row `i` is `paths[i]`) under a transform.
#[derive(Clone, Debug)]
pub struct ImageLoader {
    paths: Arc<Vec<PathBuf>>,
    transform: Arc<Transform>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    cache: Option<Arc<DecodedCache>>,
}

impl ImageLoader {
    /// A loader over `paths` with its own pool of `config.workers` threads.
    ///
    /// # Errors
    /// A batch size, worker count or prefetch depth of 0, a transform parameter out of range
    /// ([`Transform::validate`]), or a pool that cannot start.
    pub fn new(paths: Vec<PathBuf>, transform: Transform, config: LoaderConfig) -> Result<Self> {
        transform.validate()?;
        for (name, value) in [
            ("batch_size", config.batch_size),
            ("workers", config.workers),
            ("prefetch", config.prefetch),
        ] {
            if value == 0 {
                return Err(DataError::OutOfRange {
                    name,
                    expected: "at least 1",
                    value: "0".into(),
                });
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers)
            .thread_name(|i| format!("mlml-image-{i}"))
            .build()
            .map_err(|e| DataError::Usage(format!("cannot start the image workers: {e}")))?;
        let cache = match &config.cache_dir {
            None => None,
            Some(dir) => {
                let prefix = transform.cacheable_prefix().ok_or_else(|| {
                    DataError::Usage(format!(
                        "transform `{}`: the decoded cache needs a resize that draws nothing \
                         (not a random resized crop)",
                        transform.name
                    ))
                })?;
                let (width, height) = transform.output_size();
                Some(Arc::new(DecodedCache::open(
                    dir, &paths, width, height, &prefix,
                )?))
            }
        };
        Ok(Self {
            paths: Arc::new(paths),
            transform: Arc::new(transform),
            config,
            pool: Arc::new(pool),
            cache,
        })
    }

    /// Samples in the dataset.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The rows of `epoch` (1-based) in the order they are batched.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        if self.config.shuffle {
            crate::rng::epoch_order(self.config.seed, epoch, self.paths.len())
        } else {
            (0..self.paths.len()).collect()
        }
    }

    /// The batches of `epoch` (1-based), built ahead by the workers. Dropping the iterator
    /// early stops the producer.
    pub fn epoch(&self, epoch: usize) -> Batches {
        let chunks = batch_rows(
            &self.epoch_order(epoch),
            self.config.batch_size,
            self.config.drop_last,
            self.config.shard,
        );
        let (sender, receiver) = bounded(self.config.prefetch);
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let this = self.clone();
        let skipped_by_producer = Arc::clone(&skipped);
        let producer = std::thread::Builder::new()
            .name("mlml-image-producer".into())
            .spawn(move || {
                for rows in chunks {
                    let batch = this.build(epoch, &rows, &skipped_by_producer);
                    let failed = batch.is_err();
                    // A closed queue means the consumer stopped: stop too.
                    if sender.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("a thread can be spawned");
        Batches {
            receiver: Some(receiver),
            producer: Some(producer),
            skipped,
        }
    }

    /// The decoded cache, when the loader has one.
    pub fn cache(&self) -> Option<&DecodedCache> {
        self.cache.as_deref()
    }

    /// `row`'s image after the resize step: from the cache when it is stored there,
    /// otherwise decoded (and stored).
    fn resized(
        &self,
        row: usize,
        rng: &mut ChaCha8Rng,
    ) -> std::result::Result<image::RgbImage, ImageError> {
        let path = &self.paths[row];
        let cache_error = |e: DataError| ImageError {
            path: path.clone(),
            message: format!("decoded cache: {e}"),
        };
        if let Some(cache) = &self.cache {
            if let Some(img) = cache.get(row).map_err(cache_error)? {
                return Ok(img);
            }
        }
        let img = self.transform.resize_step(&decode_rgb(path)?, rng);
        if let Some(cache) = &self.cache {
            cache.put(row, &img).map_err(cache_error)?;
        }
        Ok(img)
    }

    /// Builds one batch of `rows` in order, decoding and transforming them in parallel.
    pub fn build(
        &self,
        epoch: usize,
        rows: &[usize],
        skipped: &Mutex<Vec<Skipped>>,
    ) -> Result<Batch> {
        let (width, height) = self.transform.output_size();
        let per_image = 3 * (width * height) as usize;
        // Each worker decodes, transforms and writes its image straight into its slot of the
        // batch, so no image outlives its own step and the batch is written once.
        let (mut pixels, results) = if self.config.u8_batches {
            let (out, results) = self.fill(epoch, rows, per_image, Transform::write_chw_u8);
            (BatchPixels::U8(out), results)
        } else {
            let transform = &self.transform;
            let (out, results) = self.fill(epoch, rows, per_image, |img, dst| {
                transform.write_chw_f32(img, dst)
            });
            (BatchPixels::F32(out), results)
        };
        let mut keep = Vec::with_capacity(rows.len());
        for result in results {
            match result {
                Ok(()) => keep.push(true),
                Err(e) if self.config.bad_images == BadImagePolicy::Skip => {
                    skipped.lock().expect("no panic holds the lock").push(e);
                    keep.push(false);
                }
                Err(e) => {
                    return Err(DataError::Invalid {
                        path: e.path,
                        message: format!("{} (bad image; skip with the `skip` policy)", e.message),
                    })
                }
            }
        }
        match &mut pixels {
            BatchPixels::U8(out) => compact(out, per_image, &keep),
            BatchPixels::F32(out) => compact(out, per_image, &keep),
        }
        Ok(Batch {
            pixels,
            rows: rows
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(r, _)| *r)
                .collect(),
            height,
            width,
        })
    }

    /// The batch buffer of `rows`, each slot written by `write` from the worker that made the
    /// image, with each row's outcome.
    fn fill<T: Copy + Default + Send>(
        &self,
        epoch: usize,
        rows: &[usize],
        per_image: usize,
        write: impl Fn(&image::RgbImage, &mut [T]) + Sync,
    ) -> (Vec<T>, Vec<std::result::Result<(), ImageError>>) {
        let mut out = vec![T::default(); rows.len() * per_image];
        let results = self.pool.install(|| {
            out.par_chunks_mut(per_image)
                .zip(rows.par_iter())
                .map(|(dst, &row)| {
                    let mut rng = sample_rng(self.config.seed, epoch as u64, row as u64);
                    let resized = self.resized(row, &mut rng)?;
                    write(&self.transform.augment(resized, &mut rng), dst);
                    Ok(())
                })
                .collect()
        });
        (out, results)
    }
}

/// Removes the slots of the rows not kept, keeping the order.
fn compact<T: Copy>(out: &mut Vec<T>, per_image: usize, keep: &[bool]) {
    let mut kept = 0;
    for (i, k) in keep.iter().enumerate() {
        if *k {
            if i != kept {
                out.copy_within(i * per_image..(i + 1) * per_image, kept * per_image);
            }
            kept += 1;
        }
    }
    out.truncate(kept * per_image);
}

/// The batches of one epoch, in order; the first error ends the iteration.
pub struct Batches {
    receiver: Option<Receiver<Result<Batch>>>,
    producer: Option<JoinHandle<()>>,
    skipped: Arc<Mutex<Vec<Skipped>>>,
}

impl Batches {
    /// The images skipped so far (with [`BadImagePolicy::Skip`]), in the order met.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped
            .lock()
            .expect("no panic holds the lock")
            .clone()
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the queue first unblocks a producer waiting to send; then it ends.
        drop(self.receiver.take());
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}
