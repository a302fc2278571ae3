//! # mlml-metrics
//!
//! The metrics multi-label papers report, exact to their reference code and fast: plain Rust over
//! a row-major `&[f32]` score matrix and an `mlml-data` [`LabelMatrix`], parallel over classes.
//!
//! - [`mean_average_precision`]: per-class AP and mAP (percent) in two definitions,
//!   [`ApDefinition::Ranked`] (ASL / Hill / SPLC code) and [`ApDefinition::Sklearn`]
//!   (`average_precision_score`, the single-positive line), with [`MapOptions::skip_empty`].
//! - [`precision_recall_f1`]: CP, CR, CF1, OP, OR, OF1 at a threshold or for the top k, plus the
//!   mean per-class F1 that the Hill/SPLC code prints as "CF1" ([`PrfReport::mean_class_f1`]).
//! - [`at_k`]: Cole et al.'s precision@k, recall@k and top-k accuracy.
//! - [`evaluate`]: all of it with a per-class table for reports.
//!
//! Ground truth uses mlml's codes: 1 positive, -1 negative, 0 unobserved. Unobserved entries are
//! left out (of the class's ranking for AP; of the counts for P/R/F1) and the reports count them.
//! Not copied from the reference: Cole et al.'s loaders drop the last partial batch of the
//! evaluation set (`drop_last=True`); we evaluate every sample.
//!
//! ```
//! use mlml_data::LabelMatrix;
//! use mlml_metrics::{mean_average_precision, MapOptions};
//!
//! let labels = LabelMatrix::new(
//!     vec!["cat".into(), "dog".into()],
//!     vec!["a".into(), "b".into(), "c".into()],
//!     vec![1, -1, -1, 1, 1, -1],
//! )?;
//! let scores = [0.9, 0.2, 0.1, 0.8, 0.7, 0.3];
//! let report = mean_average_precision(&scores, &labels, MapOptions::default())?;
//! assert!((report.per_class[0].ap - 1.0).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ap;
mod error;
mod prf;
mod report;
mod scores;

pub use ap::{
    mean_average_precision, numpy_sum, ranked_ap_sorted, ApDefinition, ClassAp, MapOptions,
    MapReport,
};
pub use error::{MetricsError, Result};
pub use mlml_data::LabelMatrix;
pub use prf::{at_k, precision_recall_f1, AtK, ClassPrf, PredictionRule, PrfReport};
pub use report::{evaluate, ClassRow, Evaluation};
