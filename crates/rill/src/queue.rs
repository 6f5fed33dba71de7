//! The bounded request queue of a shard.
//!
//! Bounded twice: by count (`queue_depth`) and by the bytes of queued batches
//! (`max_queued_bytes`, always admitting one request into an empty queue so any batch can pass).
//! A request that finds the queue full is parked behind the earlier ones: arrival order is kept
//! (appends from one thread stay in order), its caller waits until the shard has taken and
//! answered it, and a caller that drops its future takes the parked request back out, so
//! memory never grows beyond what callers hold in live futures.

use crate::request::Request;
use parking_lot::Mutex;
use rill_uring::{Doorbell, DriverStats};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Why a request was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    Closed,
}

/// Where a pushed request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Into the queue proper.
    Admitted,
    /// Into the overflow, behind earlier requests, with this ticket (see [`ShardHandle::cancel`]).
    Parked(u64),
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Request>,
    bytes: usize,
    /// Requests that found the queue full, in arrival order. The shard takes them after the
    /// queue proper, so arrival order is kept; their callers wait (backpressure), and a caller
    /// that gives up removes its request (memory is bounded by the callers' live futures).
    overflow: BTreeMap<u64, Request>,
    next_ticket: u64,
    closed: bool,
}

/// A shard as producers see it: its queue and its doorbell.
#[derive(Debug)]
pub(crate) struct ShardHandle {
    pub(crate) id: usize,
    state: Mutex<QueueState>,
    capacity: usize,
    max_bytes: usize,
    pub(crate) doorbell: Arc<Doorbell>,
    /// The driver's counters, published by the shard after each pass.
    pub(crate) stats: Mutex<DriverStats>,
    /// Test hook: the shard panics at its next pass.
    #[cfg(feature = "test-hooks")]
    pub(crate) panic_next_pass: std::sync::atomic::AtomicBool,
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
            #[cfg(feature = "test-hooks")]
            panic_next_pass: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Queues `request` and wakes the shard. A full queue (by count or bytes, or because
    /// earlier requests are parked) parks the request in arrival order instead.
    pub(crate) fn push(&self, request: Request) -> Result<Queued, PushError> {
        let queued = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            let bytes = request.bytes();
            let full = !state.overflow.is_empty()
                || state.items.len() >= self.capacity
                || (!state.items.is_empty() && state.bytes + bytes > self.max_bytes);
            if full {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.overflow.insert(ticket, request);
                Queued::Parked(ticket)
            } else {
                state.bytes += bytes;
                state.items.push_back(request);
                Queued::Admitted
            }
        };
        self.doorbell.ring();
        Ok(queued)
    }

    /// Removes a parked request whose caller gave up; returns it if the shard had not taken
    /// it yet (it is then dropped outside the lock by the caller).
    pub(crate) fn cancel(&self, ticket: u64) -> Option<Request> {
        self.state.lock().overflow.remove(&ticket)
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

    /// Queues a request even when the queue is full (a send whose socket just came free: it
    /// was admitted when it was asked for). Gives the request back when closed.
    pub(crate) fn push_or_return(&self, request: Request) -> Result<(), Request> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(request);
            }
            state.items.push_back(request);
        }
        self.doorbell.ring();
        Ok(())
    }

    /// Takes up to `max` requests in arrival order: the queue proper, then parked ones.
    pub(crate) fn drain(&self, out: &mut Vec<Request>, max: usize) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let n = max.min(state.items.len());
        for request in state.items.drain(..n) {
            state.bytes -= request.bytes();
            out.push(request);
        }
        // Bounded by `max`.
        while out.len() < max {
            let Some((_, request)) = state.overflow.pop_first() else {
                break;
            };
            out.push(request);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        let state = self.state.lock();
        state.items.is_empty() && state.overflow.is_empty()
    }

    /// Takes every queued request, parked ones included, however many.
    pub(crate) fn drain_all(&self, out: &mut Vec<Request>) {
        let mut state = self.state.lock();
        state.bytes = 0;
        out.extend(state.items.drain(..));
        out.extend(std::mem::take(&mut state.overflow).into_values());
    }

    /// Refuses new requests; queued ones stay for the shard to finish.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }
}
