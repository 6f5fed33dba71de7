//! The bounded request queue of a shard, and the room in it.
//!
//! Bounded twice: by count (`queue_depth` requests waiting for the shard to take them) and by
//! bytes (`max_queued_bytes` of batches inside the library, from queuing until the shard wrote
//! them; one batch is always admitted when none is inside, so any batch can pass). Room is taken
//! as a [`Permit`] before a request is queued. A caller that finds no room either gets `Full`
//! at once (the `try_` APIs) or waits for room in arrival order, with its request still in its
//! own future: the library keeps only a ticket and a waker per waiting caller, so what callers
//! queue never exceeds the bounds, and a caller that gives up takes nothing from anyone.
//!
//! Two kinds of request bypass the bounds, each bounded by construction: the log's own
//! administration (attach, detach, shutdown: one at a time per log, one shutdown per shard,
//! and a partition's unwaited sync, asked once until the shard starts it), and a send
//! dispatched when its socket came free (at most one per socket; it took room when asked).

use crate::release::{BytesGuard, ReleaseBytes};
use crate::request::Request;
use parking_lot::Mutex;
use rill_uring::{Doorbell, DriverStats};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Why no room was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// The queue is full (or earlier callers wait for room first).
    Full,
    /// The shard is closing.
    Closed,
}

/// What a shard's queue held at most since the log opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Most requests queued at once (waiting for the shard to take them).
    pub max_queued_requests: usize,
    /// Most bytes of batches inside the library at once (queued, or taken and not yet written).
    pub max_queued_bytes: usize,
    /// Callers waiting for room now.
    pub waiting_callers: usize,
}

impl std::ops::AddAssign for QueueStats {
    /// Combines shards: maxima of each, callers summed.
    fn add_assign(&mut self, other: Self) {
        self.max_queued_requests = self.max_queued_requests.max(other.max_queued_requests);
        self.max_queued_bytes = self.max_queued_bytes.max(other.max_queued_bytes);
        self.waiting_callers += other.waiting_callers;
    }
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Request>,
    /// Permits given and not yet used or dropped.
    reserved: usize,
    /// Bytes of batches inside the library: reserved by permits, or carried by queued and taken
    /// requests until their [`BytesGuard`] drops.
    bytes: usize,
    /// Callers waiting for room, in arrival order, with the waker of each (set once polled).
    waiting: BTreeMap<u64, Option<Waker>>,
    next_ticket: u64,
    closed: bool,
    stats: QueueStats,
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

/// Room for one request (and `bytes` of batch) in a shard's queue, taken and not yet used.
/// Dropping it unused gives the room back.
#[derive(Debug)]
pub(crate) struct Permit {
    handle: Arc<ShardHandle>,
    bytes: usize,
    used: bool,
}

impl ReleaseBytes for ShardHandle {
    fn release_bytes(&self, bytes: usize) {
        let waker = {
            let mut state = self.state.lock();
            state.bytes -= bytes;
            head_waker(&mut state)
        };
        wake(waker);
    }
}

impl Permit {
    /// Queues `request` in the room taken (its batch bytes stay counted until the request is
    /// done with them) and wakes the shard. A closing shard drops the request, which answers
    /// its caller.
    pub(crate) fn push(mut self, mut request: Request) {
        self.used = true;
        let bytes = std::mem::take(&mut self.bytes);
        if bytes > 0 {
            let owner: Arc<dyn ReleaseBytes> = Arc::clone(&self.handle) as Arc<dyn ReleaseBytes>;
            request.hold_bytes(BytesGuard::new(owner, bytes));
        }
        let rejected = {
            let mut state = self.handle.state.lock();
            state.reserved -= 1;
            if state.closed {
                Some(request)
            } else {
                state.items.push_back(request);
                state.stats.max_queued_requests =
                    state.stats.max_queued_requests.max(state.items.len());
                None
            }
        };
        // Outside the lock: dropping it answers its caller.
        drop(rejected);
        self.handle.doorbell.ring();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.handle.state.lock();
            if !self.used {
                state.reserved -= 1;
            }
            state.bytes -= self.bytes;
            head_waker(&mut state)
        };
        wake(waker);
    }
}

