//! Per-partition log settings.

use crate::batch::TimestampType;
use crate::error::LogError;

/// How segment files are preallocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preallocate {
    /// Files grow with each append.
    None,
    /// `fallocate` the whole segment (unwritten extents; the file length is the segment size).
    Fallocate,
    /// Write zeros over the whole segment and sync them, so appends overwrite an already
    /// allocated, already synced region and fdatasync needs no metadata journalling.
    Zeroed,
    /// `fallocate` `step_bytes` ahead of the data, again whenever appends reach the end of what
    /// is allocated: an append's blocks are allocated before its fdatasync, which then writes
    /// no allocation metadata, while a partition reserves at most `step_bytes` beyond its data.
    /// The default, with 1 MiB steps: measured here (ext4), one producer's 1-record durable
    /// appends p50 192 µs growing the file against 130 µs with 1 MiB allocated ahead (the same
    /// as a whole-segment `Fallocate`, which reserves `segment_bytes` per partition);
    /// 1000-record appends gained nothing measurable.
    Ahead {
        /// Bytes allocated past the data at a time.
        step_bytes: u64,
    },
}

impl Default for Preallocate {
    fn default() -> Self {
        Self::Ahead {
            step_bytes: 1 << 20,
        }
    }
}

/// What happens to old data (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Retention deletes old segments (by size and time).
    #[default]
    Delete,
    /// Compaction keeps the last record of each key; nothing is deleted by retention.
    Compact,
    /// Both: compaction, and retention by size and time.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the log is compacted.
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    /// Whether retention deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
}

/// Settings of one partition's log. Units are in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before a segment would exceed this size. At most `i32::MAX`.
    pub segment_bytes: u64,
    /// Roll a segment this old (measured from its creation or from open), if set.
    pub segment_ms: Option<i64>,
    /// Bytes of log between two index entries.
    pub index_interval_bytes: u64,
    /// Entries an offset index may hold before the segment rolls.
    pub max_index_entries: usize,
    /// Largest batch accepted by append, in bytes.
    pub max_batch_bytes: usize,
    /// Delete the oldest sealed segments while the log is larger than this, if set.
    pub retention_bytes: Option<u64>,
    /// Delete sealed segments whose newest timestamp is older than this, if set.
    pub retention_ms: Option<i64>,
    /// Refuse a batch whose `maxTimestamp` lies further than this ahead of the clock, if set
    /// (Kafka's `log.message.timestamp.after.max.ms`, one hour by default since Kafka 4.0):
    /// time retention trusts it, so a timestamp far in the future would keep a segment forever.
    pub max_timestamp_ahead_ms: Option<i64>,
    /// Refuse a batch with a record timestamp further than this behind the clock, if set
    /// (Kafka's `message.timestamp.before.max.ms`, unlimited by default).
    pub max_timestamp_behind_ms: Option<i64>,
    /// Whether stored batches carry the producer's timestamps or the time of the append
    /// (Kafka's `message.timestamp.type`). With [`TimestampType::LogAppendTime`] the clock
    /// limits above do not apply: the engine sets the time itself.
    pub timestamp_type: TimestampType,
    /// Cleanup: retention (delete), compaction, or both.
    pub cleanup_policy: CleanupPolicy,
    /// In a compacted log, how long a tombstone (a record with a null value) stays: one whose
    /// timestamp is older than this is removed by the next cleaning, so consumers have this long
    /// to see a deletion (Kafka's `delete.retention.ms`, one day).
    pub delete_retention_ms: i64,
    /// Clean a compacted log once its dirty part (written since the last cleaning) is at least
    /// this many thousandths of its sealed bytes (Kafka's `min.cleanable.dirty.ratio`, 0.5).
    pub min_cleanable_dirty_permille: u32,
    /// Forget an idempotent producer that has not appended for this long (Kafka's
    /// `producer.id.expiration.ms`, one day): its next batch may then start at any sequence.
    pub producer_id_expiration_ms: i64,
    /// Most idempotent producers a partition remembers; beyond it the least recently
    /// appending tenth is forgotten (a forgotten producer may start at any sequence, so a retry
    /// of its last batch would be stored again). Bounds what clients can make a partition hold.
    pub max_producers: usize,
    /// Preallocation of new segment files.
    pub preallocate: Preallocate,
    /// Write the recovery-point checkpoint at most this often while appending; lower values
    /// shorten recovery scans.
    pub checkpoint_interval_ms: i64,
    /// Most bytes a partition keeps written but not yet fdatasynced: an append beyond it waits
    /// for a sync, and half of it starts one nobody waits for. This bounds what a crash can
    /// tear, so recovery can tell a torn tail (damage within this window of the end) from
    /// damage to acknowledged data followed by more data (reported, never truncated). See
    /// docs/ARCHITECTURE.md, "Recovery".
    ///
    /// 256 MiB by default. Acknowledged durable data does not depend on it (the watermark
    /// records it), so it only needs to bound the crash window of written data, and a small
    /// bound costs throughput: a written-only producer then pays for the writeback of its own
    /// data as it goes, where a log without the bound leaves it to the kernel (up to its dirty
    /// limits, gigabytes). Measured here in full `rill bench` runs minutes apart, against the
    /// `commitlog` crate (which never writes back within a run): 1000-record batches, one
    /// partition 0.88x at 16 MiB, 0.97x and 0.96x at 256 MiB; sixteen partitions 0.53x, then
    /// 0.99x and 0.82x.
    /// Lower it where a durable append must not wait behind the writeback of many written
    /// ones on the same partition.
    pub max_unsynced_bytes: u64,
    /// Record the durable offset in the watermark file with every durable round (one small
    /// in-place write and fdatasync more per round), so that recovery reports damage to any
    /// acknowledged data older than the last round instead of taking it for a torn tail.
    pub track_durable_watermark: bool,
    /// Write the watermark at most this often (0: with every sync). Each write costs an
    /// fdatasync of its own, which competes with the data's for the device's cache flush
    /// (measured here: p50 of one partition's durable appends 286 µs without it, 449 µs with
    /// one per sync); acknowledgements never wait for it. Damage to acknowledged data newer
    /// than the watermark is told from a torn tail only by the valid data after it.
    pub watermark_interval_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            max_index_entries: (10 << 20) / 8,
            max_batch_bytes: 1_048_588,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            max_timestamp_ahead_ms: Some(3600 * 1000),
            max_timestamp_behind_ms: None,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_permille: 500,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            max_producers: 10_000,
            preallocate: Preallocate::default(),
            checkpoint_interval_ms: 1000,
            max_unsynced_bytes: 256 << 20,
            track_durable_watermark: true,
            watermark_interval_ms: 100,
        }
    }
}

