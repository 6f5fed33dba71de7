//! Appends and group commit.
//!
//! A batch is validated where it is produced ([`ValidBatch::validate`], on the caller's
//! thread), then [`PartitionLog::append_valid`] assigns its offsets, rolls the segment if
//! needed and writes it into the page cache at once with the disk's write call: it is visible
//! (written) when the call returns. Durability is separate and pipelined:
//! [`PartitionLog::begin_sync`] names the files whose fdatasync makes everything written so far
//! durable, the executor runs those fdatasyncs however it likes (on a ring, on threads), and
//! [`PartitionLog::complete_sync`] advances the durable offset to what the sync covered. Writes
//! go on while a sync is in flight; the next sync covers them. At most one sync is in flight per
//! partition, so every durable acknowledgement follows a completed fdatasync issued after its
//! write.

use super::PartitionLog;
use crate::batch::{self, BatchError, BatchHeader};
use crate::disk::FileId;
use crate::error::LogError;
use crate::producers::Verdict;
use crate::segment::FileKind;
use crate::watermark::Slot;
use bytes::BytesMut;
use std::io::{self, IoSlice};

/// A batch that passed [`batch::validate_for_append`]: its bytes and the header parsed from them.
#[derive(Debug)]
pub struct ValidBatch {
    bytes: BytesMut,
    header: BatchHeader,
    /// The least record timestamp.
    min_timestamp: i64,
    /// Whether a record has a null key.
    keyless: bool,
}

impl ValidBatch {
    /// Validates `bytes` as a producer's batch (size, shape, CRC, records): the CPU work of an
    /// append, done on the caller's thread before any shared state is touched.
    pub fn validate(bytes: BytesMut, max_batch_bytes: usize) -> Result<Self, BatchError> {
        let valid = batch::validate_producer_batch(&bytes, max_batch_bytes)?;
        Ok(Self {
            bytes,
            header: valid.header,
            min_timestamp: valid.min_timestamp,
            keyless: valid.keyless,
        })
    }

    /// Makes the batch's timestamps log-append time `now_ms` (attribute, `maxTimestamp`, CRC;
    /// see [`batch::stamp_log_append_time`]): for a topic of that timestamp type, on the
    /// caller's thread, since it recomputes the CRC.
    pub fn stamp_log_append_time(&mut self, now_ms: i64) {
        // A valid batch holds a header: the stamp always applies.
        if let Some(crc) = batch::stamp_log_append_time(&mut self.bytes, now_ms) {
            self.header.attributes.0 |= batch::Attributes::TIMESTAMP_TYPE_LOG_APPEND;
            self.header.max_timestamp = now_ms;
            self.header.crc = crc;
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it has no bytes (never: a valid batch holds at least a header).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The parsed header (offsets not yet assigned).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}

/// What one sync covers: issued by [`PartitionLog::begin_sync`], handed back to
/// [`PartitionLog::complete_sync`] with the fdatasyncs' result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTicket {
    owner: u64,
    /// The written offset when the sync began: durable once it completes.
    pub target_offset: i64,
    /// Unsynced bytes the sync covers.
    bytes: u64,
}

/// A watermark slot written and not yet synced: issued by [`PartitionLog::begin_watermark`],
/// handed back to [`PartitionLog::complete_watermark`] with its fdatasync's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkTicket {
    owner: u64,
    slot: Slot,
}

/// A failed fdatasync: the file and the error.
pub type SyncFailure = (FileId, io::Error);

