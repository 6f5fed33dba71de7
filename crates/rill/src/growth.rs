//! Long polling: waiting until a partition holds data past an offset, and a stream of batches
//! that follows the tail.
//!
//! A wait is a condition on the published offsets, not an event: its future checks the
//! offsets every time it is polled, and registers its waker before checking, so a change
//! published between a check and the registration wakes it (no lost wake-up). Every
//! publication (append, sync, truncation, retention, failure, close) wakes the partition's
//! waiters; those whose condition still does not hold register again. A dropped future
//! removes its waker (cancel-safe); nothing polls in a loop.

use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::read_batches::ReadBatches;
use crate::shared::PartitionShared;
use rill_segment::Offsets;
use rill_segment::partition::ReadLimit;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Waiting for a partition to grow (this module's two futures).
impl Partition {
    /// Resolves once the partition holds data past `offset`: its written end (with
    /// [`ReadLimit::Written`]) or durable end ([`ReadLimit::Durable`]) is beyond it. It also
    /// resolves when the log was cut below `offset` (the next read reports it out of range),
    /// and fails when the partition fails, is closed or its topic deleted. No polling: every
    /// change of the partition's offsets wakes it; dropping it cancels the wait. A deadline is
    /// the caller's: wrap it in its runtime's timeout, or block with
    /// [`DataWait::wait_timeout`].
    pub fn wait_for_data(&self, offset: i64, limit: ReadLimit) -> DataWait {
        DataWait::new(Arc::clone(&self.shared), offset, limit)
    }

    /// Batches from `offset` on, following the tail: see [`BatchStream::next`]. Each read
    /// takes up to `max_bytes` (at least one batch) with the `Config`'s read limit.
    pub fn stream_from(&self, offset: i64, max_bytes: u64) -> BatchStream {
        BatchStream::new(self.clone(), offset, max_bytes, self.read_limit)
    }
}

/// Resolves once the partition holds data past an offset (see [`Partition::wait_for_data`]).
#[derive(Debug)]
#[must_use = "a wait does nothing unless polled or waited on"]
pub struct DataWait {
    shared: Arc<PartitionShared>,
    offset: i64,
    limit: ReadLimit,
    slot: Option<usize>,
}

impl DataWait {
    pub(crate) fn new(shared: Arc<PartitionShared>, offset: i64, limit: ReadLimit) -> Self {
        Self {
            shared,
            offset,
            limit,
            slot: None,
        }
    }

    /// The offsets if the condition holds, an error if it never will, else `None`.
    fn check(&self) -> Option<Result<Offsets>> {
        let offsets = *self.shared.offsets.lock();
        let reached = match self.limit {
            ReadLimit::Written => offsets.log_end,
            ReadLimit::Durable => offsets.durable,
        };
        if reached > self.offset || offsets.log_end < self.offset {
            // Data past the offset, or the log was cut below it (the caller's next read
            // reports the offset out of range).
            return Some(Ok(offsets));
        }
        if self.shared.detached.load(Ordering::SeqCst) {
            return Some(Err(self.shared.unknown()));
        }
        if !self.shared.ended.load(Ordering::SeqCst) {
            return None;
        }
        // Only an ended log is locked, to tell a failure from a close.
        let log = self.shared.log.lock();
        if let Some(reason) = log.failure() {
            return Some(Err(Error::PartitionFailed(reason.clone())));
        }
        if log.is_closed() {
            return Some(Err(Error::ShuttingDown));
        }
        None
    }

    /// Blocks the calling thread until the condition holds or `timeout` passes (`Ok(None)`).
    pub fn wait_timeout(self, timeout: Duration) -> Result<Option<Offsets>> {
        crate::pending::block_on_until(self, Instant::now() + timeout).transpose()
    }
}

impl Future for DataWait {
    type Output = Result<Offsets>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Offsets>> {
        let this = &mut *self;
        // Register first, then check: a publication after the check wakes this waker.
        this.shared.waiters.register(&mut this.slot, cx.waker());
        match this.check() {
            Some(done) => {
                this.shared.waiters.deregister(&mut this.slot);
                Poll::Ready(done)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for DataWait {
    fn drop(&mut self) {
        self.shared.waiters.deregister(&mut self.slot);
    }
}

/// Batches from an offset on, following the tail: each [`BatchStream::next`] returns the next
/// batches, waiting for them when the reader has caught up.
#[derive(Debug)]
pub struct BatchStream {
    partition: Partition,
    next_offset: i64,
    max_bytes: u64,
    limit: ReadLimit,
}

impl BatchStream {
    pub(crate) fn new(partition: Partition, from: i64, max_bytes: u64, limit: ReadLimit) -> Self {
        Self {
            partition,
            next_offset: from,
            max_bytes,
            limit,
        }
    }

    /// Where the next batches start.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The next batches (never empty): read at once if the log holds them, else when it
    /// does. Cancel-safe: dropping the future loses nothing (the position moves only when
    /// batches are returned).
    pub async fn next(&mut self) -> Result<ReadBatches> {
        // Bounded by the log: each pass either returns or waits for it to grow.
        loop {
            let read = self
                .partition
                .read_with(self.next_offset, self.max_bytes, self.limit)
                .await?;
            if !read.is_empty() {
                self.next_offset = read.next_offset;
                return Ok(read);
            }
            DataWait::new(
                Arc::clone(&self.partition.shared),
                self.next_offset,
                self.limit,
            )
            .await?;
        }
    }
}
