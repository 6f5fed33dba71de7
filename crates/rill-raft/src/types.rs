//! The application types openraft is instantiated with: what a client appends (Kafka records,
//! one batch of them per Raft entry) and what applying an entry answers (its offsets).

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// What one normal Raft entry holds: Kafka records, in order, which become one batch of the
/// partition (one client's append, or several proposed together).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records(pub Vec<Record>);

/// One Kafka record a client appends through the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The record's timestamp, set by whoever proposes it (never by a follower's clock, so
    /// every replica stores the same bytes).
    pub timestamp_ms: i64,
    /// The key; `None` is Kafka's null key.
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// The value; `None` is Kafka's null value (a tombstone).
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    /// The record's headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// One record header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    /// The header's key (Kafka: a UTF-8 string; rill keeps the bytes).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The header's value; `None` is null.
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
}

/// What applying a committed entry answers whoever proposed it: where its records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The offset of the entry's first record in the partition.
    pub base_offset: u64,
    /// How many offsets the entry takes (its records; one for Raft's own entries).
    pub records: u64,
}

openraft::declare_raft_types!(
    /// rill's Raft types: entries carry [`Records`], node ids are `u64`, nodes are addressed by
    /// [`openraft::BasicNode`], snapshots are bytes in memory (a replicated partition's state
    /// is its committed offset: a few hundred bytes).
    pub TypeConfig:
        D = Records,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A Raft log id of this crate's types: (term, index).
pub type LogId = openraft::LogId<u64>;
/// A Raft entry of this crate's types.
pub type Entry = openraft::Entry<TypeConfig>;
/// A vote of this crate's types.
pub type Vote = openraft::Vote<u64>;
/// A storage error of this crate's types.
pub type StorageError = openraft::StorageError<u64>;
/// A membership of this crate's types.
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
/// A stored membership of this crate's types.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
