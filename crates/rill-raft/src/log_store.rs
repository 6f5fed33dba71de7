//! The Raft log in a rill partition: openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! * Entry *i* is the batch at offset *i* (module `codec`). The partition must hold nothing
//!   else: its topic is made with [`topic_config`] (no retention, no compaction, no timestamp
//!   bounds, create time), and this store is its only writer.
//! * `append` writes each entry's batch into the page cache (rill's written append, on this
//!   task: readable when it returns), then asks the partition for a flush; a task answers
//!   openraft's callbacks in order, each once its flush completed, so every flush callback
//!   follows an fdatasync that covers its entries, and the entries of many appends share one
//!   (the shard's group commit).
//! * `truncate` is rill's `truncate_to`; `purge` records the purged log id durably, then
//!   raises the log start (`delete_before`), or empties the log and starts it after the purged
//!   index when that lies beyond the end (`truncate_fully_and_start_at`, after a snapshot was
//!   installed). An open finishes a purge a crash interrupted.
//! * The vote and the purged log id are in the meta file (module `meta`), written before the
//!   call returns, after every earlier append is durable (openraft's rule: writes complete in
//!   the order they were asked). The committed log id is written with them, and otherwise at
//!   most every `COMMITTED_WRITE_INTERVAL` (it is a hint for restarts: openraft re-applies up
//!   to it, so it is only written once the log holds it durably).

use crate::codec::{self, log_id, offset_of};
use crate::error::{Error, storage};
use crate::meta::{Meta, MetaFile};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rill::batch::{BatchBuilder, BatchHeader};
use rill::{Durability, Partition, Pending, ReadLimit, TopicConfig};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a newer committed log id may wait for a write of its own.
const COMMITTED_WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// Bytes one read of the partition asks for.
const READ_BYTES: u64 = 1 << 20;
/// Appends whose flush callbacks may wait at once (openraft pipelines a few).
const MAX_PENDING_FLUSHES: usize = 1024;
/// How long a purge waits for the snapshot that covers it to be durable.
const SNAPSHOT_WAIT: Duration = Duration::from_mins(1);

/// The settings a replicated partition's topic needs: rill deletes nothing (Raft purges),
/// stamps nothing, and refuses no entry by its timestamp (a follower's clock must not reject
/// what a quorum accepted).
pub fn topic_config() -> TopicConfig {
    let mut config = TopicConfig::default();
    for (key, value) in [
        ("retention.bytes", "-1"),
        ("retention.ms", "-1"),
        ("cleanup.policy", "delete"),
        ("message.timestamp.type", "CreateTime"),
        ("message.timestamp.after.max.ms", "-1"),
        ("message.timestamp.before.max.ms", "-1"),
    ] {
        // Every pair is a valid setting: a failure is a bug of this list.
        if let Err(e) = config.set(key, value) {
            unreachable!("{key}={value}: {e}");
        }
    }
    config
}

/// Checks that the partition's settings are those of [`topic_config`].
fn check_topic(partition: &Partition) -> Result<(), Error> {
    let config = partition.log_config();
    let problem = if config.retention_bytes.is_some() || config.retention_ms.is_some() {
        Some("retention deletes entries Raft may still need")
    } else if config.cleanup_policy.compacts() {
        Some("compaction removes entries")
    } else if partition.timestamp_type() != rill::TimestampType::CreateTime {
        Some("log-append time changes the entries' bytes")
    } else if config.max_timestamp_ahead_ms.is_some() || config.max_timestamp_behind_ms.is_some() {
        Some("timestamp bounds could refuse an entry a quorum accepted")
    } else {
        None
    };
    match problem {
        Some(why) => Err(Error::UnsuitableTopic(format!(
            "{}-{}: {why} (create it with rill_raft::topic_config())",
            partition.topic(),
            partition.index()
        ))),
        None => Ok(()),
    }
}

/// Reads the entries with indexes in `start..end` (those the log holds).
async fn read_entries(partition: &Partition, start: u64, end: u64) -> Result<Vec<Entry>, Error> {
    let offsets = partition.offsets();
    let start = start.max(u64::try_from(offsets.log_start).unwrap_or(0));
    let end = end.min(u64::try_from(offsets.log_end).unwrap_or(0));
    let mut entries = Vec::with_capacity(
        usize::try_from(end.saturating_sub(start))
            .unwrap_or(0)
            .min(4096),
    );
    let mut next = start;
    // Bounded: every read returns at least one batch, so `next` advances.
    while next < end {
        let read = partition
            .read_with(offset_of(next)?, READ_BYTES, ReadLimit::Written)
            .await?;
        for batch in read.batches() {
            codec::decode(batch, next, end, &mut entries)?;
        }
        let after = u64::try_from(read.next_offset).unwrap_or(0);
        if after <= next {
            break;
        }
        next = after;
    }
    Ok(entries)
}

