//! What travels between nodes and from clients: length-prefixed MessagePack frames (a u32
//! length, big-endian, then the message, its structs as maps by field name), one request
//! answered by one response, in order, per connection. Records' keys, values and headers and
//! read replies' batches travel as MessagePack binaries (their bytes as they are). Frames are
//! bounded (`MAX_FRAME_BYTES`) before anything is allocated.

use rill_raft::openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use rill_raft::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rill_raft::{Record, TypeConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame read or written. The largest a node sends: a read reply
/// ([`MAX_READ_BYTES`]), an AppendEntries (`rill_raft::MAX_APPEND_ENTRIES_BYTES` of entries, or
/// one entry of at most a batch), a snapshot chunk (openraft's 3 MiB).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// The most records one append request may carry.
pub const MAX_RECORDS_PER_APPEND: usize = 10_000;
/// The most bytes one read request returns.
pub const MAX_READ_BYTES: u64 = 8 << 20;

/// A request to a node.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Raft: from the leader.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: from a candidate.
    Vote(VoteRequest<u64>),
    /// Raft: a snapshot chunk from the leader.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Client: append records through the leader; answered once they are committed.
    Append {
        /// The records, in order.
        records: Vec<Record>,
    },
    /// Client: the committed batches from `offset` (this node's view).
    Read {
        /// Where to start.
        offset: u64,
        /// At most this many bytes (at least one batch).
        max_bytes: u64,
    },
    /// Admin: make the cluster of these voters (node id → address). Once, on one node.
    Init {
        /// The first voters.
        members: BTreeMap<u64, String>,
    },
    /// Admin (leader): add a learner and wait until it has caught up.
    AddLearner {
        /// Its id.
        id: u64,
        /// Its address.
        addr: String,
    },
    /// Admin (leader): make these the voters (learners promoted, others removed).
    ChangeMembership {
        /// The voters afterwards.
        voters: BTreeSet<u64>,
    },
    /// Admin: the node's state.
    Metrics,
    /// Fault injection: send nothing to these nodes (an empty set heals).
    Block {
        /// Nodes cut off from this one.
        peers: BTreeSet<u64>,
    },
}

/// Why a client request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// This node is not the leader; the leader, if known.
    #[error("not the leader{}", leader_hint(leader.as_ref()))]
    NotLeader {
        /// The leader's id and address.
        leader: Option<(u64, String)>,
    },
    /// The offset lies below the node's log start (deleted, or before a snapshot it installed).
    #[error("offset {offset} is below the log start {log_start}")]
    OffsetOutOfRange {
        /// The offset asked.
        offset: u64,
        /// The node's first offset.
        log_start: u64,
    },
    /// Some of the records were proposed before the append failed (leadership lost midway,
    /// or Raft stopped): they may or may not commit. Retrying may store them twice.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The request is malformed or too large.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Raft or the storage failed.
    #[error("{0}")]
    Failed(String),
}

/// The committed batches a read returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReply {
    /// Whole batches (Kafka v2), back to back, all below `committed_offset`.
    #[serde(with = "serde_bytes")]
    pub batches: Vec<u8>,
    /// Where the next read starts.
    pub next_offset: u64,
    /// This node's committed offset (the offset after its last applied entry).
    pub committed_offset: u64,
    /// The first offset this node holds.
    pub log_start: u64,
}

/// A node's state, for tools and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// The node's id.
    pub id: u64,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub state: String,
    /// The current term.
    pub term: u64,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// Its last log index.
    pub last_log_index: Option<u64>,
    /// Its committed offset (last applied index + 1).
    pub committed_offset: u64,
    /// The first offset it holds.
    pub log_start: u64,
    /// The voters of its membership.
    pub voters: BTreeSet<u64>,
    /// The learners of its membership.
    pub learners: BTreeSet<u64>,
    /// Its last snapshot's index.
    pub snapshot_index: Option<u64>,
    /// Its last purged index.
    pub purged_index: Option<u64>,
}

