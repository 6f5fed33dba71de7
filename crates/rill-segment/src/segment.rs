//! Segment files and the in-memory state of one segment.
//!
//! A segment is three files named by its base offset, zero-padded to 20 digits:
//! `00000000000000368769.log`, `.index` and `.timeindex` (Kafka's names).

use crate::batch::BatchHeader;
use crate::disk::FileId;
use crate::index::{OffsetIndex, SegmentIndexes, TimeIndex};
use std::sync::Arc;

/// The kinds of files a segment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The batches.
    Log,
    /// The sparse offset index.
    OffsetIndex,
    /// The sparse time index.
    TimeIndex,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            FileKind::Log => "log",
            FileKind::OffsetIndex => "index",
            FileKind::TimeIndex => "timeindex",
        }
    }
}

/// The file name of a segment's file.
pub fn file_name(base_offset: i64, kind: FileKind) -> String {
    format!("{base_offset:020}.{}", kind.extension())
}

/// Parses a segment file name into its base offset and kind.
pub fn parse_file_name(name: &str) -> Option<(i64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    let kind = match ext {
        "log" => FileKind::Log,
        "index" => FileKind::OffsetIndex,
        "timeindex" => FileKind::TimeIndex,
        _ => return None,
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, kind))
}

/// Removes a segment's files from `dir`; files already missing are fine (removal is repeated
/// when a crash interrupts it). On failure, returns the path that could not be removed.
pub(crate) fn remove_files(
    disk: &dyn crate::disk::Disk,
    dir: &std::path::Path,
    base_offset: i64,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    for kind in [FileKind::Log, FileKind::OffsetIndex, FileKind::TimeIndex] {
        let path = dir.join(file_name(base_offset, kind));
        match disk.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err((path, e)),
        }
    }
    Ok(())
}

/// Where a segment's sparse indexes are.
#[derive(Debug)]
pub(crate) enum Indexes {
    /// In memory, authoritative: the active segment's, a sealed one's until its seal wrote
    /// them, one a scan rebuilt. Shared with a seal job that writes them out (sealed segments'
    /// indexes no longer change; a change to a shared one copies it first).
    Resident(SegmentIndexes),
    /// In the segment's index files, durable: read on use through the log's
    /// [`crate::index::IndexCache`] (`PartitionLog::indexes_of`). The segment's timestamp fields
    /// are not kept; the time index's last entry holds its largest timestamp.
    OnDisk,
}

/// Whether a segment holds batches the producer state records ([`crate::producers`]): what
/// lets the rebuild of that state after an unclean stop skip a segment without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sequenced {
    /// Not known: the segment's batches were not all seen by this process (loaded from its
    /// index files, or made by a cleaning).
    Unknown,
    /// Every batch was seen (appended, or scanned from the start) and none was sequenced.
    None,
    /// At least one batch was.
    Some,
}

/// One segment as the partition log keeps it in memory.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    pub log: FileId,
    /// Bytes of batches in the file (each written before it is counted): what reads may see.
    pub size_bytes: u64,
    /// Physical file length when it differs from `size_bytes` (a preallocated tail).
    pub file_len: u64,
    /// Offset after the last planned batch.
    pub next_offset: i64,
    pub indexes: Indexes,
    /// The largest timestamp (of a resident segment; see [`Indexes::OnDisk`]).
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub bytes_since_index_entry: u64,
    /// When the segment was created or, after a restart, opened (for `segment_ms`).
    pub created_ms: i64,
    /// Whether it holds batches of idempotent or transactional producers.
    pub sequenced: Sequenced,
}

impl Segment {
    /// An empty segment: the batches it comes to hold are pushed to it ([`Segment::push_batch`]),
    /// so it knows whether one is sequenced. A caller that sets its size without pushing the
    /// batches must set [`Segment::sequenced`] to [`Sequenced::Unknown`].
    pub fn new(base_offset: i64, log: FileId, max_index_entries: usize, now_ms: i64) -> Self {
        Self {
            base_offset,
            log,
            size_bytes: 0,
            file_len: 0,
            next_offset: base_offset,
            indexes: Indexes::Resident(SegmentIndexes {
                offset: Arc::new(OffsetIndex::new(base_offset, max_index_entries)),
                time: Arc::new(TimeIndex::new(base_offset, max_index_entries)),
            }),
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sequenced: Sequenced::None,
        }
    }

