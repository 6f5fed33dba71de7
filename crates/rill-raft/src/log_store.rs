//! The Raft log in a rill partition: openraft's `RaftLogStorage`.
//!
//! * Entry *i* is one batch, carrying its index, right after entry *i* - 1's (module `codec`).
//!   The partition must hold nothing else: its topic is made with [`topic_config`] (no
//!   retention, no compaction, no timestamp bounds, create time), and this store is its only
//!   writer. Module `log_index` tracks the live indexes and where the recent ones start.
//! * `append` writes each entry's batch into the page cache (rill's written append, on this
//!   task: readable when it returns), then asks the partition for a flush; a task answers
//!   openraft's callbacks in order, each once its flush completed, so every flush callback
//!   follows an fdatasync that covers its entries, and the entries of many appends share one
//!   (the shard's group commit).
//! * `truncate` is rill's `truncate_to` at the entry's batch; `purge` records the purged log
//!   id durably, then raises the log start (`delete_before`), or empties the partition when
//!   nothing live is left. An open finishes a purge a crash interrupted.
//! * An empty log's first entry goes where the durable snapshot says the entry after it
//!   starts (`truncate_fully_and_start_at`): a node that installed a snapshot puts every later
//!   record at the same offset as the replicas that applied the entries themselves.
//! * The vote and the purged log id are in the meta file (module `meta`), written before the
//!   call returns, after every earlier append is durable (openraft's rule: writes complete in
//!   the order they were asked). The committed log id is written with them, and otherwise at
//!   most every `COMMITTED_WRITE_INTERVAL` (it is a hint for restarts: openraft re-applies up
//!   to it, so it is only written once the log holds it durably).

use crate::codec;
use crate::error::{Error, storage};
use crate::log_index::LogIndex;
use crate::meta::{META_FILE, Meta, MetaFile};
use crate::reading::{LogReader, LogView, locate, lock, place_at, range_of, read_entries};
use crate::state_machine::SnapshotPoint;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rill::batch::BatchBuilder;
use rill::{Durability, Partition, Pending, TopicConfig};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How long a newer committed log id may wait for a write of its own.
const COMMITTED_WRITE_INTERVAL: Duration = Duration::from_millis(100);
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
    /// The live indexes and where the recent ones are; shared with the readers.
    log_index: Arc<Mutex<LogIndex>>,
    builder: BatchBuilder,
    flushes: mpsc::Sender<(Pending<rill::Offsets>, LogFlushed<TypeConfig>)>,
    /// The durable snapshot, when purges must wait for it and an empty log starts after it.
    snapshot: Option<watch::Receiver<Option<SnapshotPoint>>>,
}

impl LogStore {
    /// Opens the Raft log of `partition`, with its vote and purge state in `state_dir`, and
    /// finishes a purge a crash interrupted. Must run inside a tokio runtime (a task of it
    /// answers flush callbacks).
    pub async fn open(partition: Partition, state_dir: &Path) -> Result<Self, Error> {
        check_topic(&partition)?;
        let meta_file = Arc::new(MetaFile::new(state_dir)?);
        let meta = meta_file.read()?;
        let offsets = partition.offsets();
        let last_stored = if offsets.log_end > offsets.log_start {
            Some(place_at(&partition, offsets.log_end - 1).await?.log_id)
        } else {
            None
        };
        let first = meta.purged.map_or(0, |p| p.index + 1);
        let last_log_id = match last_stored {
            Some(last) if last.index >= first => Some(last),
            _ => meta.purged,
        };
        let end = last_log_id.map_or(first, |l| l.index + 1);
        let log_index = Arc::new(Mutex::new(LogIndex::new(first, end)));
        if meta.purged.is_some() {
            // Only a purge can have been interrupted; a log never purged needs no search.
            finish_purge(&partition, &log_index, None).await?;
        }
        let (flushes, pending) = mpsc::channel(MAX_PENDING_FLUSHES);
        tokio::spawn(answer_flushes(pending));
        Ok(Self {
            partition,
            meta_file,
            committed: meta.committed,
            meta,
            last_meta_write: Instant::now(),
            last_log_id,
            log_index,
            builder: BatchBuilder::new(),
            flushes,
            snapshot: None,
        })
    }

