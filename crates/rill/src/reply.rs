//! The one-shot answer of a request: the shard's side ([`Reply`]) and the slot the caller's
//! [`crate::Pending`] reads. Slots of common answer types are recycled through a small
//! per-thread pool, so a request in steady state allocates nothing.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::sync::Arc;
use std::task::Waker;

/// The shard's answer, once it arrives.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

/// Answer types whose slots are recycled through a small per-thread pool, so a request in
/// steady state allocates nothing.
pub(crate) trait Pooled: Sized + 'static {
    /// Runs `f` with this thread's pool of free slots.
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Arc<Slot<Self>>>) -> R) -> R;
}

/// Free slots kept per thread and answer type.
const POOL_SLOTS: usize = 16;

/// Makes answer types [`Pooled`], each with a thread-local pool (invoked where each type is
/// defined).
macro_rules! pooled {
    ($($t:ty),*) => {$(
        impl $crate::reply::Pooled for $t {
            fn with_pool<R>(
                f: impl FnOnce(&mut Vec<std::sync::Arc<$crate::reply::Slot<Self>>>) -> R,
            ) -> R {
                thread_local! {
                    static POOL: std::cell::RefCell<Vec<std::sync::Arc<$crate::reply::Slot<$t>>>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                POOL.with(|pool| f(&mut pool.borrow_mut()))
            }
        }
    )*};
}

pub(crate) use pooled;

pooled!(
    rill_segment::AppendInfo,
    rill_segment::Offsets,
    rill_segment::compaction::CompactionReport,
    i64,
    ()
);

/// Gives a slot whose answer was taken back to this thread's pool.
pub(crate) fn recycle<T: Pooled>(slot: Arc<Slot<T>>) {
    T::with_pool(|pool| {
        if pool.len() < POOL_SLOTS {
            pool.push(slot);
        }
    });
}

/// A slot from this thread's pool, if one is free (nobody else holds it), else a new one.
fn pooled_slot<T: Pooled>() -> Arc<Slot<T>> {
    let reused = T::with_pool(|pool| {
        let at = pool.iter().position(|slot| Arc::strong_count(slot) == 1)?;
        Some(pool.swap_remove(at))
    });
    match reused {
        Some(slot) => {
            let mut state = slot.state.lock();
            state.value = None;
            state.waker = None;
            drop(state);
            slot
        }
        None => Slot::new(),
    }
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

    /// The answer, if it arrived; else `waker` is woken when it does.
    pub(crate) fn take_or_wake(&self, waker: &Waker) -> Option<Result<T>> {
        let mut state = self.state.lock();
        if let Some(value) = state.value.take() {
            return Some(value);
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
        None
    }
}

/// The shard's side of a slot. Dropping it unanswered answers [`Error::ShuttingDown`], so no
/// caller waits forever.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Reply<T> {
    /// Whether the caller dropped its [`Pending`]: nobody will see the answer.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|slot| Arc::strong_count(slot) == 1)
    }

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

/// A slot, recycled when one is free: the reply for the shard and the slot for the caller.
pub(crate) fn channel<T: Pooled>() -> (Reply<T>, Arc<Slot<T>>) {
    let slot = pooled_slot();
    (
        Reply {
            slot: Some(Arc::clone(&slot)),
        },
        slot,
    )
}