/// A response, by request.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// To `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To `InstallSnapshot`.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To `Append`: the offsets of the records, in order.
    Appended(Result<Vec<u64>, ClientError>),
    /// To `Read`.
    Read(Result<ReadReply, ClientError>),
    /// To `Init`, `AddLearner`, `ChangeMembership`, `Block`.
    Done(Result<(), ClientError>),
    /// To `Metrics`.
    Metrics(NodeMetrics),
}

/// How a `NotLeader` names the leader.
fn leader_hint(leader: Option<&(u64, String)>) -> String {
    match leader {
        Some((id, addr)) => format!(" (the leader is node {id} at {addr})"),
        None => " (no leader known now)".into(),
    }
}

/// A client error from openraft's answer to a membership change asked of the leader: its
/// `ForwardToLeader` may come after the change's entry was appended (and then truncated here;
/// another replica may still commit it), so it is `OutcomeUnknown`, as is a fatal error. A
/// refused change (another in progress, an unknown learner) is `Failed` when the change has
/// `one_step`; a change of voters takes two, and a refusal of the second comes after the first
/// (the joint configuration) committed, so it is `OutcomeUnknown` too.
pub fn membership_error(
    e: RaftError<u64, ClientWriteError<u64, rill_raft::openraft::BasicNode>>,
    one_step: bool,
) -> ClientError {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) if one_step => {
            ClientError::Failed(refused.to_string())
        }
        other => ClientError::OutcomeUnknown(other.to_string()),
    }
}

/// A message as a frame (length prefix included); `ErrorKind::InvalidInput` when it exceeds
/// [`MAX_FRAME_BYTES`].
pub fn encode_frame<T: Serialize>(message: &T) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 4];
    let mut encoder = rmp_serde::Serializer::new(&mut frame).with_struct_map();
    message
        .serialize(&mut encoder)
        .map_err(std::io::Error::other)?;
    let len = frame.len() - 4;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a frame of {len} bytes exceeds {MAX_FRAME_BYTES}"),
        ));
    }
    frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(frame)
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> std::io::Result<()> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncReadExt + Unpin, T: DeserializeOwned>(
    reader: &mut R,
) -> std::io::Result<Option<T>> {
    match read_frame_len(reader).await? {
        Some(len) => read_frame_body(reader, len).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's length prefix (at most [`MAX_FRAME_BYTES`]); `None` at a clean end of
/// stream. The body, [`read_frame_body`], follows.
pub async fn read_frame_len<R: AsyncReadExt + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<u32>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len as usize > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "a frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
        )));
    }
    Ok(Some(len))
}

/// Reads and decodes a frame's body of `len` bytes.
pub async fn read_frame_body<R: AsyncReadExt + Unpin, T: DeserializeOwned>(
    reader: &mut R,
    len: u32,
) -> std::io::Result<T> {
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    rmp_serde::from_slice(&body).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_an_oversized_length_is_refused_before_its_body() {
        let frame = encode_frame(&Request::Metrics).unwrap();
        let mut reader = &frame[..];
        let read: Option<Request> = read_frame(&mut reader).await.unwrap();
        assert!(matches!(read, Some(Request::Metrics)));
        let read: Option<Request> = read_frame(&mut reader).await.unwrap();
        assert!(read.is_none(), "a clean end of stream");

        // Only the length is there: refused without waiting for (or allocating) a body.
        let too_long = u32::try_from(MAX_FRAME_BYTES + 1).unwrap().to_be_bytes();
        let mut reader = &too_long[..];
        assert!(read_frame_len(&mut reader).await.is_err());
        let at_bound = u32::try_from(MAX_FRAME_BYTES).unwrap().to_be_bytes();
        let mut reader = &at_bound[..];
        assert_eq!(
            read_frame_len(&mut reader).await.unwrap(),
            Some(MAX_FRAME_BYTES as u32)
        );
    }
}
