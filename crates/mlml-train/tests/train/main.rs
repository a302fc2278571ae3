//! mlml-train's integration tests. One test binary for the crate (each binary links burn, so fewer
//! binaries build faster); a module per topic.

mod features;
mod images;
mod parallel;
mod precision;
mod recipes;
#[path = "../common/weights.rs"]
mod weights;
#[path = "../common/yeast.rs"]
mod yeast;
