//! Peer engines on the append and read workloads, each with its durability knob set to the
//! closest equivalent of rill's.
//!
//! - **`commitlog`** (0.2, a Kafka-style Rust log): one `CommitLog` per partition behind a
//!   mutex; an append is one `MessageBuf` of the batch's records. It has no way to make data
//!   durable: `flush()` calls `File::flush`, a no-op for a `File`, and msyncs only the index.
//!   So it runs only where rill runs `written` (data in the page cache, survives a process
//!   crash, not a power loss), which is what its appends give.
//! - **`fjall`** (2.x, an LSM engine used as a log): one keyspace with one partition; a record
//!   is a key `partition (u32 BE) ++ offset (u64 BE)` → its value; an append is one write batch
//!   of the records. `written` = `PersistMode::Buffer` (journal flushed to the OS), `durable`
//!   = `PersistMode::SyncData` (the journal fdatasync'd) on every batch commit.
//! - **`walrus-rust`** (0.2, a WAL with an io_uring batch path): one topic per partition.
//!   Its batch path (`batch_append_for_topic`: io_uring writes, then an fsync of every file
//!   touched) syncs whatever the schedule, so `durable` = one batch per append with
//!   `FsyncSchedule::NoFsync` (`SyncEach` would add O_SYNC to every write, for the whole
//!   process); `written` = its single-entry path, one `append_for_topic` (a `pwrite`) per
//!   record, with `NoFsync`. It takes its root directory and its quiet switch only from the
//!   environment (`WALRUS_DATA_DIR`, `WALRUS_QUIET`), which `rill bench` sets for the process
//!   it runs the benchmark in; each run gets its own key (a directory under that root).

use anyhow::{Context, Result, anyhow};
use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use parking_lot::Mutex;
use rill::Durability;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The peer engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The `commitlog` crate.
    Commitlog,
    /// The `fjall` LSM engine.
    Fjall,
    /// The `walrus-rust` write-ahead log.
    Walrus,
}

impl Peer {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Commitlog => "commitlog",
            Self::Fjall => "fjall",
            Self::Walrus => "walrus-rust",
        }
    }

    /// Whether it can give `durability`.
    pub fn supports(self, durability: Durability) -> bool {
        match self {
            Self::Commitlog => durability == Durability::Written,
            Self::Fjall | Self::Walrus => true,
        }
    }

    /// What its settings for `durability` are, in words.
    pub fn note(self, durability: Durability) -> String {
        match (self, durability) {
            (Self::Commitlog, _) => {
                "commitlog 0.2: one CommitLog per partition, a MessageBuf per append; \
                 page cache only (it has no fsync)"
                    .into()
            }
            (Self::Fjall, Durability::Durable) => {
                "fjall 2: keys partition++offset, one write batch per append, \
                 PersistMode::SyncData per batch"
                    .into()
            }
            (Self::Fjall, _) => "fjall 2: keys partition++offset, one write batch per append, \
                 PersistMode::Buffer per batch"
                .into(),
            (Self::Walrus, Durability::Durable) => {
                "walrus-rust 0.2: a topic per partition, batch_append_for_topic per append \
                 (io_uring writes, then fsync of each file touched), FsyncSchedule::NoFsync"
                    .into()
            }
            (Self::Walrus, _) => "walrus-rust 0.2: a topic per partition, append_for_topic per \
                 record (its batch path always fsyncs), FsyncSchedule::NoFsync"
                .into(),
        }
    }
}

/// An open peer log with `partitions` partitions.
pub enum PeerLog {
    /// One commitlog per partition.
    Commitlog(Vec<Mutex<CommitLog>>),
    /// One fjall keyspace; the next offset of each partition.
    Fjall {
        /// The keyspace (owns the journal).
        keyspace: fjall::Keyspace,
        /// The partition holding every record.
        records: fjall::PartitionHandle,
        /// Next offset per log partition.
        next: Vec<AtomicU64>,
    },
    /// One walrus instance; a topic per partition.
    Walrus(walrus_rust::Walrus),
}

impl std::fmt::Debug for PeerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Commitlog(_) => "PeerLog::Commitlog",
            Self::Fjall { .. } => "PeerLog::Fjall",
            Self::Walrus(_) => "PeerLog::Walrus",
        })
    }
}

fn fjall_error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("fjall: {e:?}")
}

fn commitlog_error(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("commitlog: {e:?}")
}

/// The topic of a partition in walrus (short: it must fit walrus's 64-byte record header).
fn walrus_topic(partition: u32) -> String {
    format!("p{partition}")
}

/// Opens a walrus instance under `WALRUS_DATA_DIR` with a key of its own.
fn open_walrus() -> Result<walrus_rust::Walrus> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    if std::env::var_os("WALRUS_DATA_DIR").is_none() {
        anyhow::bail!("WALRUS_DATA_DIR is not set: run walrus-rust through `rill bench`");
    }
    let key = format!(
        "run-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    walrus_rust::Walrus::with_consistency_and_schedule_for_key(
        &key,
        walrus_rust::ReadConsistency::AtLeastOnce {
            persist_every: u32::MAX,
        },
        walrus_rust::FsyncSchedule::NoFsync,
    )
    .context("opening walrus-rust")
}

fn fjall_key(partition: u32, offset: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&partition.to_be_bytes());
    key[4..].copy_from_slice(&offset.to_be_bytes());
    key
}

