//! Batch headers read through a window: one read of [`HEADER_WINDOW_BYTES`] serves every
//! header that lies inside it, so walking small batches costs a read per window, not a read
//! per batch.

use super::PartitionLog;
use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::disk;
use crate::error::LogError;
use crate::segment::{FileKind, Segment};

/// Bytes one header read takes (the default index interval: a walk from an index floor to the
/// batch it looks for usually stays inside one window).
pub(crate) const HEADER_WINDOW_BYTES: usize = 4096;

/// The last bytes read of one segment file, from `start`.
pub(crate) struct HeaderWindow {
    buf: [u8; HEADER_WINDOW_BYTES],
    start: u64,
    len: usize,
    /// Bytes of the segment that hold batches: a window never reaches past them.
    readable: u64,
}

impl HeaderWindow {
    /// An empty window over a segment with `readable` bytes of batches.
    pub(crate) fn new(readable: u64) -> Self {
        Self {
            buf: [0; HEADER_WINDOW_BYTES],
            start: 0,
            len: 0,
            readable,
        }
    }

    /// The window's bytes for `position..position + HEADER_BYTES`, if it holds them.
    fn cached(&self, position: u64) -> Option<&[u8]> {
        let from = usize::try_from(position.checked_sub(self.start)?).ok()?;
        self.buf[..self.len].get(from..from.checked_add(HEADER_BYTES)?)
    }
}

impl PartitionLog {
    /// The header of the batch at `position` of `segment`, which must start at offset
    /// `expected`: offsets are contiguous, so anything else is damage, reported with the file
    /// range. Read through `window`.
    pub(crate) fn header_in(
        &self,
        segment: &Segment,
        window: &mut HeaderWindow,
        position: u64,
        expected: i64,
    ) -> Result<BatchHeader, LogError> {
        let path = || self.path_of(segment.base_offset, FileKind::Log);
        let range = position..position + HEADER_BYTES as u64;
        if window.cached(position).is_none() {
            let len = window
                .readable
                .saturating_sub(position)
                .clamp(HEADER_BYTES as u64, HEADER_WINDOW_BYTES as u64)
                as usize;
            window.len = 0;
            disk::read_exact_at(
                self.disk.as_ref(),
                segment.log,
                position,
                &mut window.buf[..len],
            )
            .map_err(|e| {
                LogError::corrupt(path(), range.clone(), -1, format!("read error: {e}"))
            })?;
            window.start = position;
            window.len = len;
        }
        let bytes = window
            .cached(position)
            .ok_or_else(|| LogError::corrupt(path(), range.clone(), expected, "header not read"))?;
        let header = BatchHeader::parse(bytes)?;
        header
            .check_shape()
            .map_err(|e| LogError::corrupt(path(), range.clone(), expected, e.to_string()))?;
        if header.base_offset != expected {
            let detail = format!(
                "batch has base offset {}, expected {expected}",
                header.base_offset
            );
            return Err(LogError::corrupt(path(), range, expected, detail));
        }
        Ok(header)
    }
}
