//! mlml-data's integration tests. One test binary for the crate (each test binary is a link, so
//! fewer build faster); a module per topic.

mod cli;
mod colour_pil;
mod formats;
mod generators;
mod mutations;
mod pipeline;
mod pipeline_pil;
mod randaugment_pil;