/// The log id of the entry at `index`.
async fn log_id_at(partition: &Partition, index: u64) -> Result<LogId, Error> {
    let offset = offset_of(index)?;
    let read = partition.read_with(offset, 1, ReadLimit::Written).await?;
    let batch = read
        .batches()
        .next()
        .ok_or_else(|| Error::corrupt_entry(offset, "no batch"))?;
    let header =
        BatchHeader::parse(batch).map_err(|e| Error::corrupt_entry(offset, e.to_string()))?;
    if header.base_offset != offset || header.records_count != 1 {
        return Err(Error::corrupt_entry(offset, "not one entry's batch"));
    }
    Ok(log_id(codec::term_of(&header)?, index))
}

fn range_of(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Reads the log for openraft's replication tasks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogReader {
    partition: Partition,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.partition, range_of(&range)).await
    }
}

/// [`read_entries`] of a range as openraft gives it (see `range_of`), with openraft's error.
async fn read_range(
    partition: &Partition,
    (start, end): (u64, u64),
) -> Result<Vec<Entry>, StorageError> {
    read_entries(partition, start, end)
        .await
        .map_err(|e| storage(StorageIOError::read_logs, &e))
}

/// A Raft log kept in a rill partition. See the module documentation.
#[derive(Debug)]
pub struct LogStore {
    partition: Partition,
    meta_file: Arc<MetaFile>,
    /// What the meta file holds.
    meta: Meta,
    /// The newest committed log id openraft gave (possibly newer than the file's).
    committed: Option<LogId>,
    last_meta_write: Instant,
    /// The last entry's log id (or the purged one when the log is empty).
    last_log_id: Option<LogId>,
    builder: BatchBuilder,
    flushes: mpsc::Sender<(Pending<rill::Offsets>, LogFlushed<TypeConfig>)>,
    /// The durable snapshot's last log id, when purges must wait for it.
    snapshot: Option<tokio::sync::watch::Receiver<Option<LogId>>>,
}

impl LogStore {
    /// Opens the Raft log of `partition`, with its vote and purge state in `state_dir`, and
    /// finishes a purge a crash interrupted. Must run inside a tokio runtime (a task of it
    /// answers flush callbacks).
    pub async fn open(partition: Partition, state_dir: &Path) -> Result<Self, Error> {
        check_topic(&partition)?;
        let meta_file = Arc::new(MetaFile::new(state_dir)?);
        let meta = meta_file.read()?;
        if let Some(purged) = meta.purged {
            finish_purge(&partition, purged).await?;
        }
        let offsets = partition.offsets();
        let last_log_id = if offsets.log_end > offsets.log_start {
            Some(log_id_at(&partition, u64::try_from(offsets.log_end - 1).unwrap_or(0)).await?)
        } else {
            meta.purged
        };
        let (flushes, pending) = mpsc::channel(MAX_PENDING_FLUSHES);
        tokio::spawn(answer_flushes(pending));
        Ok(Self {
            partition,
            meta_file,
            committed: meta.committed,
            meta,
            last_meta_write: Instant::now(),
            last_log_id,
            builder: BatchBuilder::new(),
            flushes,
            snapshot: None,
        })
    }

    /// Makes every purge wait until the durable snapshot (followed by `snapshot`, from
    /// [`crate::StateMachine::durable_snapshot`]) covers what it deletes: openraft purges
    /// the log as soon as it has queued a snapshot's install, and a crash before the state
    /// machine wrote it would otherwise leave a log that starts after the snapshot ends.
    /// Without it (openraft's storage suite purges with no snapshot) purges go at once.
    #[must_use]
    pub fn purge_only_below(
        mut self,
        snapshot: tokio::sync::watch::Receiver<Option<LogId>>,
    ) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Waits (bounded) until the durable snapshot covers `log_id`, if purges must.
    async fn snapshot_covers(&mut self, log_id: LogId) -> Result<(), Error> {
        let Some(snapshot) = self.snapshot.as_mut() else {
            return Ok(());
        };
        let covered =
            tokio::time::timeout(SNAPSHOT_WAIT, snapshot.wait_for(|s| *s >= Some(log_id))).await;
        match covered {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::io(
                "purge",
                crate::meta::META_FILE,
                std::io::Error::other(format!("no durable snapshot covers {log_id}")),
            )),
        }
    }

    /// The partition holding the log.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Writes `meta` durably, off the runtime's threads, and keeps it as the file's content.
    async fn write_meta(&mut self, meta: Meta) -> Result<(), Error> {
        let file = Arc::clone(&self.meta_file);
        let written = tokio::task::spawn_blocking(move || file.write(&meta))
            .await
            .map_err(|e| Error::io("write", META_FILE_NAME, std::io::Error::other(e)))?;
        written?;
        self.meta = meta;
        self.last_meta_write = Instant::now();
        Ok(())
    }

    /// The committed log id the file may hold now: the newest one whose entry is durable.
    fn committed_to_write(&self) -> Option<LogId> {
        let durable = u64::try_from(self.partition.offsets().durable).unwrap_or(0);
        match self.committed {
            Some(c) if c.index < durable => Some(c),
            _ => self.meta.committed,
        }
    }

    /// Waits until every entry appended so far is durable.
    async fn flush(&self) -> Result<(), Error> {
        self.partition.flush().await?;
        Ok(())
    }

    async fn append_entries(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let offsets = self.partition.offsets();
        let expected = u64::try_from(offsets.log_end).unwrap_or(0);
        let index = first.log_id.index;
        if index != expected {
            // An empty log starts wherever openraft's first entry is (after a snapshot, or
            // a store that never held index 0); otherwise the log must stay contiguous.
            if offsets.log_start != offsets.log_end {
                return Err(Error::NotContiguous {
                    expected,
                    got: index,
                });
            }
            self.partition
                .truncate_fully_and_start_at(offset_of(index)?)
                .await?;
        }
        let max_batch_bytes = self.partition.max_batch_bytes();
        for (next, entry) in (index..).zip(entries) {
            if entry.log_id.index != next {
                return Err(Error::NotContiguous {
                    expected: next,
                    got: entry.log_id.index,
                });
            }
            let batch = codec::encode(entry, &mut self.builder, max_batch_bytes)?;
            let info = self
                .partition
                .append_with(batch, Durability::Written)
                .await?;
            if info.base_offset != offset_of(next)? || info.last_offset != info.base_offset {
                return Err(Error::corrupt_entry(
                    info.base_offset,
                    format!(
                        "entry {next} was stored at offset {}: another writer?",
                        info.base_offset
                    ),
                ));
            }
            self.last_log_id = Some(entry.log_id);
        }
        Ok(())
    }
}

