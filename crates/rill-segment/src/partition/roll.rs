//! Rolling to a new segment without blocking the appender.
//!
//! A roll happens inside an append, on the appending thread, under the partition's lock. The
//! slow parts of it (creating and preallocating the next file, syncing the directory, trimming
//! the sealed segment, writing its indexes, fdatasyncing it) are done off that path, as
//! [`RollJob`]s that an executor runs wherever it likes ([`RollJob::run`] is plain blocking I/O
//! through the [`Disk`]) and hands back ([`PartitionLog::complete_roll_job`]):
//! * **ahead of the roll**, once the active segment is half full (or half its `segment_ms` old),
//!   a job prepares the next file under the name [`PREPARED_FILE`]: created, preallocated, its
//!   name durable;
//! * **the roll** renames the prepared file to the new segment's name and swaps it in: one
//!   `rename`, no sync;
//! * **after the roll**, a job syncs the directory (the rename becomes durable), and another
//!   seals the old segment: trims its preallocation, writes and syncs its index files,
//!   fdatasyncs it, syncs the directory.
//!
//! Recovery's guarantees hold because two offsets stay behind the jobs:
//! * the durable offset (acknowledgements, durable reads) stays below a segment whose name a
//!   crash could still lose ([`PartitionLog::durable`]);
//! * the recovery point written to the watermark and the checkpoint stays below the end of a
//!   sealed segment whose seal is not done, so recovery rescans that segment (and seals it)
//!   instead of loading it as sealed ([`PartitionLog::recovery_point`]).
//!
//! Without a prepared file (not ready in time), the roll creates the next file itself (with the
//! default preallocation, a small allocation and a directory sync) and still leaves the seal
//! to a job. With [`MAX_PENDING_SEALS`] seals already pending, it does everything itself,
//! synchronously. Jobs run one at a time per partition, in order; the simple synchronous path
//! runs them inline
//! ([`PartitionLog::run_roll_jobs`], from `flush` and `close`).

use super::producer_files::write_snapshot;
use super::{PartitionLog, create_segment, preallocate};
use crate::config::LogConfig;
use crate::disk::{Disk, FileId, OpenMode};
use crate::error::LogError;
use crate::index::SegmentIndexes;
use crate::index_files::{write_index_files, write_indexes};
use crate::producers::ProducerSnapshot;
use crate::segment::{FileKind, Segment};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name of the next segment's file while it is prepared ahead of a roll. Not a
/// segment: recovery removes it.
pub const PREPARED_FILE: &str = "next-segment.prepared";

/// Sealed segments whose seal may be pending at once; a roll beyond it seals synchronously.
pub const MAX_PENDING_SEALS: usize = 2;

/// How a partition's rolls went since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollStats {
    /// Rolls into a prepared file: a rename on the appending thread, the rest in roll jobs.
    pub prepared_rolls: u64,
    /// Rolls with no file prepared in time (its preparation still running, or failed): the
    /// next file is created on the appending thread, the seal left to a roll job.
    pub unprepared_rolls: u64,
    /// Rolls that did everything on the appending thread, the seal included, because
    /// [`MAX_PENDING_SEALS`] seals were pending.
    pub synchronous_rolls: u64,
    /// Preparations of a next file that failed (the roll after each is unprepared).
    pub failed_prepares: u64,
}

/// A prepared next-segment file: created, preallocated, its name durable.
#[derive(Debug)]
pub(crate) struct Prepared {
    file: FileId,
    file_len: u64,
}

/// Roll work waiting for an executor. What a job does is decided when it is taken, from the
/// log as it is then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    SyncNames,
    Seal(i64),
    Prepare,
    /// Write the producer snapshot taken at the roll (`pending_snapshot`).
    Snapshot,
}

/// A piece of roll work for an executor: taken with [`PartitionLog::take_roll_job`], run with
/// [`RollJob::run`] on any thread, handed back with [`PartitionLog::complete_roll_job`].
#[derive(Debug)]
pub struct RollJob {
    owner: u64,
    dir: PathBuf,
    work: Work,
}

