//! Sequential validation of a segment's batches, shared by recovery, truncation and verify.
//! Memory is bounded by one read window, whatever the batch sizes: the CRC is computed as the
//! bytes stream past.

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::disk::{self, Disk, FileId};
use crate::segment::Segment;
use std::io;

/// Bytes read per call while scanning.
const WINDOW_BYTES: usize = 256 * 1024;
/// How far ahead of its reads a scan asks the kernel to read (in the background, several
/// requests in flight), renewed when half of it is consumed: a scan of a cold file then runs
/// at the device's sequential rate instead of one synchronous 256 KiB read at a time.
const READ_AHEAD_BYTES: u64 = 8 << 20;

/// Reads a segment file forward through a bounded window.
#[derive(Debug)]
pub struct Scanner<'a> {
    disk: &'a dyn Disk,
    file: FileId,
    end: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
    /// The end of the range asked to be read ahead so far.
    read_ahead_to: u64,
}

/// Where a scan stopped short of the end.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Position of the first byte not accepted.
    pub position: u64,
    /// End of the damaged range (the batch's declared end, or the scan end).
    pub damage_end: u64,
    /// What is wrong.
    pub detail: String,
    /// Every byte from `position` to the scan end is zero (a preallocated or zero-filled tail).
    pub zero_tail: bool,
    /// The stop was a read error, not bad bytes.
    pub read_error: bool,
}

/// One step of a scan.
#[derive(Debug)]
pub enum Step {
    /// A valid batch at the expected offset; the scanner moved past it.
    Batch { header: BatchHeader, position: u64 },
    /// Reached the scan end exactly.
    End,
    /// Stopped at invalid bytes or a read error.
    Stop(Stop),
}

impl<'a> Scanner<'a> {
    pub fn new(disk: &'a dyn Disk, file: FileId, start: u64, end: u64) -> Self {
        Self {
            disk,
            file,
            end,
            pos: start,
            window: Vec::new(),
            window_start: start,
            read_ahead_to: start,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The bytes `[pos, pos + len)`, `len <= WINDOW_BYTES`, from the window or a fresh read.
    fn bytes(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let have = self.window_start..self.window_start + self.window.len() as u64;
        if pos < have.start || pos + len as u64 > have.end {
            let want = (WINDOW_BYTES as u64).max(len as u64).min(self.end - pos) as usize;
            self.read_ahead(pos);
            self.window.resize(want, 0);
            disk::read_exact_at(self.disk, self.file, pos, &mut self.window)?;
            self.window_start = pos;
        }
        let at = (pos - self.window_start) as usize;
        Ok(&self.window[at..at + len])
    }

    /// Keeps a read-ahead of [`READ_AHEAD_BYTES`] in front of `pos` (advice: errors ignored).
    fn read_ahead(&mut self, pos: u64) {
        if self.read_ahead_to >= pos.saturating_add(READ_AHEAD_BYTES / 2).min(self.end) {
            return;
        }
        let from = self.read_ahead_to.max(pos);
        let to = pos.saturating_add(READ_AHEAD_BYTES).min(self.end);
        if to > from {
            let _ = self.disk.read_ahead(self.file, from, to - from);
        }
        self.read_ahead_to = to;
    }

    /// Validates the batch at the current position, which must have base offset `expected`.
    pub fn next(&mut self, expected: i64, max_batch_bytes: u64) -> Step {
        match self.try_next(expected, max_batch_bytes) {
            Ok(step) => step,
            Err(e) => Step::Stop(Stop {
                position: self.pos,
                damage_end: self.end,
                detail: format!("read error: {e}"),
                zero_tail: false,
                read_error: true,
            }),
        }
    }

    fn try_next(&mut self, expected: i64, max_batch_bytes: u64) -> io::Result<Step> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Step::End);
        }
        let remaining = self.end - pos;
        if remaining < HEADER_BYTES as u64 {
            return self.stop(
                pos,
                self.end,
                format!("{remaining} bytes, shorter than a batch header"),
            );
        }
        let header = BatchHeader::parse(self.bytes(pos, HEADER_BYTES)?)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if let Err(e) = header.check_shape() {
            return self.stop(pos, self.end, e.to_string());
        }
        let total = header.total_bytes();
        let damage_end = pos + total.min(remaining);
        if header.base_offset != expected {
            let detail = format!(
                "batch has base offset {}, expected {expected}",
                header.base_offset
            );
            return self.stop(pos, damage_end, detail);
        }
        if total > remaining {
            return self.stop(
                pos,
                self.end,
                format!("batch of {total} bytes runs past the end"),
            );
        }
        if total > max_batch_bytes {
            return self.stop(
                pos,
                damage_end,
                format!("batch of {total} bytes exceeds the limit"),
            );
        }
        let mut crc = 0u32;
        let mut at = pos + batch::field::ATTRIBUTES as u64;
        // Bounded: each iteration consumes up to WINDOW_BYTES of a batch at most total long.
        while at < pos + total {
            let len = (pos + total - at).min(WINDOW_BYTES as u64) as usize;
            crc = crc32c::crc32c_append(crc, self.bytes(at, len)?);
            at += len as u64;
        }
        if crc != header.crc {
            let detail = format!(
                "CRC mismatch: stored {:#010x}, computed {crc:#010x}",
                header.crc
            );
            return self.stop(pos, damage_end, detail);
        }
        self.pos = pos + total;
        Ok(Step::Batch {
            header,
            position: pos,
        })
    }

    fn stop(&mut self, position: u64, damage_end: u64, detail: String) -> io::Result<Step> {
        let zero_tail = self.is_zero_from(position)?;
        Ok(Step::Stop(Stop {
            position,
            damage_end,
            detail,
            zero_tail,
            read_error: false,
        }))
    }

    fn is_zero_from(&mut self, mut pos: u64) -> io::Result<bool> {
        // Bounded by the file: each iteration advances by up to WINDOW_BYTES.
        while pos < self.end {
            let len = (self.end - pos).min(WINDOW_BYTES as u64) as usize;
            if self.bytes(pos, len)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += len as u64;
        }
        Ok(true)
    }
}

