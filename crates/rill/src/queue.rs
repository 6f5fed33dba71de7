//! The bounded request queue of a shard, and the requests it carries.
//!
//! Bounded twice: by count (`queue_depth`) and by the bytes of queued batches
//! (`max_queued_bytes`, always admitting one request into an empty queue so any batch can pass).
//! A producer that finds it full gets its request back and registers its waker; the shard wakes
//! the waiters whenever it takes requests out.

use crate::partition::{PartitionShared, ReadBatches};
use crate::pending::Reply;
use bytes::BytesMut;
use parking_lot::Mutex;
use rill_segment::partition::ReadLimit;
use rill_segment::{AppendInfo, Durability, Offsets, PartitionLog};
use rill_uring::{Doorbell, DriverStats};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

/// A partition's key inside its shard.
pub(crate) type PartitionKey = u64;

/// What a shard is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    Append {
        part: Arc<PartitionShared>,
        batch: BytesMut,
        durability: Durability,
        reply: Reply<AppendInfo>,
    },
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
    OffsetForTimestamp {
        part: Arc<PartitionShared>,
        timestamp_ms: i64,
        reply: Reply<Option<i64>>,
    },
    TruncateTo {
        part: Arc<PartitionShared>,
        offset: i64,
        reply: Reply<i64>,
    },
    DeleteBefore {
        part: Arc<PartitionShared>,
        offset: i64,
        reply: Reply<i64>,
    },
    /// Hands a recovered partition log to the shard.
    Attach {
        log: Box<PartitionLog>,
        shared: Arc<PartitionShared>,
        reply: Reply<()>,
    },
    /// Closes a partition and forgets it (topic deletion).
    Detach {
        part: Arc<PartitionShared>,
        reply: Reply<()>,
    },
    /// Finishes queued work, closes every partition cleanly, and stops the shard.
    Shutdown { reply: Reply<()> },
}

impl Request {
    /// The partition the request is for; `None` for shard-wide requests.
    pub(crate) fn partition(&self) -> Option<&Arc<PartitionShared>> {
        match self {
            Self::Append { part, .. }
            | Self::Read { part, .. }
            | Self::Flush { part, .. }
            | Self::OffsetForTimestamp { part, .. }
            | Self::TruncateTo { part, .. }
            | Self::DeleteBefore { part, .. }
            | Self::Detach { part, .. } => Some(part),
            Self::Attach { .. } | Self::Shutdown { .. } => None,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::Append { batch, .. } => batch.len(),
            _ => 0,
        }
    }
}

/// Why a request was not queued; it is handed back.
#[derive(Debug)]
pub(crate) enum PushError {
    Full(Request),
    Closed,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Request>,
    bytes: usize,
    closed: bool,
    waiters: Vec<Waker>,
}

/// A shard as producers see it: its queue and its doorbell.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    pub(crate) id: usize,
    state: Mutex<QueueState>,
    capacity: usize,
    max_bytes: usize,
    pub(crate) doorbell: Arc<Doorbell>,
    /// The driver's counters, published by the shard after each round.
    pub(crate) stats: Mutex<DriverStats>,
}

impl ShardHandle {
    pub(crate) fn new(
        id: usize,
        capacity: usize,
        max_bytes: usize,
        doorbell: Arc<Doorbell>,
    ) -> Self {
        Self {
            id,
            state: Mutex::new(QueueState::default()),
            capacity,
            max_bytes,
            doorbell,
            stats: Mutex::new(DriverStats::default()),
        }
    }

    /// Queues `request` and wakes the shard, or hands it back. When full and `waker` is given,
    /// the waker is called once the shard takes requests out.
    pub(crate) fn try_push(
        &self,
        request: Request,
        waker: Option<&Waker>,
    ) -> Result<(), PushError> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            let bytes = request.bytes();
            let full = state.items.len() >= self.capacity
                || (!state.items.is_empty() && state.bytes + bytes > self.max_bytes);
            if full {
                if let Some(waker) = waker
                    && !state.waiters.iter().any(|w| w.will_wake(waker))
                {
                    state.waiters.push(waker.clone());
                }
                return Err(PushError::Full(request));
            }
            state.bytes += bytes;
            state.items.push_back(request);
        }
        self.doorbell.ring();
        Ok(())
    }

    /// Queues a control request even when the queue is full (it carries no data, and only the
    /// log's own administration sends them). Fails only when closed.
    pub(crate) fn push_control(&self, request: Request) -> Result<(), PushError> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            state.items.push_back(request);
        }
        self.doorbell.ring();
        Ok(())
    }

    /// Takes up to `max` requests, in order, and wakes producers waiting for room.
    pub(crate) fn drain(&self, out: &mut Vec<Request>, max: usize) {
        let waiters = {
            let mut state = self.state.lock();
            let n = max.min(state.items.len());
            if n == 0 {
                return;
            }
            let state = &mut *state;
            for request in state.items.drain(..n) {
                state.bytes -= request.bytes();
                out.push(request);
            }
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().items.is_empty()
    }

    /// Refuses new requests; queued ones stay for the shard to finish.
    pub(crate) fn close(&self) {
        let waiters = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}
