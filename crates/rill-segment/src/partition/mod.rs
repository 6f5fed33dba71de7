//! One partition's log: an ordered set of segments in a directory.
//!
//! Appends are planned, not performed: [`PartitionLog::plan_append`] validates a batch, assigns
//! its offsets, rolls the segment when needed, and adds the write to a [`Round`]. An executor
//! runs the round; [`PartitionLog::complete_round`] then advances the visible (written) and
//! durable offsets, or fail-stops the partition if any write or fdatasync failed. Rounds are
//! sequential per partition; many partitions' rounds go to an executor together.
//!
//! Offsets: `log_start <= durable <= written <= next`, where `next` includes planned writes,
//! `written` is what reads see, and `durable` what survives a crash.

mod maintenance;
mod read;
mod verify;

pub use maintenance::RetentionOutcome;
pub use read::{BatchRange, ReadLimit, ReadResult};
pub use verify::VerifyReport;

use crate::batch;
use crate::checkpoint::{self, Checkpoint};
use crate::config::{LogConfig, Preallocate};
use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::{FailReason, LogError};
use crate::plan::{DiskExecutor, Executor, Round};
use crate::segment::{self, FileKind, Segment};
use crate::watermark::{Slot, Watermark};
use bytes::BytesMut;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Its size in bytes.
    pub batch_bytes: u64,
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

/// The partition's state after a round completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Offset after the last written batch.
    pub written_offset: i64,
    /// Offset after the last durable batch.
    pub durable_offset: i64,
}

/// The state of one round between planning and completion.
#[derive(Debug, Default)]
struct InFlight {
    rolled: bool,
    /// The watermark slot this round writes, if any.
    watermark: Option<Slot>,
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
    /// Segments with writes or length changes not yet covered by an fdatasync.
    pub(crate) unsynced: BTreeSet<i64>,
    /// Bytes planned since the last completed sync of every segment (bounded by
    /// `max_unsynced_bytes`).
    pub(crate) unsynced_bytes: u64,
    in_flight: Option<InFlight>,
    pub(crate) failed: Option<FailReason>,
    pub(crate) closed: bool,
    pub(crate) watermark: Watermark,
    leader_epoch: Option<i32>,
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
            unsynced: BTreeSet::new(),
            unsynced_bytes: 0,
            in_flight: None,
            failed: None,
            closed: false,
            watermark,
            leader_epoch: None,
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

    /// The disk the log's files live on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// Start, end and durable offsets.
    pub fn offsets(&self) -> Offsets {
        Offsets {
            log_start: self.log_start_offset,
            log_end: self.written_offset,
            durable: self.durable_offset,
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

    fn path_of_file(&self, file: FileId) -> PathBuf {
        if file == self.watermark.file {
            return self.dir.join(crate::watermark::WATERMARK_FILE);
        }
        self.segments.values().find(|s| s.log == file).map_or_else(
            || self.dir.clone(),
            |s| self.path_of(s.base_offset, FileKind::Log),
        )
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
        if self.in_flight.is_some() {
            return Err(LogError::RoundInFlight);
        }
        Ok(())
    }

    /// Fail-stops the partition and returns the error to report.
    pub(crate) fn fail(
        &mut self,
        op: &'static str,
        path: PathBuf,
        error: &std::io::Error,
    ) -> LogError {
        let reason = self
            .failed
            .get_or_insert_with(|| FailReason::new(op, path, error))
            .clone();
        LogError::Failed(reason)
    }

    pub(crate) fn active(&self) -> &Segment {
        // Invariant: a log always has at least one segment (open and truncate keep one).
        self.segments
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log always has an active segment"))
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a partition log always has an active segment"))
    }

    /// Starts a round. Only one round may be in flight per partition.
    pub fn begin_round(&mut self) -> Result<Round, LogError> {
        self.check_idle()?;
        self.in_flight = Some(InFlight::default());
        Ok(Round::new(self.id))
    }

    fn check_round(&self, round: &Round) -> Result<(), LogError> {
        if round.owner != self.id || self.in_flight.is_none() {
            return Err(LogError::ForeignRound);
        }
        Ok(())
    }

    /// Whether a batch of `batch_bytes` would exceed `max_unsynced_bytes`, so that the current
    /// round must sync and complete before it can be planned.
    pub fn must_sync_before(&self, batch_bytes: usize) -> bool {
        self.unsynced_bytes > 0
            && self.unsynced_bytes + batch_bytes as u64 > self.config.max_unsynced_bytes
    }

    /// Validates `batch`, assigns its offsets (rewriting `baseOffset`, and
    /// `partitionLeaderEpoch` when set, without touching the CRC), rolls the segment if needed,
    /// and adds its write to `round`. Nothing is visible until the round completes.
    pub fn plan_append(
        &mut self,
        round: &mut Round,
        mut batch: BytesMut,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_usable()?;
        self.check_round(round)?;
        if self.must_sync_before(batch.len()) {
            return Err(LogError::SyncRequired);
        }
        let mut header = batch::validate_for_append(&batch, self.config.max_batch_bytes)?;
        let base_offset = self.next_offset;
        let last_offset = base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .filter(|last| *last < i64::MAX)
            .ok_or(LogError::OffsetOverflow)?;
        if self
            .active()
            .must_roll(header.total_bytes(), last_offset, &self.config, now_ms)
        {
            self.roll(round, base_offset, now_ms)?;
        }
        batch::set_base_offset(&mut batch, base_offset);
        if let Some(epoch) = self.leader_epoch {
            batch::set_partition_leader_epoch(&mut batch, epoch);
            header.partition_leader_epoch = epoch;
        }
        header.base_offset = base_offset;
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        let position = active.size_bytes;
        active.push_batch(&header, interval);
        let (file, segment_base) = (active.log, active.base_offset);
        round.push_write(file, position, batch.freeze());
        self.unsynced.insert(segment_base);
        self.unsynced_bytes += header.total_bytes();
        self.next_offset = header.next_offset();
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp: header.max_timestamp,
            batch_bytes: header.total_bytes(),
        })
    }

