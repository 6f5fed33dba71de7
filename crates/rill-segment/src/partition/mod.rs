//! One partition's log: an ordered set of segments in a directory.
//!
//! Appends are written at once into the page cache ([`append`]); syncs are begun and completed
//! separately so an executor can run many partitions' fdatasyncs together while appends go on.
//! Any failed write or fdatasync fail-stops the partition.
//!
//! Offsets: `log_start <= durable <= written == next`, where `written` is what reads see and
//! `durable` what survives a crash.

mod append;
mod compact;
mod headers;
mod indexes;
mod maintenance;
mod producer_files;
mod read;
mod roll;
mod verify;
mod window;

pub use append::{SyncFailure, SyncTicket, ValidBatch, WatermarkTicket};
pub(crate) use compact::finish_swaps;
pub use indexes::IndexStats;
pub(crate) use indexes::load_index_files;
pub use maintenance::RetentionOutcome;
pub use producer_files::REBUILD_SEGMENTS;
pub use read::{BatchRange, ReadLimit, ReadResult};
pub use roll::{MAX_PENDING_SEALS, PREPARED_FILE, RollDone, RollJob, RollStats};
pub use verify::VerifyReport;
pub use window::{ReadPlan, Walked, walk};

use crate::checkpoint::{self, Checkpoint};
use crate::config::{LogConfig, Preallocate};
use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::{FailReason, LogError};
use crate::index::IndexCache;
use crate::producers::{ProducerSnapshot, ProducerState};
use crate::segment::{self, FileKind, Segment};
use crate::watermark::Watermark;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// Whether an append waits for its data to be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged once written (visible to reads; lost if the machine crashes before a sync).
    #[default]
    Written,
    /// Acknowledged once fdatasynced.
    Durable,
}

/// Where an appended batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Its `maxTimestamp`.
    pub max_timestamp: i64,
    /// Its size in bytes (0 for a duplicate).
    pub batch_bytes: u64,
    /// The batch repeated one the log holds (same producer, epoch and sequences: a producer's
    /// retry): nothing was written, and the offsets and timestamp are the original's.
    pub duplicate: bool,
}

/// A partition's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// First offset in the log.
    pub log_start: i64,
    /// Offset after the last batch reads can see.
    pub log_end: i64,
    /// Offset after the last durable batch.
    pub durable: i64,
}

/// One partition's log. See the module documentation.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) disk: Arc<dyn Disk>,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) id: u64,
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) next_offset: i64,
    pub(crate) written_offset: i64,
    pub(crate) durable_offset: i64,
    /// The checkpoint as last written.
    pub(crate) checkpoint: Checkpoint,
    pub(crate) last_checkpoint_ms: i64,
    /// Base offsets of segments with writes or length changes since the last sync began: the
    /// active segment (a roll syncs the segment it seals), or after a truncation the segment
    /// cut. A handful at most.
    pub(crate) unsynced: Vec<i64>,
    /// The segments the sync in flight covers.
    pub(crate) syncing: Vec<i64>,
    /// Bytes written since the last completed sync began (bounded by `max_unsynced_bytes`):
    /// what a crash can tear.
    pub(crate) unsynced_bytes: u64,
    pub(crate) sync_in_flight: Option<SyncTicket>,
    /// The watermark slot whose fdatasync is in flight.
    pub(crate) watermark_in_flight: Option<WatermarkTicket>,
    /// When the watermark was last written (`watermark_interval_ms`).
    pub(crate) last_watermark_ms: i64,
    /// The next segment's file, prepared ahead of the roll (module `roll`).
    pub(crate) prepared: Option<roll::Prepared>,
    /// Roll work waiting for an executor, in order (a few entries at most).
    pub(crate) roll_queue: VecDeque<roll::Queued>,
    /// Whether a roll job is out (taken, not yet completed).
    pub(crate) roll_job_out: bool,
    /// Segments renamed into place whose names a crash could still lose: the durable offset
    /// stays below them until a directory sync.
    pub(crate) pending_names: Vec<i64>,
    /// Sealed segments not yet trimmed, indexed and synced (at most `MAX_PENDING_SEALS`): the
    /// recorded recovery point stays inside the oldest.
    pub(crate) pending_seals: Vec<i64>,
    pub(crate) roll_stats: roll::RollStats,
    /// The active segment (by base) whose next file failed to be prepared: not retried before
    /// it rolls.
    pub(crate) prepare_blocked_for: Option<i64>,
    pub(crate) failed: Option<FailReason>,
    pub(crate) closed: bool,
    pub(crate) watermark: Watermark,
    pub(crate) leader_epoch: Option<i32>,
    /// Where sealed segments' indexes are kept once read (module `indexes`).
    pub(crate) index_cache: Arc<IndexCache>,
    pub(crate) index_loads: AtomicU64,
    pub(crate) index_rebuilds: AtomicU64,
    /// Idempotent producers (module `crate::producers`), checked and updated by appends.
    pub(crate) producers: ProducerState,
    /// Offsets of the producer snapshot files on disk (at most a few).
    pub(crate) snapshots: BTreeSet<i64>,
    /// A snapshot taken at a roll, waiting for its roll job.
    pub(crate) pending_snapshot: Option<ProducerSnapshot>,
    /// Compaction's progress: below it, the log is clean (module `compact`).
    pub(crate) clean_point: i64,
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // A shared cache must not keep a closed log's indexes.
        self.index_cache.remove_log(self.id);
    }
}

