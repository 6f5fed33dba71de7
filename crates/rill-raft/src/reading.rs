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
const READ_BYTES: usize = 1 << 20;
/// Bytes of entries one AppendEntries carries (or one entry, if larger): openraft sends up
/// to `max_payload_entries` (300) entries per call and waits for the answer no longer than a
/// heartbeat interval, so without a bound in bytes a follower that lags behind entries of a
/// MiB each would be sent 300 MiB, time out and be sent them again, never catching up.
pub const MAX_APPEND_ENTRIES_BYTES: usize = 1 << 20;
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
    match read.batches().next() {
        Some(batch) => codec::place(batch),
        // At the log's end: a truncation has moved it since the caller looked.
        None => Err(Error::Partition(rill::Error::OffsetOutOfRange {
            offset,
            log_start: read.log_start_offset,
            log_end: read.log_end_offset,
        })),
    }
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

/// Entries read, and where the entry after the last one starts (-1 before the first).
#[derive(Debug)]
pub(crate) struct EntriesRead {
    pub entries: Vec<Entry>,
    pub next_offset: i64,
    /// The entries' batches' sizes, summed.
    bytes: usize,
}

/// What a read knows of the log as it begins: the live indexes, and how many removals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogView {
    live: (u64, u64),
    removals: u64,
}

impl LogView {
    /// The log as `log_index` has it now.
    pub fn of(log_index: &Mutex<LogIndex>) -> Self {
        let index = lock(log_index);
        Self {
            live: index.live(),
            removals: index.removals(),
        }
    }
}

/// Reads the entries with indexes in `start..end` that were live in `view`, from `hint`
/// (where entry `start` was last seen) when it still holds it, and stops before they take
/// more than `max_bytes` (one entry, at least, whatever its size).
///
/// openraft's replication tasks read while the log store truncates or purges: when entries
/// go from under a read, it returns those read before them (a short read, which openraft's
/// reader contract allows). An entry missing from a log that nothing changed is an error.
pub(crate) async fn read_entries(
    partition: &Partition,
    log_index: &Mutex<LogIndex>,
    view: LogView,
    (start, end): (u64, u64),
    hint: Option<i64>,
    max_bytes: usize,
) -> Result<EntriesRead, Error> {
    let mut read = EntriesRead {
        entries: Vec::new(),
        next_offset: -1,
        bytes: 0,
    };
    // The hint is where `start` was; a start moved past purged entries is looked up.
    let hint = hint.filter(|_| start >= view.live.0);
    let (start, end) = (start.max(view.live.0), end.min(view.live.1));
    if start >= end {
        return Ok(read);
    }
    match read_live(
        partition,
        log_index,
        (start, end),
        hint,
        max_bytes,
        &mut read,
    )
    .await
    {
        Err(e) if removed(&e) && lock(log_index).removals() != view.removals => Ok(read),
        Err(e) => Err(e),
        Ok(()) => Ok(read),
    }
}

/// Whether `e` says an entry or an offset is not in the log (any more).
fn removed(e: &Error) -> bool {
    matches!(
        e,
        Error::MissingEntry(_) | Error::Partition(rill::Error::OffsetOutOfRange { .. })
    )
}