    /// Adds to `round` an fdatasync of every segment with unsynced data, so that when the round
    /// completes everything planned so far is durable.
    pub fn plan_sync(&mut self, round: &mut Round) -> Result<(), LogError> {
        self.check_usable()?;
        self.check_round(round)?;
        for base in &self.unsynced {
            if let Some(segment) = self.segments.get(base) {
                round.push_sync(segment.log);
            }
        }
        // Record what was durable before this round; it rides on the round's sync phase.
        let in_flight = self.in_flight.get_or_insert_with(InFlight::default);
        if self.config.track_durable_watermark
            && in_flight.watermark.is_none()
            && self.durable_offset > self.watermark.last.durable_offset
        {
            let (position, slot) = self.watermark.next_slot(self.durable_offset);
            round.push_write(
                self.watermark.file,
                position,
                bytes::Bytes::copy_from_slice(&slot.encode()),
            );
            round.push_sync(self.watermark.file);
            in_flight.watermark = Some(slot);
        }
        Ok(())
    }

    /// Takes back a round the executor ran. On success the planned batches become visible and,
    /// if the round synced every unsynced segment, durable. Any failed write or fdatasync
    /// fail-stops the partition: nothing in the round is acknowledged, and fsync is never
    /// retried.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the round is finished: taking it ends its use"
    )]
    pub fn complete_round(&mut self, round: Round, now_ms: i64) -> Result<RoundOutcome, LogError> {
        self.check_round(&round)?;
        let in_flight = self.in_flight.take().unwrap_or_default();
        for write in &round.writes {
            match &write.result {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(self.fail("write", self.path_of_file(write.file), e)),
                None => {
                    let e = std::io::Error::other("the executor did not run the write");
                    return Err(self.fail("write", self.path_of_file(write.file), &e));
                }
            }
        }
        self.check_usable()?;
        // Planned writes go only to the newest segments (the active one and those rolled in this
        // round), so the segments still catching up are a suffix: stop at the first complete one.
        for segment in self.segments.values_mut().rev() {
            if segment.written_bytes == segment.size_bytes {
                break;
            }
            segment.written_bytes = segment.size_bytes;
        }
        self.written_offset = self.next_offset;
        for sync in &round.syncs {
            match &sync.result {
                Some(Ok(())) => {
                    // Only unsynced segments are synced: search those, not every segment.
                    let synced =
                        self.unsynced.iter().copied().find(|base| {
                            self.segments.get(base).is_some_and(|s| s.log == sync.file)
                        });
                    if let Some(base) = synced {
                        self.unsynced.remove(&base);
                    }
                }
                Some(Err(e)) => {
                    return Err(self.fail("fdatasync", self.path_of_file(sync.file), e));
                }
                None => {
                    let e = std::io::Error::other("the executor did not run the fdatasync");
                    return Err(self.fail("fdatasync", self.path_of_file(sync.file), &e));
                }
            }
        }
        if self.unsynced.is_empty() {
            self.durable_offset = self.written_offset;
            self.unsynced_bytes = 0;
        }
        if let Some(slot) = in_flight.watermark {
            self.watermark.last = slot;
        }
        let outcome = RoundOutcome {
            written_offset: self.written_offset,
            durable_offset: self.durable_offset,
        };
        // The round's data is safe whatever happens to the checkpoint; a checkpoint failure
        // fail-stops the partition for later calls.
        let due = in_flight.rolled || self.checkpoint_interval_elapsed(now_ms);
        if due && self.durable_offset > self.checkpoint.recovery_point {
            let _ = self.write_checkpoint_at(self.durable_offset, now_ms);
        }
        Ok(outcome)
    }

    /// Appends one batch and runs its round at once on the log's own disk: the simple,
    /// synchronous path (tests, tools, single-partition users).
    pub fn append(
        &mut self,
        batch: BytesMut,
        durability: Durability,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if self.must_sync_before(batch.len()) {
            self.flush(now_ms)?;
        }
        let mut round = self.begin_round()?;
        let info = match self.plan_append(&mut round, batch, now_ms) {
            Ok(info) => info,
            Err(e) => {
                // Nothing was planned into the round except, possibly, a roll; finish it so the
                // partition is idle again.
                self.run_round(round, now_ms)?;
                return Err(e);
            }
        };
        if durability == Durability::Durable {
            self.plan_sync(&mut round)?;
        }
        self.run_round(round, now_ms)?;
        Ok(info)
    }

    /// Makes everything written so far durable.
    pub fn flush(&mut self, now_ms: i64) -> Result<RoundOutcome, LogError> {
        let mut round = self.begin_round()?;
        self.plan_sync(&mut round)?;
        self.run_round(round, now_ms)
    }

    fn run_round(&mut self, mut round: Round, now_ms: i64) -> Result<RoundOutcome, LogError> {
        let disk = Arc::clone(&self.disk);
        DiskExecutor::new(disk.as_ref()).execute(&mut [&mut round]);
        self.complete_round(round, now_ms)
    }

    /// Seals the active segment and starts a new one at `base_offset`.
    fn roll(&mut self, round: &mut Round, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let disk = Arc::clone(&self.disk);
        let dir = self.dir.clone();
        let old = self.active_mut();
        old.finish_time_index();
        let old_file = old.log;
        if old.file_len > old.size_bytes {
            let size = old.size_bytes;
            old.file_len = size;
            if let Err(e) = disk.set_len(old_file, size) {
                let path = self.path_of(self.active().base_offset, FileKind::Log);
                return Err(self.fail("trim preallocation", path, &e));
            }
        }
        let old = self.active();
        if let Err((path, e)) = write_index_files(disk.as_ref(), &dir, old) {
            return Err(self.fail("write index", path, &e));
        }
        // Kafka flushes a segment when it rolls: the old segment becomes durable with this round
        // even when no append asked for durability, so the recovery point can pass it.
        round.push_sync(old_file);
        let old_base = old.base_offset;
        self.unsynced.insert(old_base);
        let segment = match create_segment(disk.as_ref(), &dir, base_offset, &self.config, now_ms) {
            Ok(s) => s,
            Err((path, e)) => return Err(self.fail("create segment", path, &e)),
        };
        self.segments.insert(base_offset, segment);
        if let Some(in_flight) = self.in_flight.as_mut() {
            in_flight.rolled = true;
        }
        Ok(())
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
            let io = match &e {
                LogError::Io { source, .. } => {
                    std::io::Error::new(source.kind(), source.to_string())
                }
                other => std::io::Error::other(other.to_string()),
            };
            return Err(self.fail("write checkpoint", path, &io));
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
    let setup = preallocate(disk, file, config, 0).and_then(|len| {
        segment.file_len = len;
        disk.sync_dir(dir)
    });
    if let Err(e) = setup {
        disk.close(file);
        return Err((path, e));
    }
    Ok(segment)
}

