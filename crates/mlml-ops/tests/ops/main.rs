//! mlml-ops' integration tests (all but one): one test binary (each binary links burn, so fewer
//! build faster), a module per op. `allocator.rs` is a binary of its own (it sets the global
//! allocator and measures the process's memory); `autocast` runs in mlml-models' `gpu` binary (one
//! wgpu build, not two).

mod batch_norm;
mod conv;
mod fused;
