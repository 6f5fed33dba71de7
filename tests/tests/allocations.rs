#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "tests: a failure is a test failure; counts are small"
)]
//! No allocation per append in steady state, on both drivers, written and durable: a counting
//! global allocator sees every allocation of every thread (callers, the shard, the driver's
//! threads) while a warmed-up log takes thousands of appends of batches built beforehand. What
//! remains is amortized growth (the in-memory indexes double now and then).

use bytes::BytesMut;
use rill::{Config, DriverChoice, Durability, Log, LogConfig};
use rill_tests::make_batch;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations (and reallocations) of the whole process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 500;
const MEASURED: usize = 3000;
/// Allowed allocations per append: amortized growth only (index vectors doubling).
const MAX_PER_APPEND: f64 = 0.02;

fn config(dir: &std::path::Path, driver: DriverChoice) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 1;
    // No maintenance pass in the measured window.
    config.maintenance_interval_ms = 3_600_000;
    config.log = LogConfig {
        // No roll and no sync asked for by the unsynced bound in the measured window.
        segment_bytes: 1 << 30,
        max_unsynced_bytes: 1 << 30,
        ..LogConfig::default()
    };
    config
}

fn allocations_per_append(driver: DriverChoice, durability: Durability) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    let batches: Vec<BytesMut> = (0..WARM_UP + MEASURED)
        .map(|i| make_batch(4, 100, 1_700_000_000_000, i as u64))
        .collect();
    let mut batches = batches.into_iter();
    for batch in batches.by_ref().take(WARM_UP) {
        p.append_with(batch, durability).wait().unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for batch in batches {
        p.append_with(batch, durability).wait().unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    log.close().unwrap();
    (after - before) as f64 / MEASURED as f64
}

#[test]
fn appends_allocate_nothing_in_steady_state() {
    let mut failures = Vec::new();
    for driver in [DriverChoice::Uring, DriverChoice::Syscall] {
        for durability in [Durability::Written, Durability::Durable] {
            let per_append = allocations_per_append(driver, durability);
            eprintln!("{driver:?} {durability:?}: {per_append:.4} allocations per append");
            if per_append > MAX_PER_APPEND {
                failures.push(format!("{driver:?} {durability:?}: {per_append:.4}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "allocations per append above {MAX_PER_APPEND}: {failures:?}"
    );
}
