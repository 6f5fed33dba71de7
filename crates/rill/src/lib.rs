//! # rill
//!
//! An io_uring storage engine for partitioned logs: Kafka's log layer as a library.
//!
//! A [`Log`] holds topics; a topic is split into partitions; each partition is an append-only
//! sequence of segment files of Kafka RecordBatch v2 batches with sparse offset and time
//! indexes. Appends are validated and written into the page cache on the caller's thread; shard
//! threads, each with one I/O driver (io_uring, or the epoll + syscalls baseline), make them
//! durable (many partitions' fdatasyncs in one submission: group commit), and run reads, sends
//! and maintenance.
//!
//! Every request returns a [`Pending`]: a runtime-agnostic future (`.await` it under tokio or
//! any executor) that can also block with [`Pending::wait`]. Queues are bounded: when a shard is
//! behind, appends wait instead of growing memory.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rill::{Config, Log, Record};
//! let dir = tempfile::tempdir()?;
//! let (log, _report) = Log::open(Config::new(dir.path()))?;
//! log.create_topic("clicks", 4)?;
//! let partition = log.partition("clicks", 2)?;
//! let appended = partition
//!     .append_records(&[Record::value(1_700_000_000_000, b"{\"page\":\"/\"}")])
//!     .wait()?; // durable (fdatasynced) by default
//! let read = partition.read(appended.base_offset, 1 << 20).wait()?;
//! assert_eq!(read.next_offset, appended.last_offset + 1);
//! log.close()?;
//! # Ok(()) }
//! ```
//!
//! See `docs/ARCHITECTURE.md` for the shard loop and the operation lifecycle.

mod append;
mod cleaner;
mod clock;
mod config;
mod direct_read;
mod error;
mod growth;
mod locate;
mod log;
mod metrics;
mod partition;
mod pending;
mod producer_ids;
mod queue;
mod read_batches;
mod release;
mod reply;
mod request;
mod send;
mod send_in_order;
mod send_item;
mod shard;
mod shared;
mod topic;
mod topic_config;
mod topic_dirs;
mod topic_store;

pub use append::{AppendPermit, Reserve};
pub use clock::WallClock;
pub use config::{Config, DriverChoice};
pub use error::{Error, Result};
pub use growth::{BatchStream, DataWait};
pub use log::{Log, OpenReport, PartitionReport, TopicInfo};
pub use partition::{Partition, Record};
pub use pending::Pending;
pub use producer_ids::ProducerId;
pub use queue::QueueStats;
pub use read_batches::ReadBatches;
pub use send_in_order::{PartitionSend, SendsInOrder, send_in_order};
pub use send_item::{SendHeader, SendInfo, SendOptions, SendRange};
pub use topic::{MAX_PARTITIONS, MAX_TOPIC_NAME_BYTES, validate_name as validate_topic_name};
pub use topic_config::{TopicConfig, TopicKey};

pub use rill_segment::batch::{self, BatchBuilder, Header, TimestampType};
pub use rill_segment::compaction::{CleanerLimits, CompactionReport};
pub use rill_segment::disk::{Disk, HandleStats};
pub use rill_segment::index::IndexCacheStats;
pub use rill_segment::partition::{ReadLimit, RollStats};
pub use rill_segment::recovery::RecoveryReport;
pub use rill_segment::{AppendInfo, CleanupPolicy, Durability, LogConfig, Offsets, Preallocate};
pub use rill_send::{SendConfig, SendError, SendStrategy};
pub use rill_uring::{DriverKind, DriverStats, ReadBuf, SyscallOptions, UringOptions};