impl PartitionLog {
    /// Assigns `batch` its offsets (rewriting `baseOffset`, and `partitionLeaderEpoch` when set,
    /// without touching the CRC), rolls the segment if needed, and writes it. Visible to reads
    /// on return; durable after a sync that began later completes. A write error fail-stops the
    /// partition. Fails with [`LogError::SyncRequired`] (and changes nothing) when the batch
    /// would take the unsynced bytes past `max_unsynced_bytes`: sync first.
    pub fn append_valid(
        &mut self,
        batch: ValidBatch,
        now_ms: i64,
    ) -> Result<super::AppendInfo, LogError> {
        self.check_usable()?;
        self.check_timestamps(&batch, now_ms)?;
        if batch.keyless && self.config.cleanup_policy.compacts() {
            return Err(LogError::InvalidBatch(BatchError::MissingKey));
        }
        if let Verdict::Duplicate(original) = self.producers.check(&batch.header)? {
            return Ok(super::AppendInfo {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
                max_timestamp: original.max_timestamp,
                batch_bytes: 0,
                duplicate: true,
            });
        }
        let ValidBatch {
            bytes: mut data,
            mut header,
            ..
        } = batch;
        if self.must_sync_before(data.len()) {
            return Err(LogError::SyncRequired);
        }
        let base_offset = self.next_offset;
        let last_offset = base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .filter(|last| *last < i64::MAX)
            .ok_or(LogError::OffsetOverflow)?;
        if self
            .active()
            .must_roll(header.total_bytes(), last_offset, &self.config, now_ms)
        {
            self.roll(base_offset, now_ms)?;
        }
        batch::set_base_offset(&mut data, base_offset);
        if let Some(epoch) = self.leader_epoch {
            batch::set_partition_leader_epoch(&mut data, epoch);
            header.partition_leader_epoch = epoch;
        }
        header.base_offset = base_offset;
        let active = self.active();
        let (file, position, segment_base) = (active.log, active.size_bytes, active.base_offset);
        self.allocate_ahead(file, position + data.len() as u64)?;
        if let Err(e) = self.write_at(file, position, &data) {
            let path = self.path_of(segment_base, FileKind::Log);
            return Err(self.fail("write", path, &e));
        }
        let (interval, max_entries) = (
            self.config.index_interval_bytes,
            self.config.max_index_entries,
        );
        let active = self.active_mut();
        active.push_batch(&header, interval, max_entries);
        if !self.unsynced.contains(&segment_base) {
            self.unsynced.push(segment_base);
        }
        self.unsynced_bytes += header.total_bytes();
        self.next_offset = header.next_offset();
        self.written_offset = self.next_offset;
        self.producers.record(&header, now_ms);
        self.maybe_prepare_next(now_ms);
        Ok(super::AppendInfo {
            base_offset,
            last_offset,
            max_timestamp: header.max_timestamp,
            batch_bytes: header.total_bytes(),
            duplicate: false,
        })
    }

    /// With [`crate::Preallocate::Ahead`], allocates the active segment's file a step past
    /// `end` when a write would reach beyond what is allocated (once per step of data).
    fn allocate_ahead(&mut self, file: FileId, end: u64) -> Result<(), LogError> {
        if !matches!(self.config.preallocate, crate::Preallocate::Ahead { .. })
            || end <= self.active().file_len
        {
            return Ok(());
        }
        match super::preallocate(self.disk.as_ref(), file, &self.config, end, 0) {
            Ok(len) => {
                self.active_mut().file_len = len;
                Ok(())
            }
            Err(e) => {
                let path = self.path_of(self.active().base_offset, FileKind::Log);
                Err(self.fail("preallocate", path, &e))
            }
        }
    }