impl PartitionLog {
    pub(crate) fn assemble(
        disk: Arc<dyn Disk>,
        dir: PathBuf,
        config: LogConfig,
        segments: BTreeMap<i64, Segment>,
        checkpoint: Checkpoint,
        watermark: Watermark,
        now_ms: i64,
    ) -> Self {
        let end = segments
            .values()
            .next_back()
            .map_or(checkpoint.log_start_offset, |s| s.next_offset);
        let config_max_producers = config.max_producers;
        Self {
            disk,
            dir,
            config,
            id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
            segments,
            log_start_offset: checkpoint.log_start_offset,
            next_offset: end,
            written_offset: end,
            durable_offset: end,
            checkpoint,
            last_checkpoint_ms: now_ms,
            unsynced: Vec::new(),
            syncing: Vec::new(),
            unsynced_bytes: 0,
            sync_in_flight: None,
            watermark_in_flight: None,
            last_watermark_ms: i64::MIN,
            prepared: None,
            roll_queue: VecDeque::new(),
            roll_job_out: false,
            pending_names: Vec::new(),
            pending_seals: Vec::new(),
            roll_stats: roll::RollStats::default(),
            prepare_blocked_for: None,
            failed: None,
            closed: false,
            watermark,
            leader_epoch: None,
            index_cache: Arc::new(IndexCache::default()),
            index_loads: AtomicU64::new(0),
            index_rebuilds: AtomicU64::new(0),
            producers: ProducerState::new(config_max_producers),
            snapshots: BTreeSet::new(),
            pending_snapshot: None,
            clean_point: checkpoint.log_start_offset,
        }
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the log runs with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Changes the settings at run time (a topic's configuration altered): checked first,
    /// then in effect from the next append, roll or maintenance pass. A smaller `segment_bytes`
    /// rolls at the next append that would pass it; retention applies at the next pass.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The disk the log's files live on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// Start, end and durable offsets.
    pub fn offsets(&self) -> Offsets {
        Offsets {
            log_start: self.log_start_offset,
            log_end: self.written_offset,
            durable: self.durable(),
        }
    }

    /// The checkpoint as last written to disk.
    pub fn last_checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// Why the partition failed, if it did. A failed partition accepts no appends and serves
    /// only durable data; reopening it recovers from disk.
    pub fn failure(&self) -> Option<&FailReason> {
        self.failed.as_ref()
    }

    /// How many segments the log has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Total bytes of batches in the log.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// Sets the leader epoch written into every later batch's `partitionLeaderEpoch`. By default
    /// the producer's value is kept.
    pub fn set_leader_epoch(&mut self, epoch: Option<i32>) {
        self.leader_epoch = epoch;
    }

    pub(crate) fn path_of(&self, base_offset: i64, kind: FileKind) -> PathBuf {
        self.dir.join(segment::file_name(base_offset, kind))
    }

    pub(crate) fn path_of_file(&self, file: FileId) -> PathBuf {
        if file == self.watermark.file {
            return self.dir.join(crate::watermark::WATERMARK_FILE);
        }
        self.segments.values().find(|s| s.log == file).map_or_else(
            || self.dir.clone(),
            |s| self.path_of(s.base_offset, FileKind::Log),
        )
    }

    /// Whether the log was closed (no more reads or writes).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn check_usable(&self) -> Result<(), LogError> {
        if let Some(reason) = &self.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        if self.closed {
            return Err(LogError::Config("the log is closed".into()));
        }
        Ok(())
    }

    pub(crate) fn check_idle(&self) -> Result<(), LogError> {
        self.check_usable()?;
        if self.sync_in_flight.is_some() || self.watermark_in_flight.is_some() || self.roll_job_out
        {
            return Err(LogError::SyncInFlight);
        }
        Ok(())
    }

    /// Fail-stops the partition from outside (its owner hit a bug): nothing more is appended or
    /// acknowledged durable; reopening recovers from disk. Returns the reason in force.
    pub fn fail_stop(&mut self, op: &'static str, error: &std::io::Error) -> FailReason {
        let path = self.dir.clone();
        self.fail_with(FailReason::new(op, path, error))
    }

    /// Records `reason` unless the partition failed already, logging the first failure loudly
    /// (a full disk or an exhausted descriptor table must never fail partitions silently), and
    /// returns the reason in force.
    fn fail_with(&mut self, reason: FailReason) -> FailReason {
        if let Some(first) = &self.failed {
            return first.clone();
        }
        tracing::error!(
            partition = %self.dir.display(),
            %reason,
            "partition failed: it accepts nothing more and serves only durable data until reopened"
        );
        self.failed.insert(reason).clone()
    }

    /// Fail-stops the partition and returns the error to report.
    pub(crate) fn fail(
        &mut self,
        op: &'static str,
        path: PathBuf,
        error: &std::io::Error,
    ) -> LogError {
        LogError::Failed(self.fail_with(FailReason::new(op, path, error)))
    }

    pub(crate) fn active(&self) -> &Segment {
        // Invariant: a log always has at least one segment (open and truncate keep one).
        self.segments
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log always has an active segment"))
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log always has an active segment"))
    }

    /// Whether `checkpoint_interval_ms` has passed since the last checkpoint. A clock that went
    /// backwards counts as elapsed, so checkpoints never stop.
    pub(crate) fn checkpoint_interval_elapsed(&self, now_ms: i64) -> bool {
        now_ms < self.last_checkpoint_ms
            || now_ms - self.last_checkpoint_ms >= self.config.checkpoint_interval_ms
    }

    /// Writes the checkpoint with the current log start and `recovery_point`, which must not
    /// lead the durable data.
    pub(crate) fn write_checkpoint_at(
        &mut self,
        recovery_point: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        debug_assert!(
            recovery_point <= self.durable_offset
                || recovery_point <= self.checkpoint.recovery_point
        );
        let next = Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point,
            clean_shutdown: false,
        };
        if let Err(e) = checkpoint::write(self.disk.as_ref(), &self.dir, &next) {
            let path = self.dir.join(checkpoint::CHECKPOINT_FILE);
            // The I/O error itself, so the failure keeps its errno ("No space left on device").
            return Err(match &e {
                LogError::Io { source, .. } => self.fail("write checkpoint", path, source),
                other => self.fail(
                    "write checkpoint",
                    path,
                    &std::io::Error::other(other.to_string()),
                ),
            });
        }
        self.checkpoint = next;
        self.last_checkpoint_ms = now_ms;
        Ok(())
    }
}