impl PeerLog {
    /// Opens `peer` in the empty directory `dir` with `partitions` partitions taking appends
    /// of at most `append_bytes` (commitlog segments of `segment_bytes`).
    pub fn open(
        peer: Peer,
        dir: &Path,
        partitions: u32,
        append_bytes: usize,
        segment_bytes: u64,
    ) -> Result<Self> {
        match peer {
            Peer::Commitlog => {
                let logs = (0..partitions)
                    .map(|p| {
                        let mut options = LogOptions::new(dir.join(format!("p{p}")));
                        options
                            .segment_max_bytes(segment_bytes as usize)
                            .message_max_bytes(append_bytes);
                        CommitLog::new(options)
                            .map(Mutex::new)
                            .with_context(|| format!("opening commitlog partition {p}"))
                    })
                    .collect::<Result<_>>()?;
                Ok(Self::Commitlog(logs))
            }
            Peer::Fjall => {
                let keyspace = fjall::Config::new(dir).open().map_err(fjall_error)?;
                let records = keyspace
                    .open_partition("log", fjall::PartitionCreateOptions::default())
                    .map_err(fjall_error)?;
                Ok(Self::Fjall {
                    keyspace,
                    records,
                    next: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
                })
            }
            Peer::Walrus => Ok(Self::Walrus(open_walrus()?)),
        }
    }

    /// A producer's appender: appends `records` values to a partition per call.
    pub fn appender(&self, durability: Durability) -> Appender<'_> {
        Appender {
            log: self,
            durability,
            buf: MessageBuf::default(),
        }
    }

    /// Reads up to `max_bytes` of records from `offset` of `partition`; returns the bytes of
    /// record values read (0 only past the end).
    pub fn read(&self, partition: u32, offset: u64, max_bytes: usize) -> Result<u64> {
        match self {
            Self::Commitlog(logs) => {
                let log = logs
                    .get(partition as usize)
                    .ok_or_else(|| anyhow!("no partition {partition}"))?
                    .lock();
                if offset >= log.next_offset() {
                    return Ok(0);
                }
                let messages = log
                    .read(offset, ReadLimit::max_bytes(max_bytes))
                    .map_err(commitlog_error)?;
                Ok(messages.iter().map(|m| m.payload().len() as u64).sum())
            }
            Self::Fjall { records, .. } => {
                let mut bytes = 0u64;
                let from = fjall_key(partition, offset);
                let to = fjall_key(partition, u64::MAX);
                for item in records.range(from..to) {
                    let (_, value) = item.map_err(fjall_error)?;
                    bytes += value.len() as u64;
                    if bytes >= max_bytes as u64 {
                        break;
                    }
                }
                Ok(bytes)
            }
            Self::Walrus(_) => anyhow::bail!("walrus-rust reads by consumer cursor, not by offset"),
        }
    }
}

/// Appends for one producer thread (owns its reusable message buffer).
pub struct Appender<'a> {
    log: &'a PeerLog,
    durability: Durability,
    buf: MessageBuf,
}

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").field("log", self.log).finish()
    }
}

impl Appender<'_> {
    /// Appends `records` copies of `value` to `partition` as one batch.
    pub fn append(&mut self, partition: u32, records: usize, value: &[u8]) -> Result<()> {
        match self.log {
            PeerLog::Commitlog(logs) => {
                self.buf.clear();
                for _ in 0..records {
                    self.buf.push(value).map_err(commitlog_error)?;
                }
                let mut log = logs
                    .get(partition as usize)
                    .ok_or_else(|| anyhow!("no partition {partition}"))?
                    .lock();
                log.append(&mut self.buf).map_err(commitlog_error)?;
                Ok(())
            }
            PeerLog::Fjall {
                keyspace,
                records: handle,
                next,
            } => {
                let base = next
                    .get(partition as usize)
                    .ok_or_else(|| anyhow!("no partition {partition}"))?
                    .fetch_add(records as u64, Ordering::Relaxed);
                let mode = if self.durability == Durability::Durable {
                    fjall::PersistMode::SyncData
                } else {
                    fjall::PersistMode::Buffer
                };
                let mut batch = keyspace.batch().durability(Some(mode));
                for i in 0..records as u64 {
                    batch.insert(handle, fjall_key(partition, base + i), value);
                }
                batch.commit().map_err(fjall_error)
            }
            PeerLog::Walrus(wal) => {
                let topic = walrus_topic(partition);
                if self.durability == Durability::Durable {
                    let entries = vec![value; records];
                    wal.batch_append_for_topic(&topic, &entries)
                        .context("walrus-rust batch append")
                } else {
                    for _ in 0..records {
                        wal.append_for_topic(&topic, value)
                            .context("walrus-rust append")?;
                    }
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn peers_read_back_what_was_appended() {
        for peer in [Peer::Commitlog, Peer::Fjall] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = PeerLog::open(peer, dir.path(), 2, 10 * 164, 1 << 20).expect("open");
            let mut appender = log.appender(Durability::Written);
            for _ in 0..3 {
                appender.append(1, 10, &[7u8; 100]).expect("append");
            }
            assert_eq!(log.read(1, 0, 1 << 20).expect("read"), 3000, "{peer:?}");
            assert_eq!(log.read(1, 25, 1 << 20).expect("read"), 500, "{peer:?}");
            assert_eq!(log.read(0, 0, 1 << 20).expect("read"), 0, "{peer:?}");
        }
    }
}
