//! Reads: locate whole batches by offset or timestamp, read and check them.

use super::PartitionLog;
use super::headers::HeaderWindow;
use super::window::ReadPlan;
use crate::batch::{self, BatchHeader, Compression};
use crate::disk::{self, FileId};
use crate::error::LogError;
use crate::segment::{FileKind, Segment};
use std::path::Path;

/// How far reads may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadLimit {
    /// Up to the end of completed writes.
    #[default]
    Written,
    /// Up to the durable offset (a single node's high watermark).
    Durable,
}

/// A run of whole batches in one segment file: what a read copies or a send splices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    /// The segment's base offset.
    pub segment_base_offset: i64,
    /// The segment's log file.
    pub file: FileId,
    /// Byte position of the first batch.
    pub position: u64,
    /// Bytes of whole batches.
    pub len: u64,
    /// Base offset of the first batch (at or below the offset asked for).
    pub first_offset: i64,
    /// Offset after the last batch: where the next read starts.
    pub next_offset: i64,
}

/// Batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole, CRC-checked batches, back to back. Empty at the end of the log.
    pub bytes: Vec<u8>,
    /// Where the next read starts.
    pub next_offset: i64,
    /// The durable offset when the read was made.
    pub high_watermark: i64,
    /// The end of the written log when the read was made.
    pub log_end_offset: i64,
}

impl PartitionLog {
    pub(super) fn read_end(&self, limit: ReadLimit) -> i64 {
        // A failed partition serves only what is durable: anything else may vanish.
        if limit == ReadLimit::Durable || self.failed.is_some() {
            self.durable()
        } else {
            self.written_offset
        }
    }

    /// Finds the whole batches to serve for a fetch at `offset`: starting with the batch that
    /// contains it, adding batches while they fit in `max_bytes` (at least one, whatever its
    /// size), within one segment and below the read limit. `None` at the end of the log.
    pub fn locate(
        &self,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
    ) -> Result<Option<BatchRange>, LogError> {
        let Some((plan, index)) = self.plan_with_index(offset, max_bytes, limit)? else {
            return Ok(None);
        };
        let Some(segment) = self.segments.get(&plan.segment_base_offset) else {
            return Ok(None);
        };
        let mut window = HeaderWindow::new(plan.readable);
        let (start, first) = self.first_batch(segment, &mut window, &plan)?;
        let range = BatchRange {
            segment_base_offset: segment.base_offset,
            file: segment.log,
            position: start,
            len: first.total_bytes(),
            first_offset: first.base_offset,
            next_offset: first.next_offset(),
        };
        // Index entries are batch boundaries: jump to the last one within both limits rather
        // than read the headers before it. The walk below reads the header the entry points
        // at and checks its offset, so a wrong entry is caught; it then walks from the first
        // batch instead.
        if let Some((jump_offset, jump_position)) =
            index.floor_within(plan.end_offset, start.saturating_add(max_bytes))
            && jump_position > start + range.len
        {
            let mut jumped = range;
            jumped.len = jump_position - start;
            jumped.next_offset = jump_offset;
            if let Ok(extended) = self.extend_range(segment, &mut window, jumped, &plan) {
                return Ok(Some(extended));
            }
        }
        self.extend_range(segment, &mut window, range, &plan)
            .map(Some)
    }

    /// The batch holding `plan.offset`: its position and header, walked from the index floor.
    fn first_batch(
        &self,
        segment: &Segment,
        window: &mut HeaderWindow,
        plan: &ReadPlan,
    ) -> Result<(u64, BatchHeader), LogError> {
        let (mut expected, mut position) = (plan.floor_offset, plan.floor_position);
        // Bounded: each step moves past one batch of at least HEADER_BYTES within the segment.
        loop {
            if position >= plan.readable {
                let path = self.path_of(segment.base_offset, FileKind::Log);
                return Err(LogError::corrupt(
                    path,
                    position..plan.readable,
                    plan.offset,
                    "offset not found in its segment",
                ));
            }
            let header = self.header_in(segment, window, position, expected)?;
            if header.next_offset() > plan.offset {
                return Ok((position, header));
            }
            expected = header.next_offset();
            position += header.total_bytes();
        }
    }

    /// `range` grown by the batches after it while they fit in `plan.max_bytes` and end at or
    /// below `plan.end_offset`.
    fn extend_range(
        &self,
        segment: &Segment,
        window: &mut HeaderWindow,
        mut range: BatchRange,
        plan: &ReadPlan,
    ) -> Result<BatchRange, LogError> {
        // Bounded by the segment size.
        while range.position + range.len < plan.readable {
            let header = self.header_in(
                segment,
                window,
                range.position + range.len,
                range.next_offset,
            )?;
            if header.next_offset() > plan.end_offset
                || range.len + header.total_bytes() > plan.max_bytes
            {
                break;
            }
            range.len += header.total_bytes();
            range.next_offset = header.next_offset();
        }
        Ok(range)
    }

