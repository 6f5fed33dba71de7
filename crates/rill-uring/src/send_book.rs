//! What both drivers keep for transfers, whatever moves their bytes: the pipe pool, the
//! transfers ready to step or waiting for a pipe, the finished outcomes not yet collected, and
//! the threads for blocking sockets.

use crate::doorbell::Doorbell;
use crate::driver::DriverStats;
use rill_send::{BlockingSenders, Finished, PipePool, PipeStats, SendConfig, SendError, Transfer};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct SendBook {
    pub(crate) config: SendConfig,
    pub(crate) pipes: PipePool,
    /// Transfers (by key) to step at the next opportunity.
    pub(crate) ready: VecDeque<usize>,
    /// Splice transfers waiting for a pipe.
    pub(crate) waiting_pipe: VecDeque<usize>,
    /// Outcomes not yet collected by the shard.
    pub(crate) done: Vec<Finished>,
    pub(crate) blocking: BlockingSenders,
}

impl SendBook {
    /// Blocking-socket threads ring `doorbell` when a transfer of theirs finishes.
    pub(crate) fn new(config: SendConfig, doorbell: &Arc<Doorbell>) -> Self {
        let doorbell = Arc::clone(doorbell);
        Self {
            pipes: PipePool::new(config.max_pipes, config.pipe_bytes),
            blocking: BlockingSenders::new(config, move || doorbell.ring()),
            config,
            ready: VecDeque::new(),
            waiting_pipe: VecDeque::new(),
            done: Vec::new(),
        }
    }

    /// Ends a transfer: its pipe goes back (or is closed), its outcome waits for the shard,
    /// and transfers waiting for a pipe get another try.
    pub(crate) fn finish(&mut self, mut t: Transfer) {
        t.finish(&mut self.pipes);
        self.done.push(t.into_finished());
        self.ready.extend(self.waiting_pipe.drain(..));
    }

    /// Whether the shard must not sleep: outcomes to hand back, or steps to run.
    pub(crate) fn has_work(&mut self) -> bool {
        if !self.done.is_empty() || !self.ready.is_empty() {
            return true;
        }
        self.blocking.collect(&mut self.done);
        !self.done.is_empty()
    }

    /// Moves every outcome into `out`, counting successes in `stats`.
    pub(crate) fn collect(&mut self, out: &mut Vec<Finished>, stats: &mut DriverStats) {
        self.blocking.collect(&mut self.done);
        for finished in &self.done {
            if let Ok(bytes) = finished.result {
                stats.sends += 1;
                stats.send_bytes += bytes;
            }
        }
        out.append(&mut self.done);
    }

    /// Outcomes not collected and transfers on the blocking threads.
    pub(crate) fn in_flight(&self) -> usize {
        self.done.len() + self.blocking.in_flight()
    }

    pub(crate) fn pipe_stats(&self) -> PipeStats {
        self.pipes.stats()
    }

    /// The error that ends `t` at an expiry pass: every transfer with `all` (shutdown), else
    /// one without progress for the stall timeout; `None` if it may go on.
    pub(crate) fn expiry(&self, t: &Transfer, all: bool) -> Option<SendError> {
        let sent = t.sent_total();
        if all {
            return Some(SendError::Cancelled { sent });
        }
        let timeout_ms = self.config.stall_timeout_ms;
        (t.last_progress().elapsed() >= Duration::from_millis(timeout_ms))
            .then_some(SendError::Stalled { sent, timeout_ms })
    }
}
