//! Serving a partition's queued requests, in order.
//!
//! Requests that only register or start something (durable waits, flushes, reads, sends) are
//! served at once. Two kinds wait at the head of the queue, blocking the requests behind them,
//! until an event of the partition lists it again: an append that met the unsynced bound waits
//! for a sync to make room, and a change to the files (truncation, deletion, detach) waits until
//! nothing in flight uses what it changes (see `PartitionState::must_wait`).

use super::commit::Answer;
use super::{PartitionState, Shard};
use crate::reply::Reply;
use crate::request::Request;
use crate::shared::{OrderGuard, PartitionKey, PartitionShared};
use rill_segment::{Durability, LogError, PartitionLog};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What serving the head request did.
enum Step {
    /// It was served; go on with the next.
    Served,
    /// It waits for an event of the partition.
    Blocked,
    /// The partition is gone (detached).
    Gone,
}

impl Shard {
    /// Serves every listed partition once. Returns whether any request was served.
    pub(super) fn serve_ready(&mut self) -> bool {
        let mut worked = false;
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            if let Some(state) = self.partitions.get_mut(&key) {
                state.listed = false;
            }
            worked |= self.serve(key);
        }
        self.start_deferred_sends();
        worked
    }

    /// Serves `key`'s requests until its queue is empty or the head must wait.
    fn serve(&mut self, key: PartitionKey) -> bool {
        let mut worked = false;
        // Bounded: each pass serves one request, or stops.
        loop {
            let Some(state) = self.partitions.get_mut(&key) else {
                return worked;
            };
            let Some(request) = state.pending.pop_front() else {
                return worked;
            };
            match self.serve_one(key, request) {
                Step::Served => {
                    self.pending_total -= 1;
                    worked = true;
                }
                Step::Blocked => {
                    if let Some(state) = self.partitions.get_mut(&key) {
                        state.blocked = true;
                    }
                    return worked;
                }
                Step::Gone => return true,
            }
        }
    }

    fn serve_one(&mut self, key: PartitionKey, request: Request) -> Step {
        let Some(state) = self.partitions.get_mut(&key) else {
            request.fail(crate::error::Error::ShuttingDown);
            return Step::Served;
        };
        match request {
            Request::Append { .. } => return self.serve_append(key, request),
            Request::AwaitDurable {
                durable_offset,
                info,
                reply,
                ..
            } => self.await_durable(key, durable_offset, Answer::Append(reply, info)),
            Request::Flush { reply, .. } => {
                let written = state.shared.log.lock().offsets().log_end;
                self.await_durable(key, written, Answer::Flush(reply));
            }
            Request::WantSync { part } => {
                part.sync_wanted.store(false, Ordering::SeqCst);
                self.want_sync(key);
                self.start_roll_work(key);
            }
            Request::Read {
                offset,
                max_bytes,
                limit,
                reply,
                ..
            } => self.start_read(key, offset, max_bytes, limit, reply),
            request @ Request::Send { .. } => {
                // Counted from now until answered, so a change to the files behind it waits.
                state.sends_in_flight += 1;
                self.sends.deferred.push_back(request);
            }
            request @ (Request::TruncateTo { .. }
            | Request::DeleteBefore { .. }
            | Request::StartAt { .. }
            | Request::InstallCompaction { .. }
            | Request::Detach { .. }) => {
                if state.must_wait(&request) {
                    if !state.waiters.is_empty() {
                        self.want_sync(key);
                    }
                    return self.put_back(key, request);
                }
                if matches!(request, Request::Detach { .. }) {
                    self.detach(key, request);
                    return Step::Gone;
                }
                run_change(state, request, self.config.wall_clock.now_ms());
            }
            request @ (Request::Attach { .. } | Request::Shutdown { .. }) => {
                request.fail(crate::error::Error::Config(
                    "not a partition request".into(),
                ));
            }
        }
        Step::Served
    }

    /// An append the caller could not write (the unsynced bound, or requests ahead of it): the
    /// shard writes it once the bound allows.
    fn serve_append(&mut self, key: PartitionKey, request: Request) -> Step {
        let Some(state) = self.partitions.get(&key) else {
            return Step::Served;
        };
        let part = Arc::clone(&state.shared);
        let mut log = part.log.lock();
        let len = request.bytes();
        if log.must_sync_before(len) && log.failure().is_none() {
            drop(log);
            if state.sync_token.is_none() {
                self.want_sync(key);
            }
            return self.put_back(key, request);
        }
        let Request::Append {
            batch,
            durability,
            reply,
            order,
            bytes,
            ..
        } = request
        else {
            return Step::Served;
        };
        let result = log.append_valid(batch, self.config.wall_clock.now_ms());
        let wants_sync = log.wants_sync();
        let roll_work = log.has_roll_work();
        part.publish(&log);
        let result = result.map_err(|e| part.error(&log, e));
        // Appends behind this one may now be written by their callers; the batch has left the
        // library's queue.
        drop(order);
        drop(bytes);
        drop(log);
        if roll_work {
            self.start_roll_work(key);
        }
        match result {
            Ok(info) if durability == Durability::Durable => {
                self.await_durable(key, info.last_offset + 1, Answer::Append(reply, info));
            }
            Ok(info) => {
                reply.send(Ok(info));
                if wants_sync {
                    self.want_sync(key);
                }
            }
            Err(e) => reply.send(Err(e)),
        }
        Step::Served
    }

    /// Puts `request` back at the head of `key`'s queue: it waits for an event.
    fn put_back(&mut self, key: PartitionKey, request: Request) -> Step {
        if let Some(state) = self.partitions.get_mut(&key) {
            state.pending.push_front(request);
        }
        Step::Blocked
    }
}

/// Runs a change that cuts the log's tail (so reads planned before it must not be trusted:
/// `truncations` counts it) and answers it with the new end.
fn cut(
    part: &Arc<PartitionShared>,
    reply: Reply<i64>,
    order: OrderGuard,
    change: impl FnOnce(&mut PartitionLog) -> Result<i64, LogError>,
) {
    let result = part.update(|log| {
        part.truncations.fetch_add(1, Ordering::SeqCst);
        change(log).map_err(|e| part.error(log, e))
    });
    // Later appends may go on once the change is made.
    drop(order);
    reply.send(result);
}

/// Runs a truncation or deletion on an idle partition and answers it.
fn run_change(state: &PartitionState, request: Request, now_ms: i64) {
    let part = &state.shared;
    let now = now_ms;
    match request {
        Request::TruncateTo {
            offset,
            reply,
            order,
            ..
        } => cut(part, reply, order, |log| log.truncate_to(offset, now)),
        Request::DeleteBefore {
            offset,
            reply,
            order,
            ..
        } => {
            let result = part.update(|log| {
                log.delete_before(offset, now)
                    .map(|outcome| outcome.log_start_offset)
                    .map_err(|e| part.error(log, e))
            });
            drop(order);
            reply.send(result);
        }
        Request::StartAt {
            offset,
            reply,
            order,
            ..
        } => cut(part, reply, order, |log| {
            log.truncate_fully_and_start_at(offset, now)
        }),
        Request::InstallCompaction { cleaned, reply, .. } => {
            // Reads planned before it hold the replaced files open and read what they
            // planned: compaction changes no byte of them, and no offset.
            let result = part.update(|log| {
                log.install_compaction(*cleaned)
                    .map_err(|e| part.error(log, e))
            });
            reply.send(result);
        }
        other => other.fail(crate::error::Error::Config("not a change request".into())),
    }
}