/// Preallocates `file` from `from` to the segment size as configured; returns the file length.
pub(crate) fn preallocate(
    disk: &dyn Disk,
    file: FileId,
    config: &LogConfig,
    from: u64,
) -> std::io::Result<u64> {
    match config.preallocate {
        Preallocate::None => Ok(from),
        Preallocate::Fallocate => {
            disk.allocate(file, config.segment_bytes)?;
            Ok(config.segment_bytes.max(from))
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

/// Writes a segment's two index files whole and syncs them.
pub(crate) fn write_index_files(
    disk: &dyn Disk,
    dir: &Path,
    segment: &Segment,
) -> Result<(), (PathBuf, std::io::Error)> {
    let files = [
        (FileKind::OffsetIndex, segment.offset_index.encode()),
        (FileKind::TimeIndex, segment.time_index.encode()),
    ];
    for (kind, bytes) in files {
        let path = dir.join(segment::file_name(segment.base_offset, kind));
        let file = disk
            .open(&path, OpenMode::Create)
            .map_err(|e| (path.clone(), e))?;
        let result = disk::write_all_at(disk, file, 0, &[&bytes])
            .and_then(|()| disk.set_len(file, bytes.len() as u64))
            .and_then(|()| disk.fdatasync(file));
        disk.close(file);
        result.map_err(|e| (path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
