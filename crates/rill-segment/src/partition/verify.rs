//! A full consistency check of a partition, for tests and the `rill verify` tool.

use super::PartitionLog;
use crate::error::LogError;
use crate::scan::{Scanner, Step};
use crate::segment::{FileKind, Segment};

/// What [`PartitionLog::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Batches checked.
    pub batches: u64,
    /// Bytes of batches checked.
    pub bytes: u64,
    /// Index entries checked.
    pub index_entries: u64,
}

impl PartitionLog {
    /// Reads every batch of every segment and checks: valid CRC and header, contiguous offsets
    /// across segments, every offset-index entry at the start of the batch with that base
    /// offset, every time-index entry matching the largest timestamp up to its batch, and each
    /// file's length equal to its batches (or a zero preallocated tail).
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        let mut report = VerifyReport::default();
        let mut expected = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.log_start_offset);
        for segment in self.segments.values() {
            let path = self.path_of(segment.base_offset, FileKind::Log);
            if segment.base_offset != expected {
                return Err(LogError::corrupt(
                    path,
                    0..0,
                    expected,
                    "segment does not continue the previous one",
                ));
            }
            let file_len = self
                .disk
                .file_len(segment.log)
                .map_err(|e| LogError::io("stat", path.clone(), e))?;
            let (batches, index_entries) = self.verify_segment(segment, file_len)?;
            report.segments += 1;
            report.batches += batches;
            report.bytes += segment.size_bytes;
            report.index_entries += index_entries;
            expected = segment.next_offset;
        }
        if expected != self.next_offset {
            let path = self.dir.clone();
            return Err(LogError::corrupt(
                path,
                0..0,
                expected,
                "segments end before the log end",
            ));
        }
        Ok(report)
    }

    fn verify_segment(&self, segment: &Segment, file_len: u64) -> Result<(u64, u64), LogError> {
        let path = self.path_of(segment.base_offset, FileKind::Log);
        let bad = |range: std::ops::Range<u64>, offset: i64, detail: String| {
            Err(LogError::corrupt(path.clone(), range, offset, detail))
        };
        let mut scanner = Scanner::new(self.disk.as_ref(), segment.log, 0, segment.size_bytes);
        let indexes = self.indexes_of(segment)?;
        let mut offset_entries = indexes.offset.entries().peekable();
        let mut time_entries = indexes.time.entries().peekable();
        let mut next = segment.base_offset;
        let mut max_timestamp = i64::MIN;
        let mut batches = 0;
        // Bounded: each step consumes a batch or ends the loop.
        loop {
            match scanner.next(next, self.config.segment_bytes) {
                Step::Batch { header, position } => {
                    max_timestamp = max_timestamp.max(header.max_timestamp);
                    if let Some(e) = offset_entries.peek() {
                        let entry_offset = segment.base_offset + i64::from(e.relative_offset);
                        if u64::from(e.position) == position {
                            if entry_offset != header.base_offset {
                                return bad(
                                    position..position,
                                    entry_offset,
                                    "offset index entry names the wrong offset".into(),
                                );
                            }
                            offset_entries.next();
                        } else if u64::from(e.position) < position {
                            return bad(
                                u64::from(e.position)..position,
                                entry_offset,
                                "offset index entry is not at a batch start".into(),
                            );
                        }
                    }
                    while let Some(e) = time_entries.peek() {
                        let entry_offset = segment.base_offset + i64::from(e.relative_offset);
                        if entry_offset > header.last_offset() {
                            break;
                        }
                        if entry_offset != header.last_offset()
                            || e.timestamp != max_timestamp
                            || e.timestamp != header.max_timestamp
                        {
                            return bad(
                                position..position,
                                entry_offset,
                                "time index entry disagrees with the batches".into(),
                            );
                        }
                        time_entries.next();
                    }
                    next = header.next_offset();
                    batches += 1;
                }
                Step::End => break,
                Step::Stop(stop) => return bad(stop.position..stop.damage_end, next, stop.detail),
            }
        }
        if next != segment.next_offset {
            return bad(
                scanner.position()..scanner.position(),
                next,
                format!(
                    "segment ends at offset {next}, expected {}",
                    segment.next_offset
                ),
            );
        }
        if offset_entries.next().is_some() || time_entries.next().is_some() {
            return bad(
                segment.size_bytes..file_len,
                next,
                "index entries point past the last batch".into(),
            );
        }
        if file_len != segment.size_bytes {
            let mut tail = Scanner::new(
                self.disk.as_ref(),
                segment.log,
                segment.size_bytes,
                file_len,
            );
            let zero_tail = file_len > segment.size_bytes
                && matches!(tail.next(next, 0), Step::Stop(ref s) if s.zero_tail && s.position == segment.size_bytes);
            if !zero_tail {
                return bad(
                    segment.size_bytes..file_len,
                    next,
                    "file holds bytes past its last batch".into(),
                );
            }
        }
        let entries = (indexes.offset.len() + indexes.time.len()) as u64;
        Ok((batches, entries))
    }
}
