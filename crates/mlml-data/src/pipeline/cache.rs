//! The decoded-image cache: each image after the transform's deterministic resize, as raw RGB
//! bytes in one file of fixed-size records, so that later epochs and runs skip decoding.
//!
//! The file's name is a hash of its key: the working size, the resize step and, for every
//! image in row order, its path, byte length and modification time. A changed list, size or
//! file makes another key, so a stale cache is never read. The first epoch fills a
//! `.partial` file (records written at their offsets by any worker); when every row is filled
//! it is renamed into place, atomically. Records are read at their offsets with positioned
//! reads (the page cache does what a memory map would, without `unsafe`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use image::RgbImage;

use crate::error::{DataError, Result};
use crate::fingerprint::{file_stamp, fnv1a};

const MAGIC: &[u8; 8] = b"MLMLDC01";
const HEADER: u64 = 32;

/// A cache of `n` images of `width x height`.
pub struct DecodedCache {
    path: PathBuf,
    partial: PathBuf,
    file: File,
    width: u32,
    height: u32,
    filled: Mutex<(Vec<bool>, usize)>,
    complete: AtomicBool,
}

impl std::fmt::Debug for DecodedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedCache")
            .field("path", &self.path)
            .field("complete", &self.is_complete())
            .finish()
    }
}

impl DecodedCache {
    /// Opens the complete cache for this key in `dir`, or starts filling a new one.
    ///
    /// # Errors
    /// An image that cannot be examined (its size and time are part of the key), or a cache
    /// folder that cannot be written.
    pub fn open(
        dir: &Path,
        paths: &[PathBuf],
        width: u32,
        height: u32,
        resize: &str,
    ) -> Result<Self> {
        let mut key = format!("mlml decoded cache v1\n{width}x{height}\n{resize}\n");
        for p in paths {
            let (len, modified) = file_stamp(p).map_err(|e| DataError::io(p, e))?;
            key.push_str(&format!("{}\t{len}\t{modified}\n", p.display()));
        }
        let hash = fnv1a(key.as_bytes());
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let path = dir.join(format!("decoded-{hash:016x}-{width}x{height}.bin"));
        let partial = dir.join(format!(
            "decoded-{hash:016x}-{width}x{height}.partial-{}",
            std::process::id()
        ));
        let n = paths.len();
        let record = u64::from(width) * u64::from(height) * 3;
        let length = HEADER + record * n as u64;
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(n as u64).to_le_bytes());
        header.extend_from_slice(&width.to_le_bytes());
        header.extend_from_slice(&height.to_le_bytes());
        header.extend_from_slice(&hash.to_le_bytes());
        if let Ok(file) = File::open(&path) {
            let mut found = vec![0u8; HEADER as usize];
            let whole = file.metadata().map(|m| m.len() == length).unwrap_or(false);
            if whole && file.read_exact_at(&mut found, 0).is_ok() && found == header {
                return Ok(Self {
                    path,
                    partial,
                    file,
                    width,
                    height,
                    filled: Mutex::new((vec![true; n], n)),
                    complete: AtomicBool::new(true),
                });
            }
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| DataError::io(&partial, e))?;
        file.set_len(length)
            .map_err(|e| DataError::io(&partial, e))?;
        file.write_all_at(&header, 0)
            .map_err(|e| DataError::io(&partial, e))?;
        Ok(Self {
            path,
            partial,
            file,
            width,
            height,
            filled: Mutex::new((vec![false; n], 0)),
            complete: AtomicBool::new(n == 0),
        })
    }

    /// Whether every row is stored (then nothing is decoded any more).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// The cache file (complete) or the file being filled.
    pub fn path(&self) -> &Path {
        if self.is_complete() {
            &self.path
        } else {
            &self.partial
        }
    }

    fn offset(&self, row: usize) -> u64 {
        HEADER + row as u64 * u64::from(self.width) * u64::from(self.height) * 3
    }

    /// The stored image of `row`, if it is stored.
    ///
    /// # Errors
    /// A read that fails.
    pub fn get(&self, row: usize) -> Result<Option<RgbImage>> {
        let stored = self.is_complete() || {
            let filled = self.filled.lock().expect("no panic holds the lock");
            filled.0.get(row).copied().unwrap_or(false)
        };
        if !stored {
            return Ok(None);
        }
        let mut bytes = vec![0u8; (self.width * self.height * 3) as usize];
        self.file
            .read_exact_at(&mut bytes, self.offset(row))
            .map_err(|e| DataError::io(self.path(), e))?;
        Ok(RgbImage::from_raw(self.width, self.height, bytes))
    }

    /// Stores `row`'s image; the last missing row completes the cache and renames it into
    /// place.
    ///
    /// # Errors
    /// A write or the rename failing.
    pub fn put(&self, row: usize, img: &RgbImage) -> Result<()> {
        if self.is_complete() || img.dimensions() != (self.width, self.height) {
            return Ok(());
        }
        self.file
            .write_all_at(img.as_raw(), self.offset(row))
            .map_err(|e| DataError::io(&self.partial, e))?;
        let mut filled = self.filled.lock().expect("no panic holds the lock");
        if !filled.0[row] {
            filled.0[row] = true;
            filled.1 += 1;
        }
        if filled.1 == filled.0.len() && !self.is_complete() {
            self.file
                .sync_data()
                .map_err(|e| DataError::io(&self.partial, e))?;
            std::fs::rename(&self.partial, &self.path).map_err(|e| DataError::io(&self.path, e))?;
            self.complete.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl Drop for DecodedCache {
    fn drop(&mut self) {
        // An unfinished cache is of no use to anyone: leave no partial file behind.
        if !self.is_complete() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