#[derive(Debug)]
enum Work {
    /// Sync the directory: the renames of these segments become durable.
    SyncNames(Vec<i64>),
    /// Trim, write the indexes of, and fdatasync the sealed segment at `base`, then sync the
    /// directory (the index files' names).
    Seal {
        base: i64,
        file: FileId,
        size_bytes: u64,
        trim: bool,
        /// Its indexes, to write (`None`: already on disk).
        indexes: Option<SegmentIndexes>,
    },
    /// Create and preallocate the next segment's file (for `expected_bytes` of data), and
    /// sync the directory.
    Prepare {
        config: Box<LogConfig>,
        expected_bytes: u64,
    },
    /// Write and sync a producer snapshot, remove the snapshots at `obsolete`, sync the
    /// directory.
    Snapshot {
        snapshot: ProducerSnapshot,
        obsolete: Vec<i64>,
    },
}

/// A finished [`RollJob`], for [`PartitionLog::complete_roll_job`].
#[derive(Debug)]
pub struct RollDone {
    owner: u64,
    /// Whether the job was a preparation (whose failure only costs a synchronous roll).
    prepare: bool,
    outcome: Result<Finished, (&'static str, PathBuf, io::Error)>,
}

#[derive(Debug)]
enum Finished {
    SyncNames(Vec<i64>),
    Seal(i64),
    Prepare(Prepared),
    Snapshot { offset: i64, removed: Vec<i64> },
}

impl RollJob {
    /// Whether acknowledgements may wait for it (a rename's directory sync): an executor runs
    /// such jobs ahead of, and never behind, slow ones (a preparation with `Zeroed` writes a
    /// whole segment).
    pub fn is_urgent(&self) -> bool {
        matches!(self.work, Work::SyncNames(_))
    }

    /// The result to hand back if the job could not run (its executor failed): `error`.
    pub fn failed(&self, error: io::Error) -> RollDone {
        RollDone {
            owner: self.owner,
            prepare: matches!(self.work, Work::Prepare { .. }),
            outcome: Err(("roll job", self.dir.clone(), error)),
        }
    }

    /// Runs the job's I/O (blocking) with `disk`, the log's disk.
    pub fn run(self, disk: &dyn Disk) -> RollDone {
        let is_prepare = matches!(self.work, Work::Prepare { .. });
        let dir = self.dir.as_path();
        let outcome = match self.work {
            Work::SyncNames(bases) => disk
                .sync_dir(dir)
                .map(|()| Finished::SyncNames(bases))
                .map_err(|e| ("sync dir", dir.to_path_buf(), e)),
            Work::Seal {
                base,
                file,
                size_bytes,
                trim,
                indexes,
            } => seal(disk, dir, base, file, size_bytes, trim, indexes.as_ref())
                .map(|()| Finished::Seal(base)),
            Work::Prepare {
                config,
                expected_bytes,
            } => prepare(disk, dir, &config, expected_bytes).map(Finished::Prepare),
            Work::Snapshot { snapshot, obsolete } => {
                write_snapshot(disk, dir, &snapshot, &obsolete).map(|()| Finished::Snapshot {
                    offset: snapshot.offset,
                    removed: obsolete,
                })
            }
        };
        RollDone {
            owner: self.owner,
            prepare: is_prepare,
            outcome,
        }
    }
}

fn seal(
    disk: &dyn Disk,
    dir: &Path,
    base: i64,
    file: FileId,
    size_bytes: u64,
    trim: bool,
    indexes: Option<&SegmentIndexes>,
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let log_path = || dir.join(crate::segment::file_name(base, FileKind::Log));
    if trim {
        disk.set_len(file, size_bytes)
            .map_err(|e| ("trim preallocation", log_path(), e))?;
    }
    if let Some(indexes) = indexes {
        write_indexes(disk, dir, base, &indexes.offset, &indexes.time)
            .map_err(|(path, e)| ("write index", path, e))?;
    }
    disk.fdatasync(file)
        .map_err(|e| ("fdatasync", log_path(), e))?;
    disk.sync_dir(dir)
        .map_err(|e| ("sync dir", dir.to_path_buf(), e))
}

fn prepare(
    disk: &dyn Disk,
    dir: &Path,
    config: &LogConfig,
    expected_bytes: u64,
) -> Result<Prepared, (&'static str, PathBuf, io::Error)> {
    let path = dir.join(PREPARED_FILE);
    match disk.remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(("remove stale prepared segment", path, e)),
    }
    let file = disk
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| ("create prepared segment", path.clone(), e))?;
    let ready = preallocate(disk, file, config, 0, expected_bytes)
        .and_then(|len| disk.sync_dir(dir).map(|()| len));
    match ready {
        Ok(file_len) => Ok(Prepared { file, file_len }),
        Err(e) => {
            disk.close(file);
            Err(("prepare segment", path, e))
        }
    }
}

