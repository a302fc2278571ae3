//! # mlml-data
//!
//! The label model and everything about datasets for multi-label learning with missing labels.
//!
//! - [`LabelMatrix`]: `n_samples x n_classes` of `i8` codes, **1 observed positive, -1 observed
//!   negative, 0 unobserved**, with class names and sample ids.
//! - [`Dataset`]: image paths beside a label matrix, with split and provenance.
//! - [`generate`]: seeded partial-label generators (drop positives, single positive, observed
//!   negatives), deterministic for a seed, with reports of what they did.
//! - [`formats`]: loaders for COCO, Pascal VOC, NUS-WIDE, CUB-200-2011, the Hill/SPLC list files,
//!   the mlml list format and `.npy` matrices; writers for the list format and `.npy`.
//! - [`stats`] and [`verify`]: summaries of a label set and a parallel check of its images.
//!
//! This crate does not depend on burn: conversions to the float targets of a loss live in
//! `mlml-losses`.
//!
//! ```
//! use mlml_data::{generate::{drop_positives, DropParams}, LabelMatrix};
//!
//! let full = LabelMatrix::new(
//!     vec!["cat".into(), "dog".into(), "car".into()],
//!     vec!["a.jpg".into(), "b.jpg".into()],
//!     vec![1, 1, -1, 1, 1, 1],
//! )?;
//! let params = DropParams { ratio: 0.6, seed: 7, ..Default::default() };
//! let (partial, report) = drop_positives(&full, &params)?;
//! assert_eq!(report.after.positives, 2); // round(0.4 * 5)
//! assert_eq!(partial.counts().negatives, 0); // negatives become unobserved by default
//! # Ok::<(), mlml_data::DataError>(())
//! ```

mod dataset;
mod error;
pub mod fingerprint;
pub mod formats;
pub mod generate;
mod labels;
#[cfg(feature = "images")]
pub mod pipeline;
pub mod review;
pub mod rng;
pub mod stats;
#[cfg(feature = "images")]
pub mod verify;

pub use dataset::{Dataset, ProvenanceStep};
pub use error::{DataError, Result};
pub use labels::{Label, LabelCounts, LabelMatrix, NEGATIVE, POSITIVE, UNOBSERVED};
