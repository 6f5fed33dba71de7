//! Runtime-agnostic futures for requests handled by a shard.
//!
//! A request travels to its shard through a bounded queue; the answer comes back through a
//! one-shot [`Slot`]. [`Pending`] is the caller's side: a `Future` that works under any executor
//! (it only uses the `Waker` it is given), and [`Pending::wait`] blocks the calling thread
//! instead. When the queue is full the request waits in the future itself, in line behind
//! earlier ones (see [`crate::queue`]), and is queued once there is room; dropping the future
//! before then means it never runs. Once the
//! shard has taken a request it runs even if the future is dropped (an append may still land,
//! as with any network produce whose answer is lost).

use crate::error::{Error, Result};
use crate::queue::{NoRoom, ShardHandle};
use crate::reply::{Pooled, Slot, recycle};
use crate::request::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

enum State<T> {
    Sent(Arc<Slot<T>>),
    /// Waiting for room in the shard's queue, in line with `ticket`; the request stays here,
    /// in the caller's future, until it is queued.
    Waiting {
        shard: Arc<ShardHandle>,
        ticket: u64,
        request: Option<Request>,
        slot: Arc<Slot<T>>,
    },
    Ready(Result<T>),
    Done,
}

/// The answer to a request, as a `Future` or by [`Pending::wait`].
#[must_use = "a request does nothing visible until awaited or waited for"]
pub struct Pending<T> {
    state: State<T>,
    /// Where the slot goes once its answer is taken (pooled answer types).
    recycle: Option<fn(Arc<Slot<T>>)>,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Sent(_) => "sent",
            State::Waiting { .. } => "waiting for room",
            State::Ready(_) => "ready",
            State::Done => "done",
        };
        f.debug_struct("Pending")
            .field("state", &state)
            .field("recycled", &self.recycle.is_some())
            .finish()
    }
}

impl<T> Pending<T> {
    /// Sends `request` (answered through `slot`) to `shard`: queued now if there is room, else
    /// when there is, in arrival order, while the future is polled.
    pub(crate) fn send(shard: &Arc<ShardHandle>, request: Request, slot: Arc<Slot<T>>) -> Self
    where
        T: Pooled,
    {
        match shard.reserve_or_ticket(request.bytes()) {
            Ok(Ok(permit)) => {
                permit.push(request);
                Self::sent(slot)
            }
            Ok(Err(ticket)) => Self {
                state: State::Waiting {
                    shard: Arc::clone(shard),
                    ticket,
                    request: Some(request),
                    slot,
                },
                recycle: Some(recycle::<T>),
            },
            Err(_) => Self::ready(Err(Error::ShuttingDown)),
        }
    }

    /// The answer to a request already queued.
    pub(crate) fn sent(slot: Arc<Slot<T>>) -> Self
    where
        T: Pooled,
    {
        Self {
            state: State::Sent(slot),
            recycle: Some(recycle::<T>),
        }
    }

    /// An answer known without asking the shard.
    pub(crate) fn ready(value: Result<T>) -> Self {
        Self {
            state: State::Ready(value),
            recycle: None,
        }
    }

    /// Blocks the calling thread until the answer arrives. Do not call it on an async
    /// executor's thread; `.await` the future there.
    pub fn wait(mut self) -> Result<T> {
        // An answer known at once (a written append) needs no waker.
        if let State::Ready(_) = self.state
            && let State::Ready(value) = std::mem::replace(&mut self.state, State::Done)
        {
            return value;
        }
        block_on(self)
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if let State::Waiting { shard, ticket, .. } = &self.state {
            // The caller gave up before its request was queued: it never runs.
            shard.cancel_wait(*ticket);
        }
    }
}

// `Pending` holds no self-references: moving it is always fine.
impl<T> Unpin for Pending<T> {}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        if let State::Waiting {
            shard,
            ticket,
            request,
            slot,
        } = &mut this.state
        {
            let bytes = request.as_ref().map_or(0, Request::bytes);
            match shard.poll_reserve(*ticket, bytes, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(NoRoom::Closed | NoRoom::Full)) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(Error::ShuttingDown));
                }
                Poll::Ready(Ok(permit)) => {
                    if let Some(request) = request.take() {
                        permit.push(request);
                    }
                    this.state = State::Sent(Arc::clone(slot));
                }
            }
        }
        let slot = match &this.state {
            State::Done => return Poll::Ready(Err(Error::ShuttingDown)),
            State::Ready(_) => {
                let State::Ready(value) = std::mem::replace(&mut this.state, State::Done) else {
                    return Poll::Ready(Err(Error::ShuttingDown));
                };
                return Poll::Ready(value);
            }
            State::Sent(slot) | State::Waiting { slot, .. } => Arc::clone(slot),
        };
        let Some(value) = slot.take_or_wake(cx.waker()) else {
            return Poll::Pending;
        };
        this.state = State::Done;
        if let Some(recycle) = this.recycle {
            recycle(slot);
        }
        Poll::Ready(value)
    }
}

/// Wakes a thread blocked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// This thread's waker for [`block_on`], made once.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

/// Runs a future on the calling thread until it completes or `deadline` passes (`None`),
/// parking between polls.
pub(crate) fn block_on_until<F: Future>(
    future: F,
    deadline: std::time::Instant,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = THREAD_WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    // Bounded by the deadline: each pass finishes or parks until a wake-up or the deadline.
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return Some(value);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Runs a future to completion on the calling thread, parking between polls.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = THREAD_WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    // Each pass either finishes or parks until a wake-up (spurious wake-ups just poll again).
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}