/// The result of scanning a whole segment from its start.
pub(crate) struct Rebuilt {
    /// The segment with its size, next offset, indexes and timestamps rebuilt from the batches.
    pub segment: Segment,
    /// Why the scan stopped before `end`, if it did.
    pub stop: Option<Stop>,
}

/// Scans the segment file `file` of `base_offset` over `[0, end)` and rebuilds its state.
pub(crate) fn rebuild_segment(
    disk: &dyn Disk,
    file: FileId,
    base_offset: i64,
    end: u64,
    config: &crate::config::LogConfig,
    now_ms: i64,
) -> Rebuilt {
    let mut segment = Segment::new(base_offset, file, config.max_index_entries, now_ms);
    let mut scanner = Scanner::new(disk, file, 0, end);
    let max_batch = config.segment_bytes;
    // Bounded: every step consumes a batch of at least HEADER_BYTES or ends the loop.
    loop {
        match scanner.next(segment.next_offset, max_batch) {
            Step::Batch { header, .. } => segment.push_batch(
                &header,
                config.index_interval_bytes,
                config.max_index_entries,
            ),
            Step::End => {
                return Rebuilt {
                    segment,
                    stop: None,
                };
            }
            Step::Stop(stop) => {
                return Rebuilt {
                    segment,
                    stop: Some(stop),
                };
            }
        }
    }
}

/// The position after the last non-zero byte of `file` below `len` (0 if all are zero): where
/// a segment's written bytes end when a preallocated tail of zeros follows them.
pub(crate) fn data_end(disk: &dyn Disk, file: FileId, len: u64) -> io::Result<u64> {
    let mut chunk = vec![0u8; WINDOW_BYTES];
    let mut end = len;
    // Bounded by the file: each iteration moves back by up to WINDOW_BYTES.
    while end > 0 {
        let n = end.min(WINDOW_BYTES as u64) as usize;
        let start = end - n as u64;
        disk::read_exact_at(disk, file, start, &mut chunk[..n])?;
        if let Some(last) = chunk[..n].iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether `[from, end)` of `file` holds a valid batch (shape, CRC) with a base offset above
/// `min_offset` that ends after byte `must_end_after`. Used when recovery finds damage: valid
/// later data further from the damage than a crash can tear proves the damage hit data that had
/// been synced. Every byte position is a candidate (damage can shift alignment); a candidate
/// costs one byte compare unless its magic matches. Bounded by the file size.
pub(crate) fn valid_batch_ending_after(
    disk: &dyn Disk,
    file: FileId,
    from: u64,
    end: u64,
    min_offset: i64,
    must_end_after: u64,
) -> io::Result<bool> {
    let mut chunk = vec![0u8; WINDOW_BYTES];
    let mut start = from;
    // Chunks overlap by a header so no candidate straddles two reads unseen.
    while start + HEADER_BYTES as u64 <= end {
        let len = (end - start).min(WINDOW_BYTES as u64) as usize;
        disk::read_exact_at(disk, file, start, &mut chunk[..len])?;
        let last_candidate = len - HEADER_BYTES;
        for at in 0..=last_candidate {
            if chunk[at + batch::field::MAGIC] != batch::MAGIC_V2 as u8 {
                continue;
            }
            let Ok(header) = BatchHeader::parse(&chunk[at..]) else {
                continue;
            };
            let position = start + at as u64;
            let batch_end = position + header.total_bytes();
            if header.check_shape().is_err()
                || header.base_offset <= min_offset
                || batch_end > end
                || batch_end <= must_end_after
            {
                continue;
            }
            let mut scanner = Scanner::new(disk, file, position, end);
            if matches!(
                scanner.next(header.base_offset, end - position),
                Step::Batch { .. }
            ) {
                return Ok(true);
            }
        }
        start += (last_candidate + 1) as u64;
    }
    Ok(false)
}
