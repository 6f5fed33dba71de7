//! Sparse per-segment indexes (docs/FORMAT.md §2, §3): entries, their encoding and lookups, in
//! memory, I/O-free. An index read from disk is never trusted blindly: [`OffsetIndex::parse`]
//! and [`TimeIndex::parse`] check it against the segment, and the caller rebuilds it from the
//! log when a check fails. (The bounded cache of sealed segments' indexes is
//! `rill_format::index::IndexCache`.)

mod offset;
mod time;

pub use offset::{OFFSET_ENTRY_BYTES, OffsetEntry, OffsetIndex};
pub use time::{TIME_ENTRY_BYTES, TimeEntry, TimeIndex};

/// Why an index file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The file length is not a whole number of entries (a torn write).
    #[error("index length {len} is not a multiple of the {entry_bytes}-byte entry")]
    PartialEntry {
        /// File length.
        len: usize,
        /// Entry size.
        entry_bytes: usize,
    },
    /// More entries than the configured maximum.
    #[error("index holds {entries} entries, more than the maximum {max}")]
    TooManyEntries {
        /// Entries found.
        entries: usize,
        /// Configured limit.
        max: usize,
    },
    /// Entry `index` does not increase over the one before it (zero padding looks like this).
    #[error("entry {index} is not greater than the entry before it")]
    NotMonotonic {
        /// Zero-based entry number.
        index: usize,
    },
    /// Entry `index` points outside the segment's bytes or offsets.
    #[error("entry {index} points outside the segment")]
    OutOfRange {
        /// Zero-based entry number.
        index: usize,
    },
}

/// What an index is checked against: the segment it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentBounds {
    /// First offset of the segment.
    pub base_offset: i64,
    /// Offset just after the segment's last batch.
    pub next_offset: i64,
    /// Bytes of valid batches in the segment.
    pub size_bytes: u64,
}