impl PartitionLog {
    /// The durable offset: what completed fdatasyncs cover, but never into a segment whose name
    /// a crash could still lose.
    pub(crate) fn durable(&self) -> i64 {
        let name_cap = self.pending_names.iter().copied().min().unwrap_or(i64::MAX);
        self.durable_offset.min(name_cap)
    }

    /// The recovery point to record (watermark, checkpoint): the durable offset, kept inside
    /// the oldest sealed segment whose seal is not done, so that recovery rescans it.
    pub(crate) fn recovery_point(&self) -> i64 {
        let seal_cap = self
            .pending_seals
            .iter()
            .filter_map(|base| self.segments.get(base))
            .map(|s| s.next_offset - 1)
            .min()
            .unwrap_or(i64::MAX);
        self.durable().min(seal_cap)
    }

    /// Whether roll work waits for an executor and none is out.
    pub fn has_roll_work(&self) -> bool {
        !self.roll_job_out && !self.roll_queue.is_empty() && self.failed.is_none() && !self.closed
    }

    /// Whether a roll job is out (taken, not yet completed).
    pub fn roll_job_out(&self) -> bool {
        self.roll_job_out
    }

    /// How rolls went since the log was opened.
    pub fn roll_stats(&self) -> RollStats {
        self.roll_stats
    }

    /// Takes the next piece of roll work, unless one is out, the log failed or closed, or
    /// there is none. Run it with [`RollJob::run`] and hand the result back with
    /// [`PartitionLog::complete_roll_job`]; until then the log refuses changes to its files
    /// ([`LogError::SyncInFlight`]).
    pub fn take_roll_job(&mut self) -> Option<RollJob> {
        if !self.has_roll_work() {
            return None;
        }
        // Bounded by the queue (a few entries): each pass removes one.
        while let Some(queued) = self.roll_queue.pop_front() {
            if let Some(work) = self.work_for(queued) {
                self.roll_job_out = true;
                return Some(RollJob {
                    owner: self.id,
                    dir: self.dir.clone(),
                    work,
                });
            }
        }
        None
    }

    /// What `queued` asks for now, if anything is still to do.
    fn work_for(&mut self, queued: Queued) -> Option<Work> {
        match queued {
            Queued::SyncNames if !self.pending_names.is_empty() => {
                Some(Work::SyncNames(self.pending_names.clone()))
            }
            Queued::Seal(base) if self.pending_seals.contains(&base) => {
                let segment = self.segments.get(&base)?;
                Some(Work::Seal {
                    base,
                    file: segment.log,
                    size_bytes: segment.size_bytes,
                    trim: segment.file_len > segment.size_bytes,
                    indexes: segment.resident().cloned(),
                })
            }
            Queued::Prepare if self.prepared.is_none() => Some(Work::Prepare {
                config: Box::new(self.config.clone()),
                // Half way to the roll: the active segment is on course to hold twice this.
                expected_bytes: self.active().size_bytes.saturating_mul(2),
            }),
            Queued::Snapshot => {
                let snapshot = self.pending_snapshot.take()?;
                Some(Work::Snapshot {
                    obsolete: self.obsolete_snapshots(),
                    snapshot,
                })
            }
            _ => None,
        }
    }