    /// Follows the durable snapshot (`snapshot`, from
    /// [`crate::StateMachine::durable_snapshot`]):
    /// * every purge waits until it covers what the purge deletes: openraft purges the log as
    ///   soon as it has queued a snapshot's install, and a crash before the state machine
    ///   wrote it would otherwise leave a log that starts after the snapshot ends;
    /// * an empty log's first entry, if it follows the snapshot, goes at the snapshot's next
    ///   offset, where every other replica has it.
    ///
    /// Without it (openraft's storage suite has no state machine) purges go at once and an
    /// empty log goes on at the partition's end.
    #[must_use]
    pub fn purge_only_below(mut self, snapshot: watch::Receiver<Option<SnapshotPoint>>) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Waits (bounded) until the durable snapshot covers `log_id`, if purges must.
    async fn snapshot_covers(&mut self, log_id: LogId) -> Result<(), Error> {
        let Some(snapshot) = self.snapshot.as_mut() else {
            return Ok(());
        };
        let covers = |s: &Option<SnapshotPoint>| s.is_some_and(|s| s.last_log_id >= Some(log_id));
        let covered = tokio::time::timeout(SNAPSHOT_WAIT, snapshot.wait_for(covers)).await;
        match covered {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::io(
                "purge",
                META_FILE,
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
            .map_err(|e| Error::io("write", META_FILE, std::io::Error::other(e)))?;
        written?;
        self.meta = meta;
        self.last_meta_write = Instant::now();
        Ok(())
    }

    /// The committed log id the file may hold now: the newest one whose entry is durable.
    fn committed_to_write(&self) -> Option<LogId> {
        let durable = self.partition.offsets().durable;
        let committed = self.committed.filter(|c| {
            lock(&self.log_index)
                .offset_of(c.index)
                .is_some_and(|o| o < durable)
        });
        committed.or(self.meta.committed)
    }

    /// Where an empty log whose next entry is `index` goes on: at the durable snapshot's
    /// next offset if that snapshot ends just before `index` (every replica has the entry
    /// after it there), else where the partition ends.
    fn empty_log_start(&self, index: u64) -> Option<i64> {
        self.snapshot
            .as_ref()
            .and_then(|s| *s.borrow())
            .filter(|s| s.last_log_id.map_or(0, |l| l.index + 1) == index)
            .map(|s| i64::try_from(s.next_offset).unwrap_or(i64::MAX))
    }

    /// Moves an empty log whose first entry will be `index` to where it goes.
    async fn start_empty_log(&mut self, index: u64) -> Result<(), Error> {
        match self.empty_log_start(index) {
            Some(start) => empty_at(&self.partition, start).await,
            None => Ok(()),
        }
    }

    async fn append_entries(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let (live_first, live_end) = lock(&self.log_index).live();
        let index = first.log_id.index;
        if live_first == live_end {
            // An empty log starts wherever openraft's first entry is (after a snapshot, or
            // a store that never held index 0); otherwise the log must stay contiguous.
            self.start_empty_log(index).await?;
        } else if index != live_end {
            return Err(Error::NotContiguous {
                expected: live_end,
                got: index,
            });
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
            lock(&self.log_index).appended(next, info.base_offset);
            self.last_log_id = Some(entry.log_id);
        }
        Ok(())
    }
}

/// Completes a purge (recorded in the meta file, and in `log_index`, first): deletes the
/// segments below the first live entry, or, when nothing is live, empties the partition and
/// starts it at `empty_start` (or at its end).
async fn finish_purge(
    partition: &Partition,
    log_index: &Mutex<LogIndex>,
    empty_start: Option<i64>,
) -> Result<(), Error> {
    let (first, end) = lock(log_index).live();
    let offsets = partition.offsets();
    if first < end {
        let start = locate(partition, log_index, first).await?;
        if offsets.log_start < start {
            partition.delete_before(start).await?;
        }
    } else {
        empty_at(partition, empty_start.unwrap_or(offsets.log_end)).await?;
    }
    Ok(())
}

/// Leaves the partition empty, its next offset `start` (nothing to do if it is so already).
async fn empty_at(partition: &Partition, start: i64) -> Result<(), Error> {
    let offsets = partition.offsets();
    if offsets.log_start < offsets.log_end || start != offsets.log_end {
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
        read_entries(
            &self.partition,
            &self.log_index,
            LogView::of(&self.log_index),
            range_of(&range),
            None,
            usize::MAX,
        )
        .await
        .map(|read| read.entries)
        .map_err(|e| storage(StorageIOError::read_logs, &e))
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
        LogReader::new(self.partition.clone(), Arc::clone(&self.log_index))
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let result = async {
            self.partition.flush().await?;
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
                META_FILE,
                std::io::Error::other("the flush task ended"),
            );
            return Err(storage(StorageIOError::write_logs, &e));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let result = async {
            let (first, end) = lock(&self.log_index).live();
            if log_id.index >= end {
                return Ok(());
            }
            let offset = locate(&self.partition, &self.log_index, log_id.index).await?;
            // Readers learn of the removal first: one that then finds an entry gone knows why.
            lock(&self.log_index).truncated(log_id.index);
            self.partition.truncate_to(offset).await?;
            self.last_log_id = if log_id.index > first {
                Some(place_at(&self.partition, offset - 1).await?.log_id)
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
                self.partition.flush().await?;
                let meta = Meta {
                    purged: Some(log_id),
                    committed: self.committed_to_write(),
                    ..self.meta
                };
                self.write_meta(meta).await?;
            }
            lock(&self.log_index).purged(log_id.index);
            // A purge past the end (a snapshot installed) moves the empty log at once to
            // where the entry after the snapshot goes, so reads find its offsets right.
            let empty_start = self.empty_log_start(log_id.index + 1);
            finish_purge(&self.partition, &self.log_index, empty_start).await?;
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
