//! `mlml_ops::allocator`: the purge delay it sets is mimalloc's, as memory the process keeps or
//! returns shows.
#![cfg(target_os = "linux")]

use mlml_ops::allocator::{self, Allocator};

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// Resident memory in MiB, from /proc/self/statm (pages of 4 KiB).
fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / (1 << 20) as f64
}

/// Allocates 256 MiB in 4 MiB blocks, writes every page, frees them, and returns how much of it
/// is still resident.
fn resident_after_freeing() -> f64 {
    let before = resident_mib();
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8 + 1; 4 << 20]).collect();
    let touched = resident_mib() - before;
    assert!(touched > 200.0, "the blocks made {touched} MiB resident");
    drop(blocks);
    resident_mib() - before
}

// One test, not two: the delay is the process's.
#[test]
fn the_purge_delay_decides_whether_freed_memory_stays() {
    allocator::set_purge_delay(0);
    assert_eq!(allocator::purge_delay(), 0);
    let purged = resident_after_freeing();
    allocator::set_purge_delay(-1);
    let kept = resident_after_freeing();
    assert!(
        purged < 64.0 && kept > 192.0,
        "resident after freeing 256 MiB: {purged:.0} MiB with a delay of 0, {kept:.0} MiB \
         with purging off"
    );

    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        allocator::keep_freed_memory();
        assert_eq!(allocator::purge_delay(), allocator::PURGE_DELAY_MS);
    }
}