    /// Reads whole batches from `offset` (see [`PartitionLog::locate`]), checking every batch's
    /// CRC and offset: damaged bytes give an error naming the range, never wrong data.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
    ) -> Result<ReadResult, LogError> {
        let high_watermark = self.durable();
        let log_end_offset = self.read_end(ReadLimit::Written);
        let Some(range) = self.locate(offset, max_bytes, limit)? else {
            return Ok(ReadResult {
                bytes: Vec::new(),
                next_offset: offset,
                high_watermark,
                log_end_offset,
            });
        };
        let bytes = self.read_range(&range)?;
        Ok(ReadResult {
            bytes,
            next_offset: range.next_offset,
            high_watermark,
            log_end_offset,
        })
    }

    /// Reads the bytes of `range` and checks each batch in it.
    pub fn read_range(&self, range: &BatchRange) -> Result<Vec<u8>, LogError> {
        let path = || self.path_of(range.segment_base_offset, FileKind::Log);
        let mut bytes = vec![0u8; range.len as usize];
        disk::read_exact_at(self.disk.as_ref(), range.file, range.position, &mut bytes).map_err(
            |e| {
                LogError::corrupt(
                    path(),
                    range.position..range.position + range.len,
                    range.first_offset,
                    format!("read error: {e}"),
                )
            },
        )?;
        self.check_read(range, &bytes)?;
        Ok(bytes)
    }

    /// Checks bytes an executor read for `range`: whole batches, each CRC-valid, with offsets
    /// contiguous from `range.first_offset`. Damage gives [`LogError::Corrupt`] naming the file
    /// range, so wrong bytes are never served.
    pub fn check_read(&self, range: &BatchRange, bytes: &[u8]) -> Result<(), LogError> {
        range.check(&self.dir, bytes)
    }

    /// The offset of the first record whose timestamp is at or above `timestamp_ms`, Kafka's
    /// `ListOffsets` by time: the first batch whose `maxTimestamp` reaches it, then the first
    /// record in it that does (a compressed or log-append-time batch answers with its base
    /// offset).
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<i64>, LogError> {
        let end = self.read_end(ReadLimit::Written);
        let first = self
            .segments
            .range(..=self.log_start_offset)
            .next_back()
            .map_or(self.log_start_offset, |(base, _)| *base);
        for segment in self.segments.range(first..).map(|(_, s)| s) {
            if segment.size_bytes == 0 || self.max_timestamp_of(segment)? < timestamp_ms {
                continue;
            }
            let indexes = self.indexes_of(segment)?;
            let start_offset = indexes.time.lookup(timestamp_ms).max(self.log_start_offset);
            let (mut expected, position) = indexes.offset.lookup(start_offset);
            let mut position = u64::from(position);
            let mut window = HeaderWindow::new(segment.size_bytes);
            // Bounded by the segment size: each step moves past one batch.
            while position < segment.size_bytes {
                let header = self.header_in(segment, &mut window, position, expected)?;
                expected = header.next_offset();
                if header.next_offset() > end {
                    return Ok(None);
                }
                if header.next_offset() > self.log_start_offset
                    && header.max_timestamp >= timestamp_ms
                    && let Some(found) =
                        self.first_record_at_or_after(segment, position, &header, timestamp_ms)?
                {
                    return Ok(Some(found));
                }
                position += header.total_bytes();
            }
        }
        Ok(None)
    }

    fn first_record_at_or_after(
        &self,
        segment: &Segment,
        position: u64,
        header: &BatchHeader,
        timestamp_ms: i64,
    ) -> Result<Option<i64>, LogError> {
        // A compressed batch's records are not decoded here; a log-append-time batch's all
        // carry its maxTimestamp, which reaches the target.
        if header.attributes.compression() != Some(Compression::None)
            || header.attributes.is_log_append_time()
        {
            return Ok(Some(header.base_offset.max(self.log_start_offset)));
        }
        let range = BatchRange {
            segment_base_offset: segment.base_offset,
            file: segment.log,
            position,
            len: header.total_bytes(),
            first_offset: header.base_offset,
            next_offset: header.next_offset(),
        };
        let bytes = self.read_range(&range)?;
        let records = batch::records(&bytes)?;
        for record in records {
            let Ok(record) = record else { break };
            if record.timestamp >= timestamp_ms && record.offset >= self.log_start_offset {
                return Ok(Some(record.offset));
            }
        }
        Ok(None)
    }
}

impl BatchRange {
    /// Checks bytes read for this range of the partition in `dir`: whole batches, each
    /// CRC-valid, with offsets contiguous from `first_offset`. Needs no access to the log, so a
    /// reader checks on its own thread.
    pub fn check(&self, dir: &Path, bytes: &[u8]) -> Result<(), LogError> {
        let path = || {
            dir.join(crate::segment::file_name(
                self.segment_base_offset,
                FileKind::Log,
            ))
        };
        if bytes.len() as u64 != self.len {
            return Err(LogError::corrupt(
                path(),
                self.position..self.position + self.len,
                self.first_offset,
                format!("read {} bytes, expected {}", bytes.len(), self.len),
            ));
        }
        check_batches(bytes, self.first_offset).map_err(|(at, len, offset, detail)| {
            let start = self.position + at;
            LogError::corrupt(path(), start..start + len, offset, detail)
        })
    }
}

/// Checks that `bytes` holds whole valid batches with contiguous offsets from `first_offset`.
/// On failure: (position in `bytes`, length of the bad range, expected offset, detail).
pub(crate) fn check_batches(
    bytes: &[u8],
    first_offset: i64,
) -> Result<(), (u64, u64, i64, String)> {
    let mut at = 0usize;
    let mut expected = first_offset;
    // Bounded: each iteration consumes one batch of at least HEADER_BYTES.
    while at < bytes.len() {
        let rest = &bytes[at..];
        let fail = |len: usize, detail: String| Err((at as u64, len as u64, expected, detail));
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => return fail(rest.len(), e.to_string()),
        };
        let total = header.total_bytes();
        if header.batch_length < batch::MIN_BATCH_LENGTH || total > rest.len() as u64 {
            return fail(
                rest.len(),
                format!("batch length {} runs past the read", header.batch_length),
            );
        }
        if let Err(e) = batch::check_stored(&rest[..total as usize], expected) {
            return fail(total as usize, e.to_string());
        }
        expected = header.next_offset();
        at += total as usize;
    }
    Ok(())
}
