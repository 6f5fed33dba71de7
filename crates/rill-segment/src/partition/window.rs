//! Reads planned under the partition's lock and carried out by the caller without it: the
//! lock gives the segment, the index floor at or below the offset, the bytes readable and the
//! read end; the caller reads a window of the file from the floor in one read and walks the
//! batch headers in memory ([`walk`], no I/O). This replaces a `pread` per batch header.

use super::PartitionLog;
use super::read::{BatchRange, ReadLimit};
use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::disk::FileId;
use crate::error::LogError;
use crate::index::OffsetIndex;
use std::sync::Arc;

/// Where a read of an offset starts, as planned under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// The segment's base offset.
    pub segment_base_offset: i64,
    /// The segment's log file.
    pub file: FileId,
    /// The offset asked for.
    pub offset: i64,
    /// The index entry at or below it: a batch boundary, (offset, byte position).
    pub floor_offset: i64,
    /// Byte position of that batch.
    pub floor_position: u64,
    /// Bytes of the segment holding whole visible batches when planned.
    pub readable: u64,
    /// The read end (written or durable offset) when planned.
    pub end_offset: i64,
    /// The most batch bytes to return (at least one batch, whatever its size).
    pub max_bytes: u64,
}

impl ReadPlan {
    /// The bytes from the floor a first read should take: enough for the batches asked for
    /// after an index interval of batches to skip, within the segment.
    pub fn first_window(&self, index_interval_bytes: u64) -> u64 {
        let want = self
            .max_bytes
            .saturating_add(index_interval_bytes)
            .saturating_add(HEADER_BYTES as u64);
        want.min(self.readable.saturating_sub(self.floor_position))
    }
}

/// What a window of bytes from the floor gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walked {
    /// The batches to return: `range`, at `skip` bytes into the window.
    Found { range: BatchRange, skip: u64 },
    /// The window must reach `window_bytes` from the floor to decide.
    NeedMore { window_bytes: u64 },
    /// A header is not what the plan implies (damage, or a truncation since the plan): the
    /// caller must take the authoritative path.
    Mismatch,
}

/// Walks the batch headers in `window` (the file's bytes from `plan.floor_position`) and finds
/// the batches a read returns, by the rules of [`PartitionLog::locate`].
pub fn walk(plan: &ReadPlan, window: &[u8]) -> Walked {
    let available = window.len() as u64;
    let header_at = |at: u64| -> Option<BatchHeader> {
        let bytes = window.get(at as usize..(at as usize).checked_add(HEADER_BYTES)?)?;
        BatchHeader::parse(bytes).ok()
    };
    let need = |upto: u64| Walked::NeedMore {
        window_bytes: upto.min(plan.readable.saturating_sub(plan.floor_position)),
    };
    let mut expected = plan.floor_offset;
    let mut at = 0u64;
    // Bounded by the window: each step moves past one batch of at least HEADER_BYTES.
    let first = loop {
        if plan.floor_position + at >= plan.readable {
            return Walked::Mismatch;
        }
        if at + HEADER_BYTES as u64 > available {
            return need(at + HEADER_BYTES as u64);
        }
        let Some(header) = header_at(at) else {
            return Walked::Mismatch;
        };
        if header.base_offset != expected || header.check_shape().is_err() {
            return Walked::Mismatch;
        }
        if header.next_offset() > plan.offset {
            break header;
        }
        expected = header.next_offset();
        at += header.total_bytes();
    };
    let start = at;
    let mut len = first.total_bytes();
    if plan.floor_position + start + len > plan.readable {
        return Walked::Mismatch;
    }
    if start + len > available {
        return need(start + len + plan.max_bytes.min(1 << 20));
    }
    let mut next_offset = first.next_offset();
    // Bounded by the segment size.
    while plan.floor_position + start + len < plan.readable {
        let at = start + len;
        if at + HEADER_BYTES as u64 > available {
            if len >= plan.max_bytes {
                break;
            }
            return need(at + HEADER_BYTES as u64 + (plan.max_bytes - len));
        }
        let Some(header) = header_at(at) else {
            return Walked::Mismatch;
        };
        if header.base_offset != next_offset || header.check_shape().is_err() {
            return Walked::Mismatch;
        }
        if header.next_offset() > plan.end_offset || len + header.total_bytes() > plan.max_bytes {
            break;
        }
        if at + header.total_bytes() > available {
            return need(at + header.total_bytes());
        }
        len += header.total_bytes();
        next_offset = header.next_offset();
    }
    Walked::Found {
        range: BatchRange {
            segment_base_offset: plan.segment_base_offset,
            file: plan.file,
            position: plan.floor_position + start,
            len,
            first_offset: first.base_offset,
            next_offset,
        },
        skip: start,
    }
}

impl PartitionLog {
    /// Plans a read of `offset` (see [`PartitionLog::locate`] for the rules and errors):
    /// `None` at the end of the log.
    pub fn plan_read(
        &self,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
    ) -> Result<Option<ReadPlan>, LogError> {
        Ok(self
            .plan_with_index(offset, max_bytes, limit)?
            .map(|(plan, _)| plan))
    }

    /// [`PartitionLog::plan_read`], with the segment's offset index it looked the floor up in
    /// (so [`PartitionLog::locate`] does not look it up again).
    pub(super) fn plan_with_index(
        &self,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
    ) -> Result<Option<(ReadPlan, Arc<OffsetIndex>)>, LogError> {
        if self.closed {
            return Err(LogError::Config("the log is closed".into()));
        }
        let end = self.read_end(limit);
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: end,
            });
        }
        if offset == end {
            return Ok(None);
        }
        let Some(segment) = self.segments.range(..=offset).next_back().map(|(_, s)| s) else {
            return Ok(None);
        };
        let index = self.indexes_of(segment)?.offset;
        let (floor_offset, floor_position) = index.lookup(offset);
        let plan = ReadPlan {
            segment_base_offset: segment.base_offset,
            file: segment.log,
            offset,
            floor_offset,
            floor_position: u64::from(floor_position),
            readable: segment.size_bytes,
            end_offset: end,
            max_bytes,
        };
        Ok(Some((plan, index)))
    }

    /// The bytes between sparse offset-index entries.
    pub fn index_interval_bytes(&self) -> u64 {
        self.config.index_interval_bytes
    }
}