const META_FILE_NAME: &str = crate::meta::META_FILE;

/// Completes a purge of everything up to `purged` (recorded in the meta file first).
async fn finish_purge(partition: &Partition, purged: LogId) -> Result<(), Error> {
    let start = offset_of(purged.index.saturating_add(1))?;
    let offsets = partition.offsets();
    if offsets.log_start >= start {
        return Ok(());
    }
    if offsets.log_end >= start {
        partition.delete_before(start).await?;
    } else {
        partition.truncate_fully_and_start_at(start).await?;
    }
    Ok(())
}

/// Answers flush callbacks in the order their appends came.
async fn answer_flushes(
    mut pending: mpsc::Receiver<(Pending<rill::Offsets>, LogFlushed<TypeConfig>)>,
) {
    while let Some((flush, callback)) = pending.recv().await {
        let result = flush
            .await
            .map(|_| ())
            .map_err(|e| Error::from(e).into_io());
        callback.log_io_completed(result);
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.partition, range_of(&range)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.meta.purged,
            last_log_id: self.last_log_id.or(self.meta.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            partition: self.partition.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let result = async {
            self.flush().await?;
            let meta = Meta {
                vote: Some(*vote),
                committed: self.committed_to_write(),
                ..self.meta
            };
            self.write_meta(meta).await
        }
        .await;
        result.map_err(|e| storage(StorageIOError::write_vote, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed = committed;
        if self.last_meta_write.elapsed() < COMMITTED_WRITE_INTERVAL {
            return Ok(());
        }
        let to_write = self.committed_to_write();
        if to_write == self.meta.committed {
            return Ok(());
        }
        let meta = Meta {
            committed: to_write,
            ..self.meta
        };
        self.write_meta(meta)
            .await
            .map_err(|e| storage(StorageIOError::write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Err(e) = self.append_entries(&entries).await {
            return Err(storage(StorageIOError::write_logs, &e));
        }
        let flush = self.partition.flush();
        if self.flushes.send((flush, callback)).await.is_err() {
            let e = Error::io(
                "flush",
                META_FILE_NAME,
                std::io::Error::other("the flush task ended"),
            );
            return Err(storage(StorageIOError::write_logs, &e));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let result = async {
            let end = self.partition.truncate_to(offset_of(log_id.index)?).await?;
            let start = self.partition.offsets().log_start;
            self.last_log_id = if end > start {
                Some(log_id_at(&self.partition, u64::try_from(end - 1).unwrap_or(0)).await?)
            } else {
                self.meta.purged
            };
            Ok::<(), Error>(())
        }
        .await;
        result.map_err(|e| storage(StorageIOError::write_logs, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let result = async {
            // The purged id is durable before any entry goes, and after the snapshot that
            // holds what goes; a purge the file already records is finished again (the log
            // may still hold entries up to it).
            if self.meta.purged.is_none_or(|p| p.index < log_id.index) {
                self.snapshot_covers(log_id).await?;
                self.flush().await?;
                let meta = Meta {
                    purged: Some(log_id),
                    committed: self.committed_to_write(),
                    ..self.meta
                };
                self.write_meta(meta).await?;
            }
            finish_purge(&self.partition, log_id).await?;
            if self
                .last_log_id
                .is_none_or(|last| last.index <= log_id.index)
            {
                self.last_log_id = Some(log_id);
            }
            Ok::<(), Error>(())
        }
        .await;
        result.map_err(|e| storage(StorageIOError::write_logs, &e))
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
