//! Errors of the segment layer.

use crate::batch::BatchError;
use std::io;
use std::ops::Range;
use std::path::PathBuf;

/// Damage found in data the log had acknowledged as durable (below the recovery point), or read
/// back wrong: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt data in {} bytes {}..{} (near offset {offset}): {detail}", path.display(), byte_range.start, byte_range.end)]
pub struct Corruption {
    /// The damaged file.
    pub path: PathBuf,
    /// The damaged byte range in it.
    pub byte_range: Range<u64>,
    /// The offset expected at the start of the range.
    pub offset: i64,
    /// What is wrong.
    pub detail: String,
}

/// Why a partition stopped accepting appends (fail-stop after an I/O error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed on {}: {}", path.display(), describe(*kind, *os_error))]
pub struct FailReason {
    /// The operation that failed.
    pub op: &'static str,
    /// The file it failed on.
    pub path: PathBuf,
    /// The error kind.
    pub kind: io::ErrorKind,
    /// The raw OS error, if any.
    pub os_error: Option<i32>,
}

/// The system's message for an errno ("No space left on device (os error 28)"), else the kind.
fn describe(kind: io::ErrorKind, os_error: Option<i32>) -> String {
    match os_error {
        Some(errno) => io::Error::from_raw_os_error(errno).to_string(),
        None => kind.to_string(),
    }
}

impl FailReason {
    pub(crate) fn new(op: &'static str, path: PathBuf, error: &io::Error) -> Self {
        Self {
            op,
            path,
            kind: error.kind(),
            os_error: error.raw_os_error(),
        }
    }
}

/// Errors of [`crate::partition::PartitionLog`] and recovery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The batch failed validation; nothing was written.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Acknowledged data is damaged. The partition refuses to open (unless repair was asked
    /// for) and reads of the range fail; it is never silently truncated or served.
    #[error(transparent)]
    Corrupt(Box<Corruption>),
    /// The offset is outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Offset after the last readable batch.
        log_end: i64,
    },
    /// The partition has failed (an fsync or write error) and accepts nothing more until it is
    /// reopened, which recovers from what is durable.
    #[error("partition failed, reopen to recover: {0}")]
    Failed(FailReason),
    /// A sync is in flight on this partition: at most one is, and changes to its files wait for
    /// it.
    #[error("a sync is already in flight on this partition")]
    SyncInFlight,
    /// The sync ticket was not issued by this partition, or not for the sync in flight.
    #[error("the sync ticket belongs to another partition or sync")]
    ForeignSync,
    /// The partition holds `max_unsynced_bytes` of unsynced data: a sync must complete
    /// ([`crate::partition::PartitionLog::begin_sync`]) before more is appended. Check
    /// [`crate::partition::PartitionLog::must_sync_before`] first to keep the batch.
    #[error("too much unsynced data: sync before appending more")]
    SyncRequired,
    /// A compaction was built for segments that changed before it could be installed (a
    /// truncation, retention or another compaction meanwhile): nothing changed; plan again.
    #[error("the segments compacted changed meanwhile")]
    CompactionStale,
    /// The dirty part's first segment has more keys than the cleaner's key map holds: raise
    /// `key_map_bytes`.
    #[error("a segment holds more keys than the compaction key map's {max_keys}")]
    KeyMapTooSmall {
        /// Keys the map holds.
        max_keys: usize,
    },
    /// An idempotent producer's batch is out of sequence or from a fenced epoch; nothing was
    /// written.
    #[error(transparent)]
    Sequence(#[from] crate::producers::SequenceError),
    /// The offset space (`i64`) or a segment's relative offsets would overflow.
    #[error("offset overflow")]
    OffsetOverflow,
    /// A setting is out of range.
    #[error("invalid config: {0}")]
    Config(String),
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: PathBuf,
        byte_range: Range<u64>,
        offset: i64,
        detail: impl Into<String>,
    ) -> Self {
        Self::Corrupt(Box::new(Corruption {
            path,
            byte_range,
            offset,
            detail: detail.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_reason_reads_as_the_system_describes_the_errno() {
        let e = io::Error::from_raw_os_error(24);
        let reason = FailReason::new("create segment", PathBuf::from("/data/t-0/x.log"), &e);
        let text = reason.to_string();
        assert!(
            text.starts_with("create segment failed on /data/t-0/x.log: "),
            "{text}"
        );
        assert!(text.contains("Too many open files (os error 24)"), "{text}");
        let other = FailReason::new("write", PathBuf::from("f"), &io::Error::other("boom"));
        assert_eq!(other.to_string(), "write failed on f: other error");
    }
}
