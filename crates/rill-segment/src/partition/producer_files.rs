//! The producer state's files: `<offset:020>.snapshot` in the partition directory
//! (docs/FORMAT.md §8), and the state's load and rebuild from them and the log.
//!
//! A snapshot is taken at every roll (valid at the new segment's base, written and synced by a
//! roll job after the sealed segment's own seal) and at a clean close (valid at the end). At
//! most two stay: each write removes the older ones. At open, and after a truncation, the state
//! is the newest valid snapshot at or below the end, then rebuilt from the batch headers after
//! it (with a snapshot per roll: the active segment's). Snapshots beyond the end (a truncation,
//! a torn tail) are removed. A partition gets its first snapshot when it is created (at its
//! first open), so one is always there. Without a usable one (a log from before snapshots, or
//! both damaged), the state is rebuilt from the last [`REBUILD_SEGMENTS`] segments only, as
//! Kafka does without snapshots (a producer whose last batch lies before them is unknown, and
//! may start at any sequence), and a snapshot is written at once.

use super::PartitionLog;
use super::headers::HeaderWindow;
use crate::disk::{self, Disk, OpenMode};
use crate::error::LogError;
use crate::producers::{ProducerSnapshot, ProducerState};
use crate::segment::Sequenced;
use rill_format::producer_snapshot::file_name;
use std::io;
use std::path::{Path, PathBuf};

/// Segments the state is rebuilt from when no snapshot is usable.
pub const REBUILD_SEGMENTS: usize = 2;
/// Largest snapshot file read (a longer one is damaged): the most producers, each with five
/// batches, and the header.
const MAX_SNAPSHOT_FILE_BYTES: usize = 64 << 20;

/// Writes `snapshot` to its file (created or replaced, fdatasynced), removes the snapshots at
/// `obsolete`, and syncs the directory. Plain blocking I/O: a roll job's, or the close's.
pub(crate) fn write_snapshot(
    disk: &dyn Disk,
    dir: &Path,
    snapshot: &ProducerSnapshot,
    obsolete: &[i64],
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let path = dir.join(file_name(snapshot.offset));
    let bytes = snapshot.encode();
    let file = disk
        .open(&path, OpenMode::Create)
        .map_err(|e| ("create producer snapshot", path.clone(), e))?;
    let written = disk::write_all_at(disk, file, 0, &[&bytes])
        .and_then(|()| disk.set_len(file, bytes.len() as u64))
        .and_then(|()| disk.fdatasync(file));
    disk.close(file);
    written.map_err(|e| ("write producer snapshot", path, e))?;
    for offset in obsolete {
        remove_snapshot(disk, dir, *offset)?;
    }
    disk.sync_dir(dir)
        .map_err(|e| ("sync dir", dir.to_path_buf(), e))
}

fn remove_snapshot(
    disk: &dyn Disk,
    dir: &Path,
    offset: i64,
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let path = dir.join(file_name(offset));
    match disk.remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(("remove producer snapshot", path, e)),
    }
}

fn read_snapshot(disk: &dyn Disk, path: &Path) -> io::Result<Option<ProducerSnapshot>> {
    let bytes = disk::read_small_file(disk, path, MAX_SNAPSHOT_FILE_BYTES)?;
    Ok(bytes.and_then(|b| ProducerSnapshot::parse(&b).ok()))
}

