//! The partition's life around its I/O: detaching (topic deletion), periodic maintenance
//! (retention, checkpoints when the watermark is off, transfer expiry), and the clean close.

use super::Shard;
use crate::error::Error;
use crate::request::Request;
use crate::shared::PartitionKey;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Shard {
    /// Closes an idle partition and forgets it; answers its detach and fails what is queued
    /// behind it.
    pub(super) fn detach(&mut self, key: PartitionKey, request: Request) {
        let Some(mut state) = self.partitions.remove(&key) else {
            request.fail(Error::ShuttingDown);
            return;
        };
        // The detach itself and everything behind it leave the queue.
        self.pending_total -= 1 + state.pending.len();
        self.waiters_total -= state.waiters.len();
        {
            let mut log = state.shared.log.lock();
            state.shared.detached.store(true, Ordering::SeqCst);
            if let Err(e) = log.close() {
                tracing::warn!(error = %e, dir = %log.dir().display(), "closing a detached partition");
            }
            state.shared.publish(&log);
        }
        if let Request::Detach { reply, order, .. } = request {
            drop(order);
            reply.send(Ok(()));
        }
        for request in state.pending.drain(..) {
            request.fail(state.shared.unknown());
        }
    }

    pub(super) fn maintain_if_due(&mut self) {
        // When: the monotonic clock, so a wall clock stepped back cannot hold maintenance off.
        let now = Instant::now();
        if now < self.next_maintenance {
            return;
        }
        self.next_maintenance = now + Duration::from_millis(self.config.maintenance_interval_ms);
        // What: retention by time and checkpoint times compare wall-clock timestamps.
        let now = self.config.wall_clock.now_ms();
        self.driver.expire_sends(false);
        let mut roll_work = Vec::new();
        for (key, state) in &self.partitions {
            // Files in use wait for the next tick.
            if state.files_in_use() {
                continue;
            }
            let mut log = state.shared.log.lock();
            if log.failure().is_some() {
                continue;
            }
            if let Err(e) = log.apply_retention(now) {
                tracing::warn!(error = %e, dir = %log.dir().display(), "retention");
            }
            log.expire_producers(now);
            if let Err(e) = log.maybe_checkpoint(now) {
                tracing::warn!(error = %e, dir = %log.dir().display(), "checkpoint");
            }
            state.shared.metrics.maintenance(&log);
            state.shared.publish(&log);
            // A safety net for roll work queued by a change the shard did not see.
            if log.has_roll_work() {
                roll_work.push(*key);
            }
        }
        for key in roll_work {
            self.start_roll_work(key);
        }
        crate::metrics::shard_queue(self.handle.id, &self.handle.queue_stats());
    }

    pub(super) fn close_all(&mut self) {
        let mut first_error = None;
        for state in self.partitions.values() {
            let mut log = state.shared.log.lock();
            if let Err(e) = log.close() {
                tracing::warn!(error = %e, dir = %log.dir().display(), "close");
                first_error.get_or_insert(e);
            }
            state.shared.publish(&log);
        }
        let stats = self.driver.stats();
        tracing::debug!(shard = self.handle.id, ?stats, "shard stopped");
        let mut first_error = first_error.map(Error::from);
        for reply in self.shutdown.drain(..) {
            reply.send(first_error.take().map_or(Ok(()), Err));
        }
    }
}