    /// A sealed segment of `size_bytes` ending before `next_offset`, its indexes in its index
    /// files.
    pub fn sealed_on_disk(
        base_offset: i64,
        log: FileId,
        size_bytes: u64,
        next_offset: i64,
        now_ms: i64,
    ) -> Self {
        Self {
            base_offset,
            log,
            size_bytes,
            file_len: size_bytes,
            next_offset,
            indexes: Indexes::OnDisk,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            sequenced: Sequenced::Unknown,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// The indexes of a resident segment (see [`Indexes`]).
    pub fn resident(&self) -> Option<&SegmentIndexes> {
        match &self.indexes {
            Indexes::Resident(indexes) => Some(indexes),
            Indexes::OnDisk => None,
        }
    }

    /// The indexes of a resident segment, for a change. The active segment is always resident:
    /// only sealed segments go to disk. Should a bug hand over another, it gets empty indexes,
    /// which lookups treat as "scan from the segment's start" (slow, never wrong).
    fn resident_mut(&mut self, max_index_entries: usize) -> &mut SegmentIndexes {
        if matches!(self.indexes, Indexes::OnDisk) {
            debug_assert!(false, "segment {} is not resident", self.base_offset);
            self.indexes = Indexes::Resident(SegmentIndexes {
                offset: Arc::new(OffsetIndex::new(self.base_offset, max_index_entries)),
                time: Arc::new(TimeIndex::new(self.base_offset, max_index_entries)),
            });
        }
        match &mut self.indexes {
            Indexes::Resident(indexes) => indexes,
            Indexes::OnDisk => unreachable!("made resident above"),
        }
    }

    /// Accounts for a batch placed at the end of the segment, maintaining the sparse indexes by
    /// Kafka's rule: an entry is added before a batch once more than `index_interval_bytes` were
    /// appended since the previous entry.
    pub fn push_batch(
        &mut self,
        header: &BatchHeader,
        index_interval_bytes: u64,
        max_index_entries: usize,
    ) {
        let position = self.size_bytes;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.bytes_since_index_entry > index_interval_bytes {
            let (max_timestamp, offset) = (self.max_timestamp, self.offset_of_max_timestamp);
            let indexes = self.resident_mut(max_index_entries);
            // Positions fit: segments are at most i32::MAX bytes (checked by the config).
            Arc::make_mut(&mut indexes.offset).append(header.base_offset, position as u32);
            Arc::make_mut(&mut indexes.time).maybe_append(max_timestamp, offset, false);
            self.bytes_since_index_entry = 0;
        }
        if self.sequenced == Sequenced::None && crate::producers::is_sequenced(header) {
            self.sequenced = Sequenced::Some;
        }
        self.bytes_since_index_entry += header.total_bytes();
        self.size_bytes += header.total_bytes();
        self.file_len = self.file_len.max(self.size_bytes);
        self.next_offset = header.next_offset();
    }

    /// Adds the final time-index entry (the segment's largest timestamp), as Kafka does when a
    /// segment is sealed or the log closed.
    pub fn finish_time_index(&mut self) {
        if let Indexes::Resident(indexes) = &mut self.indexes
            && self.size_bytes > 0
        {
            Arc::make_mut(&mut indexes.time).maybe_append(
                self.max_timestamp,
                self.offset_of_max_timestamp,
                true,
            );
        }
    }

    /// Whether a batch of `batch_bytes` ending at `last_offset` must go to a new segment.
    pub fn must_roll(
        &self,
        batch_bytes: u64,
        last_offset: i64,
        config: &crate::config::LogConfig,
        now_ms: i64,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let full = self
            .resident()
            .is_some_and(|i| i.offset.is_full() || i.time.is_full());
        self.size_bytes + batch_bytes > config.segment_bytes
            || full
            || last_offset - self.base_offset > i64::from(i32::MAX)
            || config
                .segment_ms
                .is_some_and(|ms| now_ms.saturating_sub(self.created_ms) >= ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_before_relative_offsets_overflow() {
        let config = crate::config::LogConfig::default();
        let mut segment = Segment::new(1000, FileId(1), 10, 0);
        segment.size_bytes = 100;
        assert!(!segment.must_roll(10, 1000 + i64::from(i32::MAX), &config, 0));
        assert!(segment.must_roll(10, 1001 + i64::from(i32::MAX), &config, 0));
        let empty = Segment::new(1000, FileId(1), 10, 0);
        assert!(
            !empty.must_roll(u64::MAX / 2, i64::MAX - 1, &config, i64::MAX),
            "an empty segment takes anything"
        );
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(
            file_name(368_769, FileKind::Log),
            "00000000000000368769.log"
        );
        assert_eq!(
            parse_file_name("00000000000000368769.timeindex"),
            Some((368_769, FileKind::TimeIndex))
        );
        assert_eq!(parse_file_name("0000000000000036876.log"), None);
        assert_eq!(parse_file_name("0000000000000036876x.log"), None);
        assert_eq!(parse_file_name("00000000000000368769.swap"), None);
        assert_eq!(
            parse_file_name("99999999999999999999.log"),
            None,
            "overflows i64"
        );
    }
}