    /// Takes back a job from [`PartitionLog::take_roll_job`] once run. A failed directory sync
    /// or seal fail-stops the partition, as any failed write or sync does; a failed
    /// preparation only means the next roll is synchronous (counted in
    /// [`RollStats::failed_prepares`]; not retried before that roll).
    pub fn complete_roll_job(&mut self, done: RollDone) -> Result<(), LogError> {
        if done.owner != self.id || !self.roll_job_out {
            return Err(LogError::ForeignSync);
        }
        self.roll_job_out = false;
        let finished = match done.outcome {
            Ok(finished) => finished,
            Err(_) if done.prepare => {
                self.roll_stats.failed_prepares += 1;
                self.prepare_blocked_for = Some(self.active().base_offset);
                return self.check_usable();
            }
            Err((op, path, e)) => return Err(self.fail(op, path, &e)),
        };
        match finished {
            Finished::SyncNames(bases) => self.pending_names.retain(|b| !bases.contains(b)),
            Finished::Seal(base) => {
                self.pending_seals.retain(|b| *b != base);
                if let Some(segment) = self.segments.get_mut(&base) {
                    segment.file_len = segment.size_bytes;
                    // Its fdatasync covered all of it: no later sync needs to.
                    self.unsynced.retain(|b| *b != base);
                    self.indexes_to_disk(base);
                }
            }
            Finished::Prepare(prepared) => {
                if self.closed || self.prepared.is_some() {
                    self.discard_prepared(prepared);
                } else {
                    self.prepared = Some(prepared);
                }
            }
            Finished::Snapshot { offset, removed } => self.snapshot_written(offset, &removed),
        }
        self.check_usable()
    }

    /// Runs every queued roll job here, synchronously (the simple path: `flush`, `close`).
    pub fn run_roll_jobs(&mut self) -> Result<(), LogError> {
        let disk = Arc::clone(&self.disk);
        // Bounded by the queue: each job removes its entry, and running one queues nothing.
        while let Some(job) = self.take_roll_job() {
            let done = job.run(disk.as_ref());
            self.complete_roll_job(done)?;
        }
        Ok(())
    }

    /// Queues `queued` unless it is already waiting.
    pub(crate) fn queue_roll_work(&mut self, queued: Queued) {
        if !self.roll_queue.contains(&queued) {
            self.roll_queue.push_back(queued);
        }
    }

    /// Queues the preparation of the next segment once the active one is half way to a roll
    /// (by size or age), unless a file is prepared or being prepared.
    pub(crate) fn maybe_prepare_next(&mut self, now_ms: i64) {
        let active = self.active();
        if self.prepared.is_some()
            || self.roll_queue.contains(&Queued::Prepare)
            || self.prepare_blocked_for == Some(active.base_offset)
        {
            return;
        }
        let half_full = active.size_bytes.saturating_mul(2) >= self.config.segment_bytes;
        let half_old = self
            .config
            .segment_ms
            .is_some_and(|ms| now_ms.saturating_sub(active.created_ms) >= ms / 2);
        if half_full || half_old {
            self.queue_roll_work(Queued::Prepare);
        }
    }

    /// Seals the active segment and starts a new one at `base_offset`: into the prepared file
    /// when there is one (a rename; the rest is left to roll jobs), else synchronously.
    pub(crate) fn roll(&mut self, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let old = self.active_mut();
        old.finish_time_index();
        let old_base = old.base_offset;
        let mut sealed_now = false;
        let segment = if self.pending_seals.len() >= MAX_PENDING_SEALS {
            // Seals lag behind the rolls: this roll seals its segment itself, which holds
            // the appends back until the disk catches up.
            self.roll_stats.synchronous_rolls += 1;
            self.seal_now(old_base)?;
            sealed_now = true;
            self.create_next_segment(base_offset, now_ms)?
        } else if let Some(prepared) = self.prepared.take() {
            self.roll_stats.prepared_rolls += 1;
            self.roll_into(prepared, old_base, base_offset, now_ms)?
        } else {
            // No file prepared in time (still being prepared, or its preparation failed):
            // create one here (with the default preallocation, a small allocation and a
            // directory sync), and leave the seal to a job as after a prepared roll. Sealing
            // here would fdatasync a whole segment on the appending thread.
            self.roll_stats.unprepared_rolls += 1;
            let segment = self.create_next_segment(base_offset, now_ms)?;
            self.pending_seals.push(old_base);
            self.queue_roll_work(Queued::Seal(old_base));
            segment
        };
        self.segments.insert(base_offset, segment);
        if sealed_now {
            self.indexes_to_disk(old_base);
        }
        // Queued after the seal: written once the sealed segment is durable.
        self.queue_producer_snapshot(base_offset);
        Ok(())
    }

