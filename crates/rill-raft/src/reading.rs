//! Reading the Raft log out of its partition: finding an entry by index, reading a range of
//! entries, and openraft's `RaftLogReader` for replication tasks.

use crate::codec::{self, Placed};
use crate::error::{Error, storage};
use crate::log_index::LogIndex;
use crate::types::{Entry, StorageError, TypeConfig};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rill::{Partition, ReadLimit};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes one read of the partition asks for.
const READ_BYTES: u64 = 1 << 20;
/// Reads a binary search may take: each halves an offset range of at most 2^63.
const MAX_SEARCH_READS: usize = 128;

/// The log index, locked (it is never held across an await, so a panic cannot leave it
/// half-changed for long; a poisoned lock's data is still whole).
pub(crate) fn lock(index: &Mutex<LogIndex>) -> std::sync::MutexGuard<'_, LogIndex> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entry whose batch holds `offset`.
pub(crate) async fn place_at(partition: &Partition, offset: i64) -> Result<Placed, Error> {
    let read = partition.read_with(offset, 1, ReadLimit::Written).await?;
    let batch = read
        .batches()
        .next()
        .ok_or_else(|| Error::corrupt_entry(offset, "no batch"))?;
    codec::place(batch)
}

/// The base offset of entry `index`: remembered, or found by a binary search of the
/// partition (indexes grow with offsets).
pub(crate) async fn locate(
    partition: &Partition,
    log_index: &Mutex<LogIndex>,
    index: u64,
) -> Result<i64, Error> {
    if let Some(offset) = lock(log_index).offset_of(index) {
        return Ok(offset);
    }
    let offsets = partition.offsets();
    let (mut low, mut high) = (offsets.log_start, offsets.log_end);
    for _ in 0..MAX_SEARCH_READS {
        if low >= high {
            break;
        }
        let placed = place_at(partition, low + (high - low) / 2).await?;
        match placed.log_id.index.cmp(&index) {
            std::cmp::Ordering::Equal => return Ok(placed.base_offset),
            std::cmp::Ordering::Less => low = placed.next_offset,
            std::cmp::Ordering::Greater => high = placed.base_offset,
        }
    }
    Err(Error::MissingEntry(index))
}

/// Reads the live entries with indexes in `start..end`, from `hint` (where entry `start` was
/// last seen) when it still holds it. Returns them and where the entry after them starts.
pub(crate) async fn read_entries(
    partition: &Partition,
    log_index: &Mutex<LogIndex>,
    (start, end): (u64, u64),
    hint: Option<i64>,
) -> Result<(Vec<Entry>, i64), Error> {
    let (first, live_end) = lock(log_index).live();
    let (start, end) = (start.max(first), end.min(live_end));
    let mut entries = Vec::new();
    if start >= end {
        return Ok((entries, -1));
    }
    let mut offset = match hint {
        Some(offset) => offset,
        None => locate(partition, log_index, start).await?,
    };
    let mut next = start;
    let mut relocated = hint.is_none();
    // Bounded: each pass takes at least one entry, or relocates once, or ends.
    while next < end {
        let read = match partition
            .read_with(offset, READ_BYTES, ReadLimit::Written)
            .await
        {
            Ok(read) => read,
            // A stale hint may point past a truncated end.
            Err(_) if !relocated => {
                relocated = true;
                offset = locate(partition, log_index, next).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let before = next;
        for batch in read.batches() {
            let (entry, placed) = codec::decode(batch)?;
            if placed.log_id.index != next {
                break;
            }
            entries.push(entry);
            next += 1;
            offset = placed.next_offset;
            if next == end {
                break;
            }
        }
        if next == before {
            // The hint is stale (the log was truncated and rewritten since): search once.
            if relocated {
                return Err(Error::MissingEntry(next));
            }
            relocated = true;
            offset = locate(partition, log_index, next).await?;
        }
    }
    Ok((entries, offset))
}

/// The indexes `range` covers, as `start..end`.
pub(crate) fn range_of(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Reads the log for openraft's replication tasks. Cheap to clone. Each remembers where its
/// last read ended, so a follower's catch-up reads the partition sequentially.
#[derive(Debug, Clone)]
pub struct LogReader {
    partition: Partition,
    log_index: Arc<Mutex<LogIndex>>,
    /// The index after the last read, and its offset.
    cursor: Option<(u64, i64)>,
}

impl LogReader {
    pub(crate) fn new(partition: Partition, log_index: Arc<Mutex<LogIndex>>) -> Self {
        Self {
            partition,
            log_index,
            cursor: None,
        }
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_of(&range);
        let hint = self
            .cursor
            .filter(|&(index, _)| index == start)
            .map(|(_, offset)| offset);
        let read = read_entries(&self.partition, &self.log_index, (start, end), hint).await;
        match read {
            Ok((entries, next_offset)) => {
                if let Some(last) = entries.last() {
                    self.cursor = Some((last.log_id.index + 1, next_offset));
                }
                Ok(entries)
            }
            Err(e) => Err(storage(StorageIOError::read_logs, &e)),
        }
    }
}
