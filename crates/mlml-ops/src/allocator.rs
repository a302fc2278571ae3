//! The allocator of mlml's binaries, and how it keeps freed memory.
//!
//! Every burn op returns a fresh buffer, so a training step allocates and frees its activations
//! and gradients anew. mimalloc returns freed memory to the OS after a short delay (its
//! `purge_delay`); a step that lasts longer than that finds its memory gone and faults every
//! page in again, and the kernel zeroes each one first: 41 % of EfficientNet-Lite0's CPU
//! training step in `perf` (`docs/benchmarks.md`). [`keep_freed_memory`] lengthens the delay so
//! that memory freed in one step is reused by the next.
#![allow(unsafe_code)] // mimalloc's option setter is a C function.

include!(concat!(env!("OUT_DIR"), "/mimalloc_options.rs"));

/// The allocator: `#[global_allocator] static ALLOCATOR: mlml_ops::allocator::Allocator =
/// mlml_ops::allocator::Allocator;`. glibc's unmaps every block above 32 MiB when it is freed
/// (a 448 px batch), and the next one faults its pages in again.
pub use mimalloc::MiMalloc as Allocator;

/// How long freed memory stays in the process before it goes back to the OS, in milliseconds,
/// unless `MIMALLOC_PURGE_DELAY` says otherwise: longer than any training step, so the memory
/// of one step serves the next, and short enough that a finished phase's memory is returned.
pub const PURGE_DELAY_MS: i64 = 30_000;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`], unless the environment sets
/// `MIMALLOC_PURGE_DELAY` (mimalloc reads it at start-up, and the user's word wins). Call it
/// first in `main`; it only acts where [`Allocator`] is the global allocator.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(PURGE_DELAY_MS);
    }
}

/// mimalloc's current purge delay in milliseconds (-1: never purge).
pub fn purge_delay() -> i64 {
    // SAFETY: a read of one of mimalloc's option cells by its index in the linked header.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) as i64 }
}

/// Sets mimalloc's purge delay in milliseconds (-1: never purge, 0: at once).
pub fn set_purge_delay(milliseconds: i64) {
    // SAFETY: mimalloc's options are atomic cells; the index comes from the header of the
    // mimalloc this build links (build.rs).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, milliseconds as _) }
}
