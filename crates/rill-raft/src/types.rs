//! The application types openraft is instantiated with: what a client appends (one Kafka
//! record per Raft entry) and what applying an entry answers (its offset).

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// What a client appends through the leader: one Kafka record. It becomes one Raft entry, and
/// that entry one record of the partition, at the offset equal to its Raft index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The record's timestamp, set by whoever proposes it (never by a follower's clock, so
    /// every replica stores the same bytes).
    pub timestamp_ms: i64,
    /// The key; `None` is Kafka's null key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is Kafka's null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The record's headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// One record header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    /// The header's key (Kafka: a UTF-8 string; rill keeps the bytes).
    pub key: Vec<u8>,
    /// The header's value; `None` is null.
    pub value: Option<Vec<u8>>,
}

/// What applying a committed entry answers the client that proposed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The entry's offset in the partition (= its Raft log index).
    pub offset: u64,
}

openraft::declare_raft_types!(
    /// rill's Raft types: entries carry [`Record`]s, node ids are `u64`, nodes are addressed by
    /// [`openraft::BasicNode`], snapshots are bytes in memory (a replicated partition's state
    /// is its committed offset: a few hundred bytes).
    pub TypeConfig:
        D = Record,
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