    /// Writes all of `data` at `position`, resubmitting the rest after a short write.
    fn write_at(&self, file: FileId, position: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0usize;
        // Each pass writes at least one byte or returns: at most `data.len()` passes.
        while done < data.len() {
            let slices = [IoSlice::new(&data[done..])];
            match self.disk.write_at(file, position + done as u64, &slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The clock limits on a create-time batch's timestamps (a log-append-time batch was
    /// stamped by the engine, so they do not apply).
    fn check_timestamps(&self, batch: &ValidBatch, now_ms: i64) -> Result<(), LogError> {
        if batch.header.attributes.is_log_append_time() {
            return Ok(());
        }
        if let Some(ahead) = self.config.max_timestamp_ahead_ms
            && batch.header.max_timestamp > now_ms.saturating_add(ahead)
        {
            return Err(LogError::InvalidBatch(BatchError::TimestampAhead {
                max_timestamp: batch.header.max_timestamp,
                now_ms,
                allowed_ahead_ms: ahead,
            }));
        }
        if let Some(behind) = self.config.max_timestamp_behind_ms
            && batch.min_timestamp < now_ms.saturating_sub(behind)
        {
            return Err(LogError::InvalidBatch(BatchError::TimestampBehind {
                min_timestamp: batch.min_timestamp,
                now_ms,
                allowed_behind_ms: behind,
            }));
        }
        Ok(())
    }

    /// Whether a batch of `batch_bytes` would exceed `max_unsynced_bytes`, so that a sync must
    /// complete before it can be appended.
    pub fn must_sync_before(&self, batch_bytes: usize) -> bool {
        self.unsynced_bytes > 0
            && self.unsynced_bytes + batch_bytes as u64 > self.config.max_unsynced_bytes
    }

    /// Whether a sync should start even though nobody waits for one: half the unsynced bound is
    /// used, so appends rarely meet the bound.
    pub fn wants_sync(&self) -> bool {
        self.sync_in_flight.is_none()
            && self.failed.is_none()
            && !self.closed
            && self.unsynced_bytes >= self.config.max_unsynced_bytes / 2
    }

    /// Whether data was written that no completed or running sync covers.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Whether a sync begun now would move the durable offset: data is unsynced, or synced
    /// data is not yet counted durable. (When neither, only roll jobs can: see [`super::roll`].)
    pub fn sync_would_advance(&self) -> bool {
        !self.unsynced.is_empty() || self.durable_offset < self.written_offset
    }

    /// Whether a sync is in flight.
    pub fn sync_in_flight(&self) -> bool {
        self.sync_in_flight.is_some()
    }

    /// Begins a sync of everything written so far: puts into `files` the files to fdatasync
    /// (every segment written since the last sync began). `None` when there is nothing to sync.
    /// At most one sync is in flight: [`LogError::SyncInFlight`] otherwise. Call
    /// [`PartitionLog::begin_watermark`] with it to record what was durable before it.
    pub fn begin_sync(&mut self, files: &mut Vec<FileId>) -> Result<Option<SyncTicket>, LogError> {
        self.check_usable()?;
        if self.sync_in_flight.is_some() {
            return Err(LogError::SyncInFlight);
        }
        if self.unsynced.is_empty() {
            // Everything written is covered by completed fdatasyncs (a roll's own, a seal
            // job's, or a truncation's).
            self.durable_offset = self.written_offset;
            self.unsynced_bytes = 0;
            return Ok(None);
        }
        files.clear();
        for base in &self.unsynced {
            if let Some(segment) = self.segments.get(base) {
                files.push(segment.log);
            }
        }
        std::mem::swap(&mut self.unsynced, &mut self.syncing);
        self.unsynced.clear();
        let ticket = SyncTicket {
            owner: self.id,
            target_offset: self.written_offset,
            bytes: self.unsynced_bytes,
        };
        self.sync_in_flight = Some(ticket);
        Ok(Some(ticket))
    }

    /// Takes back a sync begun by [`PartitionLog::begin_sync`] with the result of its
    /// fdatasyncs. On success the durable offset advances to what it covered; returns it. A
    /// failed fdatasync fail-stops the partition; it is never retried (after a failure the kernel
    /// may have dropped the dirty pages, so a later success would prove nothing).
    pub fn complete_sync(
        &mut self,
        ticket: SyncTicket,
        result: Result<(), SyncFailure>,
    ) -> Result<i64, LogError> {
        if ticket.owner != self.id || self.sync_in_flight != Some(ticket) {
            return Err(LogError::ForeignSync);
        }
        self.sync_in_flight = None;
        if let Err((file, e)) = result {
            self.syncing.clear();
            return Err(self.fail("fdatasync", self.path_of_file(file), &e));
        }
        self.syncing.clear();
        self.check_usable()?;
        // In release builds too: a durable acknowledgement follows from this offset, so a sync
        // that claims more than was written (a bug elsewhere) fail-stops the partition instead.
        if ticket.target_offset > self.written_offset {
            let claim = io::Error::other(format!(
                "a sync claims offset {} durable, beyond the written offset {}",
                ticket.target_offset, self.written_offset
            ));
            return Err(self.fail("complete sync", self.dir.clone(), &claim));
        }
        self.durable_offset = self.durable_offset.max(ticket.target_offset);
        self.unsynced_bytes = self.unsynced_bytes.saturating_sub(ticket.bytes);
        Ok(self.durable())
    }

    /// Writes the watermark's next slot with the offset durable now (into the page cache) and
    /// returns its file to fdatasync, unless the watermark is off, already current, written
    /// less than `watermark_interval_ms` ago, or a slot's fdatasync is still in flight.
    /// Acknowledgements never wait for it: the slot records what was already durable, so its
    /// own fdatasync only makes the record last. With one slot in flight at a time, the other
    /// slot always holds the previous value, durably.
    pub fn begin_watermark(
        &mut self,
        now_ms: i64,
    ) -> Result<Option<(FileId, WatermarkTicket)>, LogError> {
        self.check_usable()?;
        let due = now_ms < self.last_watermark_ms
            || now_ms.saturating_sub(self.last_watermark_ms) >= self.config.watermark_interval_ms;
        if !self.config.track_durable_watermark
            || !due
            || self.watermark_in_flight.is_some()
            || self.recovery_point() <= self.watermark.last.durable_offset
        {
            return Ok(None);
        }
        self.last_watermark_ms = now_ms;
        let (position, slot) = self.watermark.next_slot(self.recovery_point());
        let file = self.watermark.file;
        if let Err(e) = self.write_at(file, position, &slot.encode()) {
            let path = self.dir.join(crate::watermark::WATERMARK_FILE);
            return Err(self.fail("write watermark", path, &e));
        }
        let ticket = WatermarkTicket {
            owner: self.id,
            slot,
        };
        self.watermark_in_flight = Some(ticket);
        Ok(Some((file, ticket)))
    }

    /// Takes back a watermark slot begun by [`PartitionLog::begin_watermark`] with its
    /// fdatasync's result: on success it is the current slot; a failure fail-stops the
    /// partition, as any failed fdatasync does.
    pub fn complete_watermark(
        &mut self,
        ticket: WatermarkTicket,
        result: io::Result<()>,
    ) -> Result<(), LogError> {
        if ticket.owner != self.id || self.watermark_in_flight != Some(ticket) {
            return Err(LogError::ForeignSync);
        }
        self.watermark_in_flight = None;
        if let Err(e) = result {
            let path = self.dir.join(crate::watermark::WATERMARK_FILE);
            return Err(self.fail("fdatasync", path, &e));
        }
        self.watermark.last = ticket.slot;
        Ok(())
    }

    /// Appends one batch and, for [`super::Durability::Durable`], syncs at once with the disk's
    /// own calls: the simple, synchronous path (tests, tools, single-partition users).
    pub fn append(
        &mut self,
        batch: BytesMut,
        durability: super::Durability,
        now_ms: i64,
    ) -> Result<super::AppendInfo, LogError> {
        let batch = ValidBatch::validate(batch, self.config.max_batch_bytes)?;
        if self.must_sync_before(batch.len()) {
            self.flush()?;
        }
        let info = self.append_valid(batch, now_ms)?;
        if durability == super::Durability::Durable {
            self.flush()?;
        }
        Ok(info)
    }

    /// Makes everything written so far durable, with the disk's own fdatasync calls. Returns
    /// the durable offset. Roll jobs still queued run first, here.
    pub fn flush(&mut self) -> Result<i64, LogError> {
        self.run_roll_jobs()?;
        let mut files = Vec::new();
        let Some(ticket) = self.begin_sync(&mut files)? else {
            self.check_usable()?;
            return Ok(self.durable());
        };
        // The simple path records every sync: no interval.
        self.last_watermark_ms = i64::MIN;
        let watermark = self.begin_watermark(0)?;
        let result = files
            .iter()
            .try_for_each(|&file| self.disk.fdatasync(file).map_err(|e| (file, e)));
        let durable = self.complete_sync(ticket, result);
        if let Some((file, ticket)) = watermark {
            let result = self.disk.fdatasync(file);
            self.complete_watermark(ticket, result)?;
        }
        durable
    }
}
