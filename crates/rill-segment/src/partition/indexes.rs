//! Sealed segments' indexes, read on use.
//!
//! Once a sealed segment's index files are durable (its seal completed, or recovery wrote
//! them, or a clean open found them) its indexes leave memory ([`Indexes::OnDisk`]); a lookup
//! reads them into the log's bounded [`IndexCache`]. A file that fails its checks (missing,
//! torn, not monotonic, pointing outside the segment) is rebuilt from the segment's batches
//! and written again, as Kafka does at load; a segment whose batches are damaged gives
//! [`LogError::Corrupt`], never a wrong answer.

use super::PartitionLog;
use crate::disk::{self, Disk, OpenMode};
use crate::error::LogError;
use crate::index::{OffsetIndex, SegmentBounds, SegmentIndexes, TIME_ENTRY_BYTES, TimeIndex};
use crate::index_files::write_index_files;
use crate::scan;
use crate::segment::{FileKind, Indexes, Segment};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How a log's sealed indexes were loaded since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Segments whose index files were read (cache misses).
    pub loads: u64,
    /// Segments whose index files failed their checks and were rebuilt from the batches.
    pub rebuilds: u64,
}

/// Reads an index file whole; `None` when it is missing, unreadable or longer than any valid
/// index (all of which mean: rebuild it).
pub(crate) fn read_index_file(
    disk: &dyn Disk,
    path: &Path,
    max_entries: usize,
) -> Result<Option<Vec<u8>>, LogError> {
    let file = match disk.open(path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("open", path, e)),
    };
    // No fsync: an index is a checked cache, rebuilt whenever it disagrees with the log.
    let bytes: std::io::Result<Option<Vec<u8>>> = (|| {
        let len = disk.file_len(file)?;
        if len > (max_entries as u64 + 1) * TIME_ENTRY_BYTES as u64 {
            return Ok(None);
        }
        let mut buf = vec![0u8; len as usize];
        disk::read_exact_at(disk, file, 0, &mut buf)?;
        Ok(Some(buf))
    })();
    disk.close(file);
    Ok(bytes.unwrap_or(None))
}

/// Reads and checks both index files of the segment `bounds` describes; `None` if either is
/// missing or fails its checks.
pub(crate) fn load_index_files(
    disk: &dyn Disk,
    dir: &Path,
    bounds: SegmentBounds,
    max_entries: usize,
) -> Result<Option<SegmentIndexes>, LogError> {
    let path = |kind| dir.join(crate::segment::file_name(bounds.base_offset, kind));
    let offset = read_index_file(disk, &path(FileKind::OffsetIndex), max_entries)?
        .and_then(|bytes| OffsetIndex::parse(&bytes, bounds, max_entries).ok());
    let time = read_index_file(disk, &path(FileKind::TimeIndex), max_entries)?
        .and_then(|bytes| TimeIndex::parse(&bytes, bounds, max_entries).ok());
    Ok(match (offset, time) {
        // A sealed segment's time index ends with its largest timestamp (written at roll).
        (Some(offset), Some(time)) if time.last_timestamp().is_some() || bounds.size_bytes == 0 => {
            Some(SegmentIndexes {
                offset: Arc::new(offset),
                time: Arc::new(time),
            })
        }
        _ => None,
    })
}

impl PartitionLog {
    /// The indexes of `segment`: its own when resident, else from the index cache, read from
    /// its index files on a miss (rebuilt from its batches if they fail their checks).
    pub(crate) fn indexes_of(&self, segment: &Segment) -> Result<SegmentIndexes, LogError> {
        if let Indexes::Resident(indexes) = &segment.indexes {
            return Ok(indexes.clone());
        }
        if let Some(found) = self.index_cache.get(self.id, segment.base_offset) {
            return Ok(found);
        }
        self.index_loads.fetch_add(1, Ordering::Relaxed);
        let bounds = SegmentBounds {
            base_offset: segment.base_offset,
            next_offset: segment.next_offset,
            size_bytes: segment.size_bytes,
        };
        let max = self.config.max_index_entries;
        let indexes = match load_index_files(self.disk.as_ref(), &self.dir, bounds, max)? {
            Some(indexes) => indexes,
            None => self.rebuild_indexes(segment)?,
        };
        self.index_cache
            .insert(self.id, segment.base_offset, indexes.clone());
        Ok(indexes)
    }

    /// The largest timestamp of `segment` (`i64::MIN` when it is empty).
    pub(crate) fn max_timestamp_of(&self, segment: &Segment) -> Result<i64, LogError> {
        match &segment.indexes {
            Indexes::Resident(_) => Ok(segment.max_timestamp),
            Indexes::OnDisk => Ok(self
                .indexes_of(segment)?
                .time
                .last_timestamp()
                .unwrap_or(i64::MIN)),
        }
    }

    /// Rebuilds a sealed segment's indexes from its batches and writes them out again (best
    /// effort: if the write fails, the next load rebuilds again).
    fn rebuild_indexes(&self, segment: &Segment) -> Result<SegmentIndexes, LogError> {
        self.index_rebuilds.fetch_add(1, Ordering::Relaxed);
        let path = self.path_of(segment.base_offset, FileKind::Log);
        let rebuilt = scan::rebuild_segment(
            self.disk.as_ref(),
            segment.log,
            segment.base_offset,
            segment.size_bytes,
            &self.config,
            0,
        );
        if let Some(stop) = rebuilt.stop {
            return Err(LogError::corrupt(
                path,
                stop.position..stop.damage_end,
                rebuilt.segment.next_offset,
                stop.detail,
            ));
        }
        let mut scanned = rebuilt.segment;
        if scanned.next_offset != segment.next_offset {
            let detail = format!(
                "segment ends at offset {}, the next starts at {}",
                scanned.next_offset, segment.next_offset
            );
            let end = segment.size_bytes;
            return Err(LogError::corrupt(
                path,
                end..end,
                scanned.next_offset,
                detail,
            ));
        }
        scanned.finish_time_index();
        let _ = write_index_files(self.disk.as_ref(), &self.dir, &scanned);
        match scanned.indexes {
            Indexes::Resident(indexes) => Ok(indexes),
            Indexes::OnDisk => unreachable!("a scan builds resident indexes"),
        }
    }

    /// Sends a sealed segment's indexes to disk once its index files are durable: memory is
    /// freed, and the cache keeps them as recently used.
    pub(crate) fn indexes_to_disk(&mut self, base: i64) {
        let active = self.active().base_offset;
        let Some(segment) = self.segments.get_mut(&base) else {
            return;
        };
        if base == active {
            return;
        }
        if let Indexes::Resident(indexes) = std::mem::replace(&mut segment.indexes, Indexes::OnDisk)
        {
            self.index_cache.insert(self.id, base, indexes);
        }
    }

    /// How sealed indexes were loaded since the log was opened.
    pub fn index_stats(&self) -> IndexStats {
        IndexStats {
            loads: self.index_loads.load(Ordering::Relaxed),
            rebuilds: self.index_rebuilds.load(Ordering::Relaxed),
        }
    }

    /// Uses `cache` for this log's sealed indexes (by default each log has its own, with
    /// [`crate::index::DEFAULT_INDEX_CACHE_BYTES`]): a service with many partitions shares one,
    /// so the bound holds for all of them.
    pub fn set_index_cache(&mut self, cache: Arc<crate::index::IndexCache>) {
        self.index_cache.remove_log(self.id);
        self.index_cache = cache;
    }
}
