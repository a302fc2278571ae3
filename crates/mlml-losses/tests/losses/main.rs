//! mlml-losses' integration tests. One test binary for the crate (each binary links burn, so fewer
//! binaries build faster); a module per topic.

mod lifecycle;
mod properties;