impl LogConfig {
    /// The most bytes a crash can leave torn at the end of a log written with these settings:
    /// the unsynced window, or one batch when a single batch is larger.
    pub fn torn_window_bytes(&self) -> u64 {
        self.max_unsynced_bytes.max(self.max_batch_bytes as u64)
    }

    /// Checks the settings, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), LogError> {
        let bad = |what: &str| Err(LogError::Config(what.to_owned()));
        if self.segment_bytes < 1024 || self.segment_bytes > i32::MAX as u64 {
            return bad("segment_bytes must be in 1024..=i32::MAX");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive");
        }
        if self.max_timestamp_ahead_ms.is_some_and(|ms| ms < 0)
            || self.max_timestamp_behind_ms.is_some_and(|ms| ms < 0)
        {
            return bad("max_timestamp_ahead_ms and max_timestamp_behind_ms must not be negative");
        }
        if self.max_index_entries == 0 {
            return bad("max_index_entries must be positive");
        }
        if self.max_batch_bytes < crate::batch::HEADER_BYTES
            || self.max_batch_bytes as u64 > self.segment_bytes
        {
            return bad(
                "max_batch_bytes must be at least a batch header and at most segment_bytes",
            );
        }
        if self.segment_ms.is_some_and(|ms| ms <= 0) || self.retention_ms.is_some_and(|ms| ms < 0) {
            return bad("segment_ms must be positive and retention_ms non-negative");
        }
        if self.delete_retention_ms < 0 || self.min_cleanable_dirty_permille > 1000 {
            return bad(
                "delete_retention_ms must be non-negative, min_cleanable_dirty_permille at most 1000",
            );
        }
        if self.producer_id_expiration_ms <= 0 || self.max_producers == 0 {
            return bad("producer_id_expiration_ms and max_producers must be positive");
        }
        if self.max_unsynced_bytes == 0 {
            return bad("max_unsynced_bytes must be positive");
        }
        if matches!(self.preallocate, Preallocate::Ahead { step_bytes: 0 }) {
            return bad("preallocate step_bytes must be positive");
        }
        if self.watermark_interval_ms < 0 {
            return bad("watermark_interval_ms must be non-negative");
        }
        if self.checkpoint_interval_ms < 0 {
            return bad("checkpoint_interval_ms must be non-negative");
        }
        Ok(())
    }
}