/// [`read_entries`]' reads, into `read`, of entries known live when it began.
async fn read_live(
    partition: &Partition,
    log_index: &Mutex<LogIndex>,
    (start, end): (u64, u64),
    hint: Option<i64>,
    max_bytes: usize,
    read: &mut EntriesRead,
) -> Result<(), Error> {
    let mut offset = match hint {
        Some(offset) => offset,
        None => locate(partition, log_index, start).await?,
    };
    let mut next = start;
    let mut relocated = hint.is_none();
    // Bounded: each pass takes at least one entry, or relocates once, or ends.
    let mut full = false;
    while next < end && !full {
        let want = max_bytes.saturating_sub(read.bytes).min(READ_BYTES) as u64;
        let batches = match partition.read_with(offset, want, ReadLimit::Written).await {
            Ok(batches) => batches,
            // A stale hint may point past a truncated end.
            Err(_) if !relocated => {
                relocated = true;
                offset = locate(partition, log_index, next).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let before = next;
        for batch in batches.batches() {
            let (entry, placed) = codec::decode(batch)?;
            if placed.log_id.index != next {
                break;
            }
            if !read.entries.is_empty() && read.bytes + batch.len() > max_bytes {
                full = true;
                break;
            }
            read.entries.push(entry);
            read.bytes += batch.len();
            read.next_offset = placed.next_offset;
            offset = placed.next_offset;
            next += 1;
            // A first entry may alone take more than `max_bytes`.
            full = read.bytes >= max_bytes;
            if next == end || full {
                break;
            }
        }
        if next == before && !full {
            // The hint is stale (the log was truncated and rewritten since): search once.
            if relocated {
                return Err(Error::MissingEntry(next));
            }
            relocated = true;
            offset = locate(partition, log_index, next).await?;
        }
    }
    Ok(())
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
///
/// openraft 0.9 makes a reader per replication stream, for one leadership, and lets a
/// stream removed at the leadership's end finish the AppendEntries it is making. A leader
/// never truncates its own log, so a truncation after the reader was made means its
/// leadership is over: what the log holds now may be a newer leader's entries, which must not
/// go out after the old leader's `prev_log_id` (a follower still at the old term would take
/// them, and hold a log no leader has). Such a reader's AppendEntries reads come back empty.
#[derive(Debug, Clone)]
pub struct LogReader {
    partition: Partition,
    log_index: Arc<Mutex<LogIndex>>,
    /// The index after the last read, and its offset.
    cursor: Option<(u64, i64)>,
    /// The log's truncations when the reader was made.
    truncations: u64,
}

impl LogReader {
    pub(crate) fn new(partition: Partition, log_index: Arc<Mutex<LogIndex>>) -> Self {
        let truncations = lock(&log_index).truncations();
        Self {
            partition,
            log_index,
            cursor: None,
            truncations,
        }
    }

    /// Whether the log was truncated since the reader was made.
    fn truncated_since_made(&self) -> bool {
        lock(&self.log_index).truncations() != self.truncations
    }
}

impl LogReader {
    /// Reads `start..end`, from where the last read ended if it ended at `start`.
    async fn read(
        &mut self,
        (start, end): (u64, u64),
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let hint = self
            .cursor
            .filter(|&(index, _)| index == start)
            .map(|(_, offset)| offset);
        let view = LogView::of(&self.log_index);
        let read = read_entries(
            &self.partition,
            &self.log_index,
            view,
            (start, end),
            hint,
            max_bytes,
        )
        .await
        .map_err(|e| storage(StorageIOError::read_logs, &e))?;
        if let Some(last) = read.entries.last() {
            self.cursor = Some((last.log_id.index + 1, read.next_offset));
        }
        Ok(read.entries)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read(range_of(&range), usize::MAX).await
    }

    /// What an AppendEntries carries: at most [`MAX_APPEND_ENTRIES_BYTES`] of entries (or
    /// one larger entry), following entry `start - 1`.
    ///
    /// Empty (which openraft 0.9.25 takes as a heartbeat, and asks again 10 ms later) when
    /// entry `start` is purged, or the reader's leadership is over (see [`LogReader`]). A
    /// live leader's stream never meets either: openraft purges no entry a stream is sending,
    /// and only a leader that lost its leadership has its log truncated.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if self.truncated_since_made() {
            return Ok(Vec::new());
        }
        let entries = self.read((start, end), MAX_APPEND_ENTRIES_BYTES).await?;
        // The store counts a truncation before it touches the partition: unchanged now, every
        // read above saw the log as it was before any truncation.
        if self.truncated_since_made() || entries.first().is_some_and(|e| e.log_id.index != start) {
            return Ok(Vec::new());
        }
        Ok(entries)
    }
}
