//! mlml-metrics' integration tests. One test binary for the crate (each test binary is a link, so
//! fewer build faster); a module per topic.

mod properties;
mod vectors;
