//! The crate's typed errors, and how they reach openraft.

use std::path::PathBuf;

/// What can go wrong storing a Raft log in rill.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partition refused an operation (failed, closed, out of range, ...).
    #[error("partition: {0}")]
    Partition(#[from] rill::Error),
    /// A file of the Raft state could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file of the Raft state is damaged: never replaced by a default, since forgetting a
    /// vote could let this node vote twice in one term.
    #[error("{path} is damaged: {detail}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file of the Raft state was written in a layout this version does not read (an
    /// older release's): the node does not start rather than misread its log.
    #[error("{path} has layout version {version}; this version of rill-raft reads {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it holds (0: a file from before versions were written).
        version: u16,
        /// The one this crate reads and writes.
        supported: u16,
    },
    /// A batch of the partition is not one this crate wrote (or it is damaged).
    #[error("offset {offset}: not a Raft entry: {detail}")]
    CorruptEntry {
        /// The offset read.
        offset: i64,
        /// What is wrong.
        detail: String,
    },
    /// An append that would leave a hole in the log or overwrite it (openraft truncates first).
    #[error("append at index {got}, but the log ends at {expected}")]
    NotContiguous {
        /// The index the log expects next.
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// A term that does not fit a batch's `partitionLeaderEpoch` (an `i32`).
    #[error("term {0} exceeds the largest partition leader epoch")]
    TermTooLarge(u64),
    /// A normal entry without records (a batch holds at least one).
    #[error("entry at index {index} holds no records")]
    EmptyEntry {
        /// The entry's index.
        index: u64,
    },
    /// An entry the log should hold and does not (the partition was changed by another
    /// writer, or is damaged).
    #[error("the log holds no entry at index {0}")]
    MissingEntry(u64),
    /// One entry larger than the partition's largest batch.
    #[error("entry at index {index} takes {bytes} bytes; the partition's batches hold {max}")]
    EntryTooLarge {
        /// The entry's index.
        index: u64,
        /// Its encoded size.
        bytes: usize,
        /// The partition's `max_batch_bytes`.
        max: usize,
    },
    /// A snapshot larger than this crate accepts.
    #[error("a snapshot of {bytes} bytes exceeds the {max} bytes accepted")]
    SnapshotTooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// The partition's topic has settings under which rill could change or delete entries.
    #[error("unsuitable topic for a Raft log: {0}")]
    UnsuitableTopic(String),
    /// A membership or snapshot could not be encoded or decoded.
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// A batch could not be built.
    #[error("building a batch: {0}")]
    Build(#[from] rill::batch::BuildError),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt_entry(offset: i64, detail: impl Into<String>) -> Self {
        Self::CorruptEntry {
            offset,
            detail: detail.into(),
        }
    }

    /// As an `io::Error`, for openraft's flush callback.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            Self::Io { source, .. } => source,
            other => std::io::Error::other(other),
        }
    }
}

/// Converts a crate error into openraft's, naming what failed.
pub(crate) fn storage(
    make: impl FnOnce(openraft::AnyError) -> openraft::StorageIOError<u64>,
    e: &Error,
) -> openraft::StorageError<u64> {
    make(openraft::AnyError::new(e)).into()
}