/// Creates a segment's log file, preallocates it as configured, and makes its directory entry
/// durable (so no acknowledged data can live in a file whose name a crash could lose).
pub(crate) fn create_segment(
    disk: &dyn Disk,
    dir: &Path,
    base_offset: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Segment, (PathBuf, std::io::Error)> {
    let path = dir.join(segment::file_name(base_offset, FileKind::Log));
    let file = disk
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| (path.clone(), e))?;
    let mut segment = Segment::new(base_offset, file, config.max_index_entries, now_ms);
    let setup = preallocate(disk, file, config, 0, 0).and_then(|len| {
        segment.file_len = len;
        disk.sync_dir(dir)
    });
    if let Err(e) = setup {
        disk.close(file);
        return Err((path, e));
    }
    Ok(segment)
}

/// Preallocates `file` from `from` as configured; returns the file length. With
/// `Preallocate::Ahead`, `expected_bytes` past `from` are allocated (at least one step, never
/// past the segment size): 0 where nothing is known, a prepared segment's expected size where
/// it is (`partition::roll`).
pub(crate) fn preallocate(
    disk: &dyn Disk,
    file: FileId,
    config: &LogConfig,
    from: u64,
    expected_bytes: u64,
) -> std::io::Result<u64> {
    match config.preallocate {
        Preallocate::None => Ok(from),
        Preallocate::Fallocate => {
            disk.allocate(file, config.segment_bytes)?;
            Ok(config.segment_bytes.max(from))
        }
        Preallocate::Ahead { step_bytes } => {
            let len = from
                .saturating_add(expected_bytes.max(step_bytes))
                .min(config.segment_bytes)
                .max(from);
            allocate_or_not(disk, file, len, from)
        }
        Preallocate::Zeroed => {
            static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
            let mut pos = from;
            // Bounded by segment_bytes / 64 KiB iterations.
            while pos < config.segment_bytes {
                let len = (config.segment_bytes - pos).min(ZEROS.len() as u64) as usize;
                disk::write_all_at(disk, file, pos, &[&ZEROS[..len]])?;
                pos += len as u64;
            }
            disk.fdatasync(file)?;
            Ok(config.segment_bytes.max(from))
        }
    }
}

/// Allocates `file` to `len` bytes ahead of the data (`Preallocate::Ahead`), an optimization
/// only: on a full file system it allocates nothing more and returns the file's length (at
/// least `from`), and the writes themselves report the lack of space.
pub(crate) fn allocate_or_not(
    disk: &dyn Disk,
    file: FileId,
    len: u64,
    from: u64,
) -> std::io::Result<u64> {
    match disk.allocate(file, len) {
        Ok(()) => Ok(len),
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            // A failed fallocate may still have extended the file: count what is there.
            Ok(disk.file_len(file)?.max(from))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod locate_tests;
#[cfg(test)]
mod roll_tests;
#[cfg(test)]
mod start_at_tests;
#[cfg(test)]
mod tests;
