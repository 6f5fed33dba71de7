//! What a shard is asked to do: plain data, one variant per request, each with the reply slot
//! its caller waits on.

use crate::read_batches::ReadBatches;
use crate::release::{BytesGuard, GateTicket};
use crate::reply::Reply;
use crate::send_item::{SendItem, SendReply};
use crate::shared::{OrderGuard, PartitionShared};
use rill_segment::partition::{ReadLimit, ValidBatch};
use rill_segment::{AppendInfo, Durability, Offsets};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// What a shard is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    /// An append that could not be written on the caller's thread (the unsynced bound was
    /// reached, or requests it must not overtake are queued): the shard writes it.
    Append {
        part: Arc<PartitionShared>,
        batch: ValidBatch,
        durability: Durability,
        reply: Reply<AppendInfo>,
        /// Held for its `Drop` (see [`OrderGuard`]).
        order: OrderGuard,
        /// The batch's bytes, counted in the queue's bound while the request holds them (set
        /// when it is queued).
        bytes: Option<BytesGuard>,
    },
    /// Answer once the partition is durable up to `durable_offset` (a durable append, already
    /// written on the caller's thread, waiting for its fdatasync).
    AwaitDurable {
        part: Arc<PartitionShared>,
        durable_offset: i64,
        info: AppendInfo,
        reply: Reply<AppendInfo>,
    },
    /// Start a sync though nobody waits for it (the unsynced bound is half used, or a segment
    /// rolled).
    WantSync { part: Arc<PartitionShared> },
    Read {
        part: Arc<PartitionShared>,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
        reply: Reply<ReadBatches>,
    },
    Flush {
        part: Arc<PartitionShared>,
        reply: Reply<Offsets>,
    },
    /// Whole batches of one partition to a socket (see [`crate::send`]): a single send, or the
    /// current item of a run of sends on this shard (the run's next item is queued as its own
    /// `Send` when this one ends).
    Send {
        item: SendItem,
        socket: OwnedFd,
        socket_nonblocking: bool,
        gate: GateTicket,
        reply: SendReply,
    },
    TruncateTo {
        part: Arc<PartitionShared>,
        offset: i64,
        reply: Reply<i64>,
        /// Held for its `Drop` (see [`OrderGuard`]).
        order: OrderGuard,
    },
    DeleteBefore {
        part: Arc<PartitionShared>,
        offset: i64,
        reply: Reply<i64>,
        /// Held for its `Drop` (see [`OrderGuard`]).
        order: OrderGuard,
    },
    /// Empties the log and starts it again at `offset` (`truncate_fully_and_start_at`).
    StartAt {
        part: Arc<PartitionShared>,
        offset: i64,
        reply: Reply<i64>,
        /// Held for its `Drop` (see [`OrderGuard`]).
        order: OrderGuard,
    },
    /// Installs a built compaction (swaps cleaned segments in) once no operation uses the
    /// partition's files.
    InstallCompaction {
        part: Arc<PartitionShared>,
        cleaned: Box<rill_segment::compaction::Cleaned>,
        reply: Reply<rill_segment::compaction::CompactionReport>,
    },
    /// Hands a recovered partition to the shard.
    Attach {
        shared: Arc<PartitionShared>,
        reply: Reply<()>,
    },
    /// Closes a partition and forgets it (topic deletion).
    Detach {
        part: Arc<PartitionShared>,
        reply: Reply<()>,
        /// Held for its `Drop` (see [`OrderGuard`]).
        order: OrderGuard,
    },
    /// Finishes queued work, closes every partition cleanly, and stops the shard.
    Shutdown { reply: Reply<()> },
}

impl Request {
    /// The partition the request is for; `None` for shard-wide requests.
    pub(crate) fn partition(&self) -> Option<&Arc<PartitionShared>> {
        match self {
            Self::Append { part, .. }
            | Self::AwaitDurable { part, .. }
            | Self::WantSync { part }
            | Self::Read { part, .. }
            | Self::Flush { part, .. }
            | Self::Send {
                item: SendItem { part, .. },
                ..
            }
            | Self::TruncateTo { part, .. }
            | Self::DeleteBefore { part, .. }
            | Self::StartAt { part, .. }
            | Self::InstallCompaction { part, .. }
            | Self::Detach { part, .. } => Some(part),
            Self::Attach { .. } | Self::Shutdown { .. } => None,
        }
    }

    /// Bytes of batch data the request holds (what `max_queued_bytes` bounds).
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Self::Append { batch, .. } => batch.len(),
            _ => 0,
        }
    }

    /// Makes the request carry the guard of its batch's bytes.
    pub(crate) fn hold_bytes(&mut self, guard: BytesGuard) {
        if let Self::Append { bytes, .. } = self {
            *bytes = Some(guard);
        }
    }

    /// Makes a send's gate ticket inert: the request never held its socket's gate.
    pub(crate) fn disarm_gate(&mut self) {
        if let Self::Send { gate, .. } = self {
            gate.disarm();
        }
    }

    /// Answers the request with `e`.
    pub(crate) fn fail(self, e: crate::error::Error) {
        match self {
            Self::Append { reply, .. } | Self::AwaitDurable { reply, .. } => reply.send(Err(e)),
            Self::Read { reply, .. } => reply.send(Err(e)),
            Self::Flush { reply, .. } => reply.send(Err(e)),
            Self::Send { reply, gate, .. } => {
                reply.stop_list();
                drop(gate);
                reply.answer(Err(e));
            }
            Self::TruncateTo { reply, .. }
            | Self::DeleteBefore { reply, .. }
            | Self::StartAt { reply, .. } => {
                reply.send(Err(e));
            }
            Self::InstallCompaction { reply, .. } => reply.send(Err(e)),
            Self::WantSync { .. } => {}
            Self::Detach { reply, .. } | Self::Shutdown { reply } | Self::Attach { reply, .. } => {
                reply.send(Err(e));
            }
        }
    }
}
