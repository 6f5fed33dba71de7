//! Runtime-agnostic futures for requests handled by a shard.
//!
//! A request travels to its shard through a bounded queue; the answer comes back through a
//! one-shot [`Slot`]. [`Pending`] is the caller's side: a `Future` that works under any executor
//! (it only uses the `Waker` it is given), and [`Pending::wait`] blocks the calling thread
//! instead. While the queue is full, the future waits for room (backpressure), holding its
//! request; dropping it then sends nothing. Once sent, the request runs even if the future is
//! dropped (an append may still land, as with any network produce whose answer is lost).

use crate::error::{Error, Result};
use crate::queue::{PushError, Request, ShardHandle};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The shard's answer, once it arrives.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

#[derive(Debug)]
struct SlotState<T> {
    value: Option<Result<T>>,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState {
                value: None,
                waker: None,
            }),
        })
    }
}

/// The shard's side of a slot. Dropping it unanswered answers [`Error::ShuttingDown`], so no
/// caller waits forever.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Reply<T> {
    pub(crate) fn send(mut self, value: Result<T>) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut state = slot.state.lock();
                state.value = Some(value);
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            Self {
                slot: self.slot.take(),
            }
            .send(Err(Error::ShuttingDown));
        }
    }
}

/// A new slot: the reply for the shard and the slot for the caller.
pub(crate) fn channel<T>() -> (Reply<T>, Arc<Slot<T>>) {
    let slot = Slot::new();
    (
        Reply {
            slot: Some(Arc::clone(&slot)),
        },
        slot,
    )
}

enum State<T> {
    /// Not in the queue yet (it was full).
    Unsent {
        shard: Arc<ShardHandle>,
        request: Request,
        slot: Arc<Slot<T>>,
    },
    Sent(Arc<Slot<T>>),
    Ready(Result<T>),
    Done,
}

/// The answer to a request, as a `Future` or by [`Pending::wait`].
#[must_use = "a request does nothing visible until awaited or waited for"]
pub struct Pending<T> {
    state: State<T>,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Unsent { .. } => "queued",
            State::Sent(_) => "sent",
            State::Ready(_) => "ready",
            State::Done => "done",
        };
        f.debug_struct("Pending").field("state", &state).finish()
    }
}

impl<T> Pending<T> {
    /// Sends `request` (answered through `slot`) to `shard`, or keeps it to send when the queue
    /// has room.
    pub(crate) fn send(shard: &Arc<ShardHandle>, request: Request, slot: Arc<Slot<T>>) -> Self {
        match shard.try_push(request, None) {
            Ok(()) => Self {
                state: State::Sent(slot),
            },
            Err(PushError::Closed) => Self::ready(Err(Error::ShuttingDown)),
            Err(PushError::Full(request)) => Self {
                state: State::Unsent {
                    shard: Arc::clone(shard),
                    request,
                    slot,
                },
            },
        }
    }

    /// The answer to a request already queued.
    pub(crate) fn sent(slot: Arc<Slot<T>>) -> Self {
        Self {
            state: State::Sent(slot),
        }
    }

    /// An answer known without asking the shard.
    pub(crate) fn ready(value: Result<T>) -> Self {
        Self {
            state: State::Ready(value),
        }
    }

    /// Blocks the calling thread until the answer arrives. Do not call it on an async
    /// executor's thread; `.await` the future there.
    pub fn wait(self) -> Result<T> {
        block_on(self)
    }
}

// `Pending` holds no self-references: moving it is always fine.
impl<T> Unpin for Pending<T> {}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        // At most two passes: Unsent -> Sent -> (answer or Pending).
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(Err(Error::ShuttingDown)),
                State::Ready(value) => return Poll::Ready(value),
                State::Unsent {
                    shard,
                    request,
                    slot,
                } => match shard.try_push(request, Some(cx.waker())) {
                    Ok(()) => this.state = State::Sent(slot),
                    Err(PushError::Closed) => return Poll::Ready(Err(Error::ShuttingDown)),
                    Err(PushError::Full(request)) => {
                        this.state = State::Unsent {
                            shard,
                            request,
                            slot,
                        };
                        return Poll::Pending;
                    }
                },
                State::Sent(slot) => {
                    let mut state = slot.state.lock();
                    if let Some(value) = state.value.take() {
                        return Poll::Ready(value);
                    }
                    let waker = cx.waker();
                    if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        state.waker = Some(waker.clone());
                    }
                    drop(state);
                    this.state = State::Sent(slot);
                    return Poll::Pending;
                }
            }
        }
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

/// Runs a future to completion on the calling thread, parking between polls.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Each pass either finishes or parks until a wake-up (spurious wake-ups just poll again).
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}
