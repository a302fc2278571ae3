//! The image pipeline: decode, resize, the papers' transforms, batches and a prefetch queue.
//!
//! No burn here: batches are plain contiguous buffers (`[B, 3, H, W]`, f32 or u8) with the
//! dataset rows they hold; the training crate turns them into tensors.
//!
//! Every random choice of a sample derives from (run seed, epoch, dataset row) alone
//! ([`sample_rng`]), so a batch is the same whatever the number of worker threads or the order
//! in which they finish.

mod cache;
mod decode;
mod loader;
pub mod randaugment;
mod resize;
mod transform;

pub use cache::DecodedCache;
pub use decode::{decode_rgb, jpeg_truncation, ImageError};
pub use loader::{
    batch_rows, BadImagePolicy, Batch, BatchPixels, Batches, ImageLoader, LoaderConfig, Shard,
    Skipped,
};
pub use resize::{center_crop, resize_exact, resize_shorter_side, torchvision_shorter_side};
pub use transform::{
    adjust_hue, sample_rng, ColorJitter, Normalize, ResizeSpec, Transform, IMAGENET_MEAN,
    IMAGENET_STD,
};
