//! Where a read or send of an offset falls in a partition's log, as a [`SendRange`]: shared by
//! [`crate::Partition::locate`] (on the caller's thread) and the shard's sends.

use crate::error::{Error, Result};
use crate::send_item::SendRange;
use rill_segment::partition::{BatchRange, ReadLimit};
use rill_segment::{LogError, PartitionLog};

/// What a send or locate asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    pub(crate) offset: i64,
    pub(crate) max_bytes: u64,
    pub(crate) limit: ReadLimit,
    /// For a send: the exact batch bytes expected (see `SendOptions::exact_bytes`).
    pub(crate) exact_bytes: Option<u64>,
}

/// The range `want` covers now in `log`, and the batches' place in their segment (`None` at
/// the end of the log).
pub(crate) fn locate_range(
    log: &PartitionLog,
    want: Want,
) -> Result<(SendRange, Option<BatchRange>)> {
    let offsets = log.offsets();
    let located = log
        .locate(want.offset, want.max_bytes, want.limit)
        .map_err(|e| locate_error(log, e))?;
    let range = SendRange {
        offset: want.offset,
        batch_bytes: located.as_ref().map_or(0, |r| r.len),
        next_offset: located.as_ref().map_or(want.offset, |r| r.next_offset),
        high_watermark: offsets.durable,
        log_start_offset: offsets.log_start,
        log_end_offset: offsets.log_end,
    };
    match want.exact_bytes {
        Some(expected) if expected != range.batch_bytes => Err(Error::RangeChanged {
            expected,
            found: range.batch_bytes,
        }),
        _ => Ok((range, located)),
    }
}

/// The error of a failed `locate`: on a failed partition (which serves only durable data), an
/// offset beyond the durable end is reported as the failure, not as out of range.
pub(crate) fn locate_error(log: &PartitionLog, e: LogError) -> Error {
    match (log.failure(), &e) {
        (Some(reason), LogError::OffsetOutOfRange { offset, .. })
            if *offset > log.offsets().durable =>
        {
            Error::PartitionFailed(reason.clone())
        }
        _ => e.into(),
    }
}