    /// Creates the segment at `base_offset` here and now (the roll's path without a prepared
    /// file).
    fn create_next_segment(&mut self, base_offset: i64, now_ms: i64) -> Result<Segment, LogError> {
        match create_segment(
            self.disk.as_ref(),
            &self.dir,
            base_offset,
            &self.config,
            now_ms,
        ) {
            Ok(segment) => {
                // Its directory sync made every earlier rename durable too.
                self.pending_names.clear();
                Ok(segment)
            }
            Err((path, e)) => Err(self.fail("create segment", path, &e)),
        }
    }

    /// The roll's fast path: the prepared file becomes the segment at `base_offset`; its name
    /// and the old segment's seal are left to jobs.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the prepared file is handed over: nothing may use it again"
    )]
    fn roll_into(
        &mut self,
        prepared: Prepared,
        old_base: i64,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let Prepared { file, file_len } = prepared;
        let to = self.path_of(base_offset, FileKind::Log);
        if let Err(e) = self.disk.rename(&self.dir.join(PREPARED_FILE), &to) {
            self.disk.close(file);
            return Err(self.fail("rename prepared segment", to, &e));
        }
        let mut segment = Segment::new(base_offset, file, self.config.max_index_entries, now_ms);
        segment.file_len = file_len;
        self.pending_names.push(base_offset);
        self.pending_seals.push(old_base);
        self.queue_roll_work(Queued::SyncNames);
        self.queue_roll_work(Queued::Seal(old_base));
        Ok(segment)
    }

    /// The roll's slow path: trims the segment at `base`, writes its indexes and fdatasyncs it,
    /// here and now. (A sealed segment is durable before the next one gets data, as Kafka
    /// flushes a segment when it rolls: recovery loads the segments below the recovery point
    /// as they are, length included.)
    fn seal_now(&mut self, base: i64) -> Result<(), LogError> {
        let disk = Arc::clone(&self.disk);
        let path = self.path_of(base, FileKind::Log);
        let Some(old) = self.segments.get_mut(&base) else {
            return Ok(());
        };
        let file = old.log;
        if old.file_len > old.size_bytes {
            let size = old.size_bytes;
            old.file_len = size;
            if let Err(e) = disk.set_len(file, size) {
                return Err(self.fail("trim preallocation", path, &e));
            }
        }
        if let Some(segment) = self.segments.get(&base)
            && let Err((path, e)) = write_index_files(disk.as_ref(), &self.dir, segment)
        {
            return Err(self.fail("write index", path, &e));
        }
        if let Err(e) = disk.fdatasync(file) {
            return Err(self.fail("fdatasync", path, &e));
        }
        // Its data is durable; the next sync (or `begin_sync` finding nothing to do) moves the
        // durable offset past it.
        self.unsynced.retain(|b| *b != base);
        Ok(())
    }

    /// Forgets roll work about segments that are gone (truncated or deleted).
    pub(crate) fn forget_roll_work_of_removed(&mut self) {
        let segments = &self.segments;
        self.pending_names.retain(|b| segments.contains_key(b));
        let active = self.active().base_offset;
        self.pending_seals
            .retain(|b| *b != active && segments.contains_key(b));
    }

    /// Closes and removes a prepared file that will not be used.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the prepared file is handed over: nothing may use it again"
    )]
    pub(crate) fn discard_prepared(&self, prepared: Prepared) {
        let Prepared { file, .. } = prepared;
        self.disk.close(file);
        // A leftover is removed at the next open.
        let _ = self.disk.remove_file(&self.dir.join(PREPARED_FILE));
    }

    /// Drops a queued preparation (at close: the file would only be discarded).
    pub(crate) fn forget_queued_prepare(&mut self) {
        self.roll_queue.retain(|q| *q != Queued::Prepare);
    }

    /// Discards the prepared file, if any (at close).
    pub(crate) fn discard_prepared_file(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            self.discard_prepared(prepared);
        }
    }
}
