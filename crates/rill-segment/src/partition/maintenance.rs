//! Changes to the log other than appends: truncation, deletion of old segments (explicit and
//! by retention), checkpoints, and clean shutdown. Each multi-file change orders its steps so
//! that a crash at any point leaves a state recovery completes: the checkpoint moves first when
//! it must not lead the data (truncation lowers the recovery point before cutting), and
//! files are removed only after the log start that makes them dead is durable.

use super::{PartitionLog, create_segment, preallocate};
use crate::checkpoint::{self, Checkpoint};
use crate::error::LogError;
use crate::index_files::write_index_files;
use crate::scan;
use crate::segment::FileKind;

/// What retention or `delete_before` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of batches deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// Drops every batch at or after `offset` (the whole batch containing it, if it falls inside
    /// one), for a replica whose log diverged. Returns the new log end. The recovery point (and
    /// the log start, if the cut goes below it) is lowered durably before any byte is cut.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<i64, LogError> {
        self.check_idle()?;
        if offset >= self.written_offset {
            return Ok(self.written_offset);
        }
        if offset < self.log_start_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.written_offset,
            });
        }
        let Some(range) = self.locate(offset, 0, super::ReadLimit::Written)? else {
            return Ok(self.written_offset);
        };
        let new_end = range.first_offset;
        let keep_base = range.segment_base_offset;
        if self.watermark.last.durable_offset > new_end {
            self.write_watermark_now(new_end)?;
        }
        if self.checkpoint.recovery_point > new_end || self.log_start_offset > new_end {
            // As Kafka does, truncating below the log start moves the start down to the end.
            self.log_start_offset = self.log_start_offset.min(new_end);
            self.durable_offset = self.durable_offset.min(new_end);
            let recovery_point = self.checkpoint.recovery_point.min(new_end);
            self.write_checkpoint_at(recovery_point, now_ms)?;
        }
        let doomed: Vec<i64> = self
            .segments
            .range(keep_base + 1..)
            .map(|(b, _)| *b)
            .collect();
        self.remove_segments(&doomed)?;
        let disk = std::sync::Arc::clone(&self.disk);
        let path = self.path_of(keep_base, FileKind::Log);
        let Some(segment) = self.segments.get(&keep_base) else {
            return Ok(self.written_offset);
        };
        let file = segment.log;
        let cut = disk
            .set_len(file, range.position)
            .and_then(|()| preallocate(disk.as_ref(), file, &self.config, range.position, 0))
            .and_then(|len| disk.fdatasync(file).map(|()| len));
        let file_len = match cut {
            Ok(len) => len,
            Err(e) => return Err(self.fail("truncate", path, &e)),
        };
        // The segment is active again: its indexes are rebuilt from what remains.
        for kind in [FileKind::OffsetIndex, FileKind::TimeIndex] {
            let _ = disk.remove_file(&self.path_of(keep_base, kind));
        }
        let created_ms = segment.created_ms;
        let mut rebuilt = scan::rebuild_segment(
            disk.as_ref(),
            file,
            keep_base,
            range.position,
            &self.config,
            now_ms,
        )
        .segment;
        rebuilt.file_len = file_len;
        rebuilt.created_ms = created_ms;
        self.segments.insert(keep_base, rebuilt);
        self.index_cache.remove(self.id, keep_base);
        // The cut segment was synced above; later ones are gone.
        self.unsynced.retain(|b| *b < keep_base);
        self.next_offset = new_end;
        self.written_offset = new_end;
        self.durable_offset = self.durable_offset.min(new_end);
        self.lower_clean_point(new_end);
        if self.unsynced.is_empty() {
            self.durable_offset = new_end;
            self.unsynced_bytes = 0;
        }
        // The producers' last batches may be gone: the state is loaded again up to the new
        // end (snapshots beyond it removed).
        if self
            .pending_snapshot
            .as_ref()
            .is_some_and(|s| s.offset > new_end)
        {
            self.pending_snapshot = None;
        }
        // A failure to read them back leaves a state that could store a retry twice: the
        // partition fail-stops, and reopening loads the state again.
        if let Err(e) = self.load_producers(now_ms) {
            let dir = self.dir.clone();
            return Err(self.fail(
                "reload producer state",
                dir,
                &std::io::Error::other(e.to_string()),
            ));
        }
        Ok(new_end)
    }

    /// Removes every batch and starts the log again, empty, at `offset` (anywhere: below the
    /// log start, inside the log or beyond its end): Kafka's `truncateFullyAndStartAt`, for a
    /// replica that takes a snapshot instead of the log below it. Returns the new log start
    /// (= end).
    ///
    /// Crash-safe: recovery finds the empty log at `offset`, or the log as it was before the
    /// call or after one of its steps: cut at `offset` (when `offset` lay inside it), or
    /// emptied at its old start (when `offset` lay below a log that held batches); never
    /// anything else. Batches at or after `offset` are cut first (as `truncate_to` does,
    /// recovery point lowered durably before). Then, when `offset` is at or above the log start, the checkpoint records the
    /// new start (recovery deletes every segment below it and starts empty there, see
    /// `recovery`); below it, nothing is needed yet (the log is empty, and recovery starts an
    /// empty log at the recorded start whatever segments it finds below). Then the files go,
    /// the new segment is created, and the watermark and the checkpoint record the new start.
    pub fn truncate_fully_and_start_at(
        &mut self,
        offset: i64,
        now_ms: i64,
    ) -> Result<i64, LogError> {
        self.check_idle()?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.written_offset,
            });
        }
        let cut = offset.max(self.log_start_offset);
        if cut < self.written_offset {
            self.truncate_to(cut, now_ms)?;
        }
        self.forget_queued_prepare();
        self.discard_prepared_file();
        if offset >= self.log_start_offset {
            self.log_start_offset = offset;
            self.write_checkpoint_at(self.recovery_point().min(offset), now_ms)?;
        } else {
            debug_assert_eq!(self.written_offset, self.log_start_offset, "emptied above");
            // The recovery point goes down to the new start first (watermark, then checkpoint
            // with the old start still recorded), so recovery never expects the old end from
            // a log that starts lower.
            self.write_watermark_now(offset)?;
            self.write_checkpoint_at(offset, now_ms)?;
        }
        // Every file goes; `remove_segments` creates the empty one at `next_offset`.
        self.next_offset = offset;
        let doomed: Vec<i64> = self.segments.keys().copied().collect();
        self.remove_segments(&doomed)?;
        self.active_mut().created_ms = now_ms;
        self.log_start_offset = offset;
        self.written_offset = offset;
        self.durable_offset = offset;
        self.lower_clean_point(offset);
        self.unsynced.clear();
        self.unsynced_bytes = 0;
        // No batch is left for the producers' state to describe.
        self.pending_snapshot = None;
        self.producers.truncate_head(i64::MAX);
        self.remove_all_snapshots()?;
        self.write_watermark_now(offset)?;
        self.write_checkpoint_at(offset, now_ms)?;
        debug_assert_eq!(self.segments.len(), 1);
        debug_assert_eq!(self.active().base_offset, offset);
        Ok(offset)
    }

    /// Writes the watermark's both slots with `durable_offset`, durably, now.
    fn write_watermark_now(&mut self, durable_offset: i64) -> Result<(), LogError> {
        let disk = std::sync::Arc::clone(&self.disk);
        if let Err(e) = self.watermark.write_both(disk.as_ref(), durable_offset) {
            let path = self.dir.join(crate::watermark::WATERMARK_FILE);
            return Err(self.fail("write watermark", path, &e));
        }
        Ok(())
    }

    /// Advances the log start offset to `offset` (at most the log end) and deletes the segments
    /// that lie entirely below it. Reads below the new start fail with `OffsetOutOfRange`.
    pub fn delete_before(
        &mut self,
        offset: i64,
        now_ms: i64,
    ) -> Result<RetentionOutcome, LogError> {
        self.check_idle()?;
        if offset > self.written_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.written_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset,
                ..RetentionOutcome::default()
            });
        }
        self.advance_log_start(offset, now_ms)
    }

    /// Deletes the oldest sealed segments that retention allows: those whose newest timestamp is
    /// older than `retention_ms`, and those whose removal keeps the log at or above
    /// `retention_bytes`. The active segment is never deleted. Nothing is deleted when the
    /// cleanup policy is compaction alone.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.check_idle()?;
        if !self.config.cleanup_policy.deletes() {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset,
                ..RetentionOutcome::default()
            });
        }
        let mut remaining = self.size_bytes();
        let mut new_start = self.log_start_offset;
        let sealed = self.segments.len().saturating_sub(1);
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, segment) in self.segments.values().take(sealed).enumerate() {
            let too_old = match self.config.retention_ms {
                Some(ms) => self.max_timestamp_of(segment)? < now_ms.saturating_sub(ms),
                None => false,
            };
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| remaining - segment.size_bytes >= limit);
            if !(too_old || too_big) {
                break;
            }
            remaining -= segment.size_bytes;
            new_start = new_start.max(bases[i + 1]);
        }
        if new_start <= self.log_start_offset {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset,
                ..RetentionOutcome::default()
            });
        }
        self.advance_log_start(new_start, now_ms)
    }

    fn advance_log_start(
        &mut self,
        offset: i64,
        now_ms: i64,
    ) -> Result<RetentionOutcome, LogError> {
        self.log_start_offset = offset;
        self.producers.truncate_head(offset);
        // The new start is durable before any file goes; a crash in between leaves files that
        // recovery deletes because they lie below the start.
        self.write_checkpoint_at(self.recovery_point(), now_ms)?;
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .zip(self.segments.keys().skip(1))
            .filter(|(_, next_base)| **next_base <= offset)
            .map(|((base, _), _)| *base)
            .collect();
        let bytes_deleted = doomed
            .iter()
            .filter_map(|b| self.segments.get(b))
            .map(|s| s.size_bytes)
            .sum();
        self.remove_segments(&doomed)?;
        self.remove_snapshots_below(offset)?;
        Ok(RetentionOutcome {
            segments_deleted: doomed.len(),
            bytes_deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Closes and removes the files of the given segments, then syncs the directory.
    fn remove_segments(&mut self, bases: &[i64]) -> Result<(), LogError> {
        if bases.is_empty() {
            return Ok(());
        }
        let disk = std::sync::Arc::clone(&self.disk);
        for base in bases {
            if let Some(segment) = self.segments.remove(base) {
                disk.close(segment.log);
            }
            self.index_cache.remove(self.id, *base);
            self.unsynced.retain(|b| b != base);
            if let Err((path, e)) = crate::segment::remove_files(disk.as_ref(), &self.dir, *base) {
                return Err(self.fail("remove", path, &e));
            }
        }
        if let Err(e) = disk.sync_dir(&self.dir) {
            let dir = self.dir.clone();
            return Err(self.fail("sync dir", dir, &e));
        }
        if self.segments.is_empty() {
            // Never reached by callers (they keep the active segment), but keep the invariant.
            let base = self.next_offset;
            match create_segment(disk.as_ref(), &self.dir, base, &self.config, 0) {
                Ok(s) => {
                    self.segments.insert(base, s);
                }
                Err((path, e)) => return Err(self.fail("create segment", path, &e)),
            }
        }
        self.forget_roll_work_of_removed();
        Ok(())
    }

    /// Writes the checkpoint if the recovery point can advance and `checkpoint_interval_ms` has
    /// passed since the last one. Returns whether it wrote. With the durable watermark tracked
    /// (the default) the watermark carries the recovery point, so this writes nothing: the
    /// checkpoint changes only with the log start and at close.
    pub fn maybe_checkpoint(&mut self, now_ms: i64) -> Result<bool, LogError> {
        self.check_idle()?;
        if self.config.track_durable_watermark
            || !self.checkpoint_interval_elapsed(now_ms)
            || self.recovery_point() <= self.checkpoint.recovery_point
        {
            return Ok(false);
        }
        self.write_checkpoint_at(self.recovery_point(), now_ms)?;
        Ok(true)
    }

    /// Clean shutdown: makes everything durable, trims the active segment's preallocation,
    /// writes its indexes, and writes the checkpoint with the clean-shutdown flag, so the next
    /// open loads without scanning. A failed partition is closed without the flag and the
    /// failure returned.
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.closed {
            return Ok(());
        }
        let result = self.close_cleanly();
        self.closed = true;
        self.discard_prepared_file();
        for segment in self.segments.values() {
            self.disk.close(segment.log);
        }
        self.disk.close(self.watermark.file);
        result
    }

    fn close_cleanly(&mut self) -> Result<(), LogError> {
        self.check_idle()?;
        self.forget_queued_prepare();
        self.run_roll_jobs()?;
        self.discard_prepared_file();
        let disk = std::sync::Arc::clone(&self.disk);
        let active = self.active();
        let (file, base, size, file_len) = (
            active.log,
            active.base_offset,
            active.size_bytes,
            active.file_len,
        );
        if file_len > size {
            if let Err(e) = disk.set_len(file, size) {
                return Err(self.fail("trim preallocation", self.path_of(base, FileKind::Log), &e));
            }
            if !self.unsynced.contains(&base) {
                self.unsynced.push(base);
            }
        }
        // Bounded by the unsynced segments; each pass removes one.
        while let Some(&base) = self.unsynced.first() {
            if let Some(segment) = self.segments.get(&base)
                && let Err(e) = disk.fdatasync(segment.log)
            {
                return Err(self.fail("fdatasync", self.path_of(base, FileKind::Log), &e));
            }
            self.unsynced.remove(0);
        }
        self.durable_offset = self.written_offset;
        self.unsynced_bytes = 0;
        let dir = self.dir.clone();
        let active = self.active_mut();
        active.file_len = active.size_bytes;
        active.finish_time_index();
        let active = self.active();
        if let Err((path, e)) = write_index_files(disk.as_ref(), &dir, active) {
            return Err(self.fail("write index", path, &e));
        }
        // Before the clean checkpoint: its directory sync makes the snapshot's name durable
        // too, and the next open loads the state without a rebuild.
        self.write_snapshot_now()?;
        let clean = Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: self.written_offset,
            clean_shutdown: true,
        };
        checkpoint::write(disk.as_ref(), &dir, &clean)?;
        self.checkpoint = clean;
        Ok(())
    }
}