/// The waker of the first waiting caller, to be woken after the lock is released.
fn head_waker(state: &mut QueueState) -> Option<Waker> {
    state.waiting.values_mut().next().and_then(Option::take)
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
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

    fn fits(&self, state: &QueueState, bytes: usize) -> bool {
        state.items.len() + state.reserved < self.capacity
            && (state.bytes == 0 || state.bytes + bytes <= self.max_bytes)
    }

    fn take_room(self: &Arc<Self>, state: &mut QueueState, bytes: usize) -> Permit {
        state.reserved += 1;
        state.bytes += bytes;
        state.stats.max_queued_bytes = state.stats.max_queued_bytes.max(state.bytes);
        Permit {
            handle: Arc::clone(self),
            bytes,
            used: false,
        }
    }

    /// Room for a request with `bytes` of batch, at once, or why not. Callers already waiting
    /// go first.
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: usize) -> Result<Permit, NoRoom> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(NoRoom::Closed);
        }
        if !state.waiting.is_empty() || !self.fits(&state, bytes) {
            return Err(NoRoom::Full);
        }
        Ok(self.take_room(&mut state, bytes))
    }

    /// Whether callers wait for room (a request holding a permit must not pass them when it has
    /// to stay behind one of theirs).
    pub(crate) fn has_waiting(&self) -> bool {
        !self.state.lock().waiting.is_empty()
    }

    /// Room at once, or a ticket in the line of waiting callers (see [`ShardHandle::poll_reserve`]).
    pub(crate) fn reserve_or_ticket(
        self: &Arc<Self>,
        bytes: usize,
    ) -> Result<Result<Permit, u64>, NoRoom> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(NoRoom::Closed);
        }
        if state.waiting.is_empty() && self.fits(&state, bytes) {
            return Ok(Ok(self.take_room(&mut state, bytes)));
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.insert(ticket, None);
        Ok(Err(ticket))
    }

    /// Room for the caller holding `ticket`, once every earlier caller has had theirs and the
    /// queue has it; until then the caller's waker is kept and woken when room frees.
    pub(crate) fn poll_reserve(
        self: &Arc<Self>,
        ticket: u64,
        bytes: usize,
        cx: &Context<'_>,
    ) -> Poll<Result<Permit, NoRoom>> {
        let (result, next) = {
            let mut state = self.state.lock();
            if state.closed {
                state.waiting.remove(&ticket);
                let next = head_waker(&mut state);
                (Poll::Ready(Err(NoRoom::Closed)), next)
            } else if state.waiting.keys().next() == Some(&ticket) && self.fits(&state, bytes) {
                state.waiting.remove(&ticket);
                let permit = self.take_room(&mut state, bytes);
                // The next caller may fit too.
                let next = head_waker(&mut state);
                (Poll::Ready(Ok(permit)), next)
            } else {
                if let Some(slot) = state.waiting.get_mut(&ticket) {
                    *slot = Some(cx.waker().clone());
                }
                (Poll::Pending, None)
            }
        };
        wake(next);
        result
    }

    /// A waiting caller gave up.
    pub(crate) fn cancel_wait(&self, ticket: u64) {
        let waker = {
            let mut state = self.state.lock();
            state.waiting.remove(&ticket);
            head_waker(&mut state)
        };
        wake(waker);
    }

    /// Queues a request of the log's own administration, a partition's unwaited sync, or a send
    /// dispatched by its socket's gate, even when the queue is full (bounded by construction, see
    /// the module documentation). Fails only when closed; the request is then dropped, which
    /// answers its caller.
    pub(crate) fn push_control(&self, request: Request) -> Result<(), NoRoom> {
        let rejected = {
            let mut state = self.state.lock();
            if state.closed {
                Some(request)
            } else {
                state.items.push_back(request);
                None
            }
        };
        if let Some(mut request) = rejected {
            // Answered outside the lock; a send's gate stays with the send in progress, and a
            // list of sends it belongs to stops (see `SendReply::stop_list`).
            request.disarm_gate();
            request.fail(crate::error::Error::ShuttingDown);
            return Err(NoRoom::Closed);
        }
        self.doorbell.ring();
        Ok(())
    }

    /// Takes up to `max` queued requests in arrival order.
    pub(crate) fn drain(&self, out: &mut Vec<Request>, max: usize) {
        let waker = {
            let mut state = self.state.lock();
            let n = max.min(state.items.len());
            out.extend(state.items.drain(..n));
            if n > 0 { head_waker(&mut state) } else { None }
        };
        wake(waker);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().items.is_empty()
    }

    /// Takes every queued request, however many.
    pub(crate) fn drain_all(&self, out: &mut Vec<Request>) {
        self.drain(out, usize::MAX);
    }

    /// Refuses new requests (waiting callers are woken to learn it); queued ones stay for the
    /// shard to finish.
    pub(crate) fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state.lock();
            state.closed = true;
            state
                .waiting
                .values_mut()
                .filter_map(Option::take)
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// What the queue held at most, and the callers waiting now.
    pub(crate) fn queue_stats(&self) -> QueueStats {
        let state = self.state.lock();
        QueueStats {
            waiting_callers: state.waiting.len(),
            ..state.stats
        }
    }
}
