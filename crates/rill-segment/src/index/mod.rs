//! Sparse per-segment indexes (docs/FORMAT.md §2, §3). Their entries and encoding are
//! `rill_format::index` (I/O-free), re-exported here. The active segment's live in memory;
//! sealed segments' indexes are written once at roll (and the active segment's at clean
//! shutdown), and read back on use into a bounded [`IndexCache`].

mod cache;

pub use cache::{DEFAULT_INDEX_CACHE_BYTES, IndexCache, IndexCacheStats, SegmentIndexes};
pub use rill_format::index::{
    IndexError, OFFSET_ENTRY_BYTES, OffsetEntry, OffsetIndex, SegmentBounds, TIME_ENTRY_BYTES,
    TimeEntry, TimeIndex,
};