impl PartitionLog {
    /// Producers the partition knows (for idempotent appends).
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// The highest producer id the partition knows, if any.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_producer_id()
    }

    /// Forgets producers that have not appended within `producer_id_expiration_ms`.
    pub fn expire_producers(&mut self, now_ms: i64) -> usize {
        self.producers
            .expire(now_ms, self.config.producer_id_expiration_ms)
    }

    /// The snapshot offsets a new snapshot makes obsolete: all but the newest on disk.
    pub(crate) fn obsolete_snapshots(&self) -> Vec<i64> {
        let keep = self.snapshots.iter().next_back().copied();
        self.snapshots
            .iter()
            .copied()
            .filter(|o| Some(*o) != keep)
            .collect()
    }

    /// Takes a snapshot of the producer state valid at `offset` for a roll job to write.
    pub(crate) fn queue_producer_snapshot(&mut self, offset: i64) {
        self.pending_snapshot = Some(self.producers.snapshot(offset));
        self.queue_roll_work(super::roll::Queued::Snapshot);
    }

    /// Writes a snapshot at the end now (the clean close).
    pub(crate) fn write_snapshot_now(&mut self) -> Result<(), LogError> {
        self.pending_snapshot = None;
        let snapshot = self.producers.snapshot(self.written_offset);
        let obsolete = self.obsolete_snapshots();
        let disk = std::sync::Arc::clone(&self.disk);
        if let Err((op, path, e)) = write_snapshot(disk.as_ref(), &self.dir, &snapshot, &obsolete) {
            return Err(self.fail(op, path, &e));
        }
        self.snapshot_written(snapshot.offset, &obsolete);
        Ok(())
    }

    /// Removes the snapshots below the log start (retention deleted what they describe), but
    /// never the newest: the state is rebuilt from it and the log after it.
    pub(crate) fn remove_snapshots_below(&mut self, log_start: i64) -> Result<(), LogError> {
        let newest = self.snapshots.iter().next_back().copied();
        let doomed: Vec<i64> = self
            .snapshots
            .range(..log_start)
            .copied()
            .filter(|o| Some(*o) != newest)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let disk = std::sync::Arc::clone(&self.disk);
        for offset in &doomed {
            remove_snapshot(disk.as_ref(), &self.dir, *offset)
                .map_err(|(op, path, e)| LogError::io(op, path, e))?;
            self.snapshots.remove(offset);
        }
        disk.sync_dir(&self.dir)
            .map_err(|e| LogError::io("sync dir", &self.dir, e))
    }

    /// Removes every snapshot (the log was emptied: none describes a batch it holds).
    pub(crate) fn remove_all_snapshots(&mut self) -> Result<(), LogError> {
        if self.snapshots.is_empty() {
            return Ok(());
        }
        let disk = std::sync::Arc::clone(&self.disk);
        // Bounded by the few snapshot files on disk.
        while let Some(offset) = self.snapshots.pop_first() {
            remove_snapshot(disk.as_ref(), &self.dir, offset)
                .map_err(|(op, path, e)| LogError::io(op, path, e))?;
        }
        disk.sync_dir(&self.dir)
            .map_err(|e| LogError::io("sync dir", &self.dir, e))
    }

    pub(crate) fn snapshot_written(&mut self, offset: i64, removed: &[i64]) {
        for o in removed {
            self.snapshots.remove(o);
        }
        self.snapshots.insert(offset);
    }

    /// Loads the producer state at open or after a truncation: the newest valid snapshot at or
    /// below the end, then the batches after it (see the module documentation). Snapshots
    /// beyond the end are removed.
    /// `self.snapshots` names the snapshot files on disk: filled from recovery's listing at
    /// open, kept as snapshots are written and removed. Returns the batch headers it read.
    pub(crate) fn load_producers(&mut self, now_ms: i64) -> Result<u64, LogError> {
        let end = self.written_offset;
        let disk = std::sync::Arc::clone(&self.disk);
        let beyond: Vec<i64> = self.snapshots.range(end + 1..).copied().collect();
        for offset in &beyond {
            remove_snapshot(disk.as_ref(), &self.dir, *offset)
                .map_err(|(op, path, e)| LogError::io(op, path, e))?;
            self.snapshots.remove(offset);
        }
        if !beyond.is_empty() {
            disk.sync_dir(&self.dir)
                .map_err(|e| LogError::io("sync dir", &self.dir, e))?;
        }
        let max = self.config.max_producers;
        let mut loaded = None;
        // Newest first; at most the few files on disk.
        for offset in self.snapshots.iter().rev() {
            let path = self.dir.join(file_name(*offset));
            match read_snapshot(disk.as_ref(), &path) {
                Ok(Some(snapshot)) if snapshot.offset == *offset => {
                    loaded = Some(snapshot);
                    break;
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "damaged producer snapshot: an older one is used");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable producer snapshot: an older one is used");
                }
            }
        }
        let from = if let Some(snapshot) = &loaded {
            self.producers = ProducerState::from_snapshot(snapshot, max);
            snapshot.offset
        } else {
            self.producers = ProducerState::new(max);
            let bases: Vec<i64> = self.segments.keys().copied().collect();
            bases[bases.len().saturating_sub(REBUILD_SEGMENTS)..]
                .first()
                .copied()
                .unwrap_or(end)
        };
        let headers_read = self.rebuild_producers(from.max(self.log_start_offset), now_ms)?;
        self.producers.truncate_head(self.log_start_offset);
        if loaded.is_none() {
            // From now on a snapshot is always there to rebuild from: a new partition gets its
            // first here, and a log from before snapshots is rebuilt partially only once.
            self.write_snapshot_now()?;
        }
        Ok(headers_read)
    }

    /// Records every batch from `from` to the end in the producer state, reading their headers
    /// (through a window: a read per 4 KiB of small batches). A segment known to hold no
    /// batch of an idempotent or transactional producer ([`Sequenced::None`]: written, or
    /// scanned by recovery, in this process) is skipped unread. Returns the headers read.
    fn rebuild_producers(&mut self, from: i64, now_ms: i64) -> Result<u64, LogError> {
        let end = self.written_offset;
        if from >= end {
            return Ok(0);
        }
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(base, _)| *base);
        let bases: Vec<i64> = self.segments.range(first..).map(|(b, _)| *b).collect();
        let mut state = std::mem::replace(&mut self.producers, ProducerState::new(1));
        let mut headers_read = 0u64;
        let result = (|| {
            for base in bases {
                let Some(segment) = self.segments.get(&base) else {
                    continue;
                };
                if segment.sequenced == Sequenced::None {
                    continue;
                }
                let (mut expected, position) = if base < from {
                    let indexes = self.indexes_of(segment)?;
                    indexes.offset.lookup(from)
                } else {
                    (base, 0)
                };
                let mut position = u64::from(position);
                let mut window = HeaderWindow::new(segment.size_bytes);
                // Bounded by the segment size: each step moves past one batch.
                while position < segment.size_bytes && expected < end {
                    let header = self.header_in(segment, &mut window, position, expected)?;
                    headers_read += 1;
                    if header.next_offset() > from {
                        state.record(&header, now_ms);
                    }
                    expected = header.next_offset();
                    position += header.total_bytes();
                }
            }
            Ok(())
        })();
        self.producers = state;
        result.map(|()| headers_read)
    }
}
