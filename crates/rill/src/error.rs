//! The errors of the embedding API.

use rill_segment::batch::{BatchError, BuildError};
use rill_segment::producers::SequenceError;
use rill_segment::{Corruption, FailReason, LogError};
use std::io;
use std::path::PathBuf;

/// What can go wrong with a [`crate::Log`] or a [`crate::Partition`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No topic has this name.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic has no such partition (or it was deleted).
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition index asked for.
        partition: u32,
    },
    /// A topic with this name exists already.
    #[error("topic {0:?} exists")]
    TopicExists(String),
    /// The topic name or partition count is not acceptable.
    #[error("invalid topic {name:?}: {reason}")]
    InvalidTopic {
        /// The name given.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The offset is outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Offset after the last readable batch.
        log_end: i64,
    },
    /// The batch failed validation (nothing was written).
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// Records could not be encoded into a batch.
    #[error("cannot build batch: {0}")]
    Build(#[from] BuildError),
    /// The partition failed (a write or fdatasync error): it accepts nothing more and serves
    /// only durable data until the log is reopened, which recovers it from disk.
    #[error("partition failed, reopen the log to recover: {0}")]
    PartitionFailed(FailReason),
    /// Stored data is damaged: it is reported, never served or silently dropped.
    #[error(transparent)]
    Corrupt(Box<Corruption>),
    /// The log is closing or closed.
    #[error("the log is shutting down")]
    ShuttingDown,
    /// The shard's queue has no room now (from the `try_` APIs, which never wait; nothing was
    /// written). Wait for room with [`crate::Partition::reserve`], or retry later.
    #[error("the shard's queue is full")]
    QueueFull,
    /// The shard thread serving this request panicked (a bug): its partitions fail-stop, every
    /// request to it gets this error or [`Error::PartitionFailed`], and reopening the log
    /// recovers them from disk.
    #[error("shard {shard} failed: {message}")]
    ShardFailed {
        /// The shard.
        shard: usize,
        /// The panic's message.
        message: String,
    },
    /// An I/O error outside a partition's data path (directories, set-up).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A setting is out of range.
    #[error("invalid config: {0}")]
    Config(String),
    /// A topic setting is unknown or out of range (nothing was changed).
    #[error("invalid topic config {key}: {reason}")]
    InvalidTopicConfig {
        /// The setting, by Kafka's name (or `#<number>` for a stored key this version does
        /// not know).
        key: String,
        /// Why not.
        reason: String,
    },
    /// A topic's stored configuration file is damaged or from a newer version: the log does
    /// not open (unless [`crate::Config::repair`], which gives the topic the log's defaults).
    #[error("topic config {}: {detail}", path.display())]
    DamagedTopicConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Another of the log's own files (the producer-id file) is damaged: the log does not open
    /// unless [`crate::Config::repair`].
    #[error("{}: {detail}", path.display())]
    DamagedMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The I/O driver could not be set up.
    #[error("I/O driver: {0}")]
    Driver(#[from] rill_uring::DriverError),
    /// A send to a socket failed: the peer went away ([`rill_send::SendError::PeerClosed`]),
    /// stalled, or an I/O error. Bytes may already be on the wire (`sent()`): close the
    /// connection.
    #[error("send: {0}")]
    Send(#[from] rill_send::SendError),
    /// The socket given to a send is not usable (not a stream socket, or `fstat`/`dup`
    /// failed). Nothing was sent.
    #[error("send: unusable socket: {0}")]
    Socket(#[source] io::Error),
    /// A send with [`crate::SendOptions::exact_bytes`] found a different range than the one
    /// expected (the log was truncated, or its start deleted, since it was located). Nothing
    /// was sent.
    #[error("send: the located range is {found} bytes, not the expected {expected}")]
    RangeChanged {
        /// The `exact_bytes` asked for.
        expected: u64,
        /// The batch bytes found now.
        found: u64,
    },
    /// One send of a [`crate::send_in_order`] list failed (`index` is its place in the list);
    /// the sends after it were not made. Bytes of this one and of the sends before it are on
    /// the wire: close the connection.
    #[error("send {index} of the list: {source}")]
    SendPart {
        /// The failed send's place in the list.
        index: usize,
        /// Why it failed.
        source: Box<Error>,
    },
    /// An idempotent producer's batch does not follow its last one (a batch in between is
    /// missing; in a new epoch, it does not start at 0). Nothing was written. Kafka's
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    #[error("producer {producer_id}: sequence {found} out of order, expected {expected}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence expected.
        expected: i32,
        /// The batch's first sequence.
        found: i32,
    },
    /// An idempotent producer's batch carries an epoch older than the producer's current one:
    /// a newer instance took over. Nothing was written. Kafka's `INVALID_PRODUCER_EPOCH`.
    #[error("producer {producer_id}: epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The current epoch.
        current_epoch: i16,
    },
    /// Another error of the segment layer.
    #[error(transparent)]
    Log(LogError),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        match e {
            LogError::InvalidBatch(b) => Self::InvalidBatch(b),
            LogError::Corrupt(c) => Self::Corrupt(c),
            LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => Self::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            },
            LogError::Failed(reason) => Self::PartitionFailed(reason),
            LogError::Sequence(SequenceError::OutOfOrder {
                producer_id,
                expected,
                found,
            }) => Self::OutOfOrderSequence {
                producer_id,
                expected,
                found,
            },
            LogError::Sequence(SequenceError::Fenced {
                producer_id,
                epoch,
                current_epoch,
            }) => Self::ProducerFenced {
                producer_id,
                epoch,
                current_epoch,
            },
            LogError::Config(c) => Self::Config(c),
            other => Self::Log(other),
        }
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
