//! Group commit: durable appends and flushes wait for an fdatasync that covers them.
//!
//! A partition that has waiters, or asked for a sync, is queued in `sync_queue`; at the end of
//! the pass every queued partition without a sync in flight begins one
//! ([`rill_segment::PartitionLog::begin_sync`]: everything written so far) and its fdatasyncs go
//! to the driver together, so one `io_uring_enter` carries the syncs of many partitions. Appends
//! go on meanwhile; a waiter that the running sync does not cover waits for the next, which
//! starts as soon as the running one completes. A failed fdatasync fail-stops the partition and
//! fails every waiter.

use super::{InFlight, Shard};
use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::shared::PartitionKey;
use rill_segment::disk::FileId;
use rill_segment::partition::{SyncTicket, WatermarkTicket};
use rill_segment::{AppendInfo, Offsets};
use std::io;

/// Who waits for the durable offset to reach `durable_offset`.
#[derive(Debug)]
pub(super) struct Waiter {
    durable_offset: i64,
    answer: Answer,
}

impl Waiter {
    /// Answers the waiter with `e`.
    pub(super) fn fail(self, e: Error) {
        self.answer.send(Err(e));
    }
}

/// What a waiter is answered with.
#[derive(Debug)]
pub(super) enum Answer {
    Append(Reply<AppendInfo>, AppendInfo),
    Flush(Reply<Offsets>),
}

impl Answer {
    fn send(self, result: Result<Offsets>) {
        match self {
            Self::Append(reply, info) => reply.send(result.map(|_| info)),
            Self::Flush(reply) => reply.send(result),
        }
    }
}

/// A partition's watermark slot whose fdatasync is in flight (acknowledgements do not wait
/// for it: it records what was already durable).
#[derive(Debug)]
pub(super) struct WatermarkInFlight {
    key: PartitionKey,
    ticket: WatermarkTicket,
}

/// A partition's sync in flight.
#[derive(Debug)]
pub(super) struct SyncInFlight {
    key: PartitionKey,
    ticket: SyncTicket,
    /// fdatasyncs not yet completed.
    files_left: usize,
    /// The first that failed.
    failure: Option<(FileId, io::Error)>,
    /// When it started (the sync latency metric).
    started: std::time::Instant,
}

impl Shard {
    /// Registers a waiter for `durable_offset`, answered at once if the partition is durable
    /// that far.
    pub(super) fn await_durable(&mut self, key: PartitionKey, durable_offset: i64, answer: Answer) {
        let Some(state) = self.partitions.get_mut(&key) else {
            answer.send(Err(Error::ShuttingDown));
            return;
        };
        let (offsets, failed) = {
            let log = state.shared.log.lock();
            (log.offsets(), log.failure().cloned())
        };
        if offsets.durable >= durable_offset {
            answer.send(Ok(offsets));
            return;
        }
        if let Some(reason) = failed {
            answer.send(Err(Error::PartitionFailed(reason)));
            return;
        }
        // Waiters arrive nearly in offset order: insert from the back.
        let at = state
            .waiters
            .iter()
            .rposition(|w| w.durable_offset <= durable_offset)
            .map_or(0, |i| i + 1);
        state.waiters.insert(
            at,
            Waiter {
                durable_offset,
                answer,
            },
        );
        self.waiters_total += 1;
        self.want_sync(key);
        // The append may have rolled the segment: its name's directory sync is a roll job.
        self.start_roll_work(key);
    }

    /// Queues a sync of `key` for the end of this pass (once).
    pub(super) fn want_sync(&mut self, key: PartitionKey) {
        if let Some(state) = self.partitions.get_mut(&key)
            && !state.sync_queued
        {
            state.sync_queued = true;
            self.sync_queue.push(key);
        }
    }

    /// Begins the sync of every queued partition that has none in flight, and hands all their
    /// fdatasyncs to the driver.
    pub(super) fn start_syncs(&mut self) {
        let mut queue = std::mem::take(&mut self.sync_queue);
        for key in queue.drain(..) {
            let Some(state) = self.partitions.get_mut(&key) else {
                continue;
            };
            state.sync_queued = false;
            if state.sync_token.is_some() {
                // The running sync's completion starts the next one.
                continue;
            }
            let (begun, watermark) = {
                let mut log = state.shared.log.lock();
                let begun = log.begin_sync(&mut self.files);
                // What was durable before this sync; only once the sync began.
                let watermark = match &begun {
                    Ok(Some(_)) => log.begin_watermark(self.config.wall_clock.now_ms()),
                    _ => Ok(None),
                };
                let watermark = watermark.map_err(|e| state.shared.error(&log, e));
                let begun = begun.map_err(|e| state.shared.error(&log, e));
                if log.failure().is_some() {
                    // Long-polling waits learn of the failure from the publication.
                    state.shared.publish(&log);
                }
                (begun, watermark)
            };
            match begun {
                Ok(Some(ticket)) => {
                    let token = self.in_flight.insert(InFlight::Sync(SyncInFlight {
                        key,
                        ticket,
                        files_left: self.files.len(),
                        failure: None,
                        started: std::time::Instant::now(),
                    }));
                    state.sync_token = Some(token);
                    // Nobody waits for a sync that only bounds the unsynced bytes: it never
                    // runs inline on the shard (its writeback can take milliseconds).
                    let waited = !state.waiters.is_empty();
                    for &file in &self.files {
                        if waited {
                            self.driver.start_sync(token as u64, file);
                        } else {
                            self.driver.start_background_sync(token as u64, file);
                        }
                    }
                    if self.files.is_empty() {
                        self.finish_sync(token);
                    }
                }
                // Nothing unsynced: everything written is durable.
                Ok(None) => self.answer_waiters(key, Ok(())),
                Err(e) => self.answer_waiters(key, Err(e)),
            }
            // After the data's, so a lone sync run inline is the data's.
            match watermark {
                Ok(Some((file, ticket))) => {
                    let token = self
                        .in_flight
                        .insert(InFlight::Watermark(WatermarkInFlight { key, ticket }));
                    if let Some(state) = self.partitions.get_mut(&key) {
                        state.watermark_token = Some(token);
                    }
                    self.driver.start_background_sync(token as u64, file);
                }
                Ok(None) => {}
                // The partition failed writing the slot: the sync begun (if any) still runs,
                // and its completion reports the failure.
                Err(e) => tracing::warn!(error = %e, "writing the watermark"),
            }
        }
        // Keys queued meanwhile (a sync finished inline wanting another) are kept.
        queue.append(&mut self.sync_queue);
        self.sync_queue = queue;
    }

    /// One fdatasync of a sync, or a watermark slot's, ended.
    pub(super) fn sync_done(&mut self, token: usize, file: FileId, result: io::Result<()>) {
        if let Some(InFlight::Watermark(_)) = self.in_flight.get(token) {
            return self.watermark_done(token, result);
        }
        let Some(InFlight::Sync(sync)) = self.in_flight.get_mut(token) else {
            debug_assert!(false, "sync completion for unknown token {token}");
            return;
        };
        sync.files_left -= 1;
        if let Err(e) = result
            && sync.failure.is_none()
        {
            sync.failure = Some((file, e));
        }
        if sync.files_left == 0 {
            self.finish_sync(token);
        }
    }

    /// Every fdatasync of sync `token` ended: completes it in the log and answers the waiters
    /// it covers; starts the next sync if some still wait.
    fn finish_sync(&mut self, token: usize) {
        let Some(InFlight::Sync(sync)) = self.in_flight.try_remove(token) else {
            return;
        };
        let Some(state) = self.partitions.get_mut(&sync.key) else {
            return;
        };
        state.sync_token = None;
        let part = &state.shared;
        part.metrics
            .sync_seconds
            .record(sync.started.elapsed().as_secs_f64());
        let result = part.update(|log| {
            log.complete_sync(sync.ticket, sync.failure.map_or(Ok(()), Err))
                .map(|_| ())
                .map_err(|e| part.error(log, e))
        });
        self.answer_waiters(sync.key, result);
        self.relist(sync.key);
    }

    /// A watermark slot's fdatasync ended: the slot is current, or the partition fail-stops.
    fn watermark_done(&mut self, token: usize, result: io::Result<()>) {
        let Some(InFlight::Watermark(wm)) = self.in_flight.try_remove(token) else {
            return;
        };
        let Some(state) = self.partitions.get_mut(&wm.key) else {
            return;
        };
        state.watermark_token = None;
        let failed = state
            .shared
            .update(|log| log.complete_watermark(wm.ticket, result).is_err());
        if failed && !state.waiters.is_empty() {
            // The next sync attempt answers them with the failure.
            self.want_sync(wm.key);
        }
        self.relist(wm.key);
    }

    /// Answers the waiters of `key` that the durable offset covers (all of them with the error
    /// on failure); queues another sync if some still wait or the log asks for one.
    pub(super) fn answer_waiters(&mut self, key: PartitionKey, result: Result<()>) {
        let Some(state) = self.partitions.get_mut(&key) else {
            return;
        };
        let (offsets, wants_sync, sync_would_advance) = {
            let log = state.shared.log.lock();
            (log.offsets(), log.wants_sync(), log.sync_would_advance())
        };
        let before = state.waiters.len();
        let ok = result.is_ok();
        match result {
            Ok(()) => {
                // Bounded by the waiters; each pass answers one.
                while let Some(waiter) = state.waiters.front() {
                    if waiter.durable_offset > offsets.durable {
                        break;
                    }
                    if let Some(waiter) = state.waiters.pop_front() {
                        waiter.answer.send(Ok(offsets));
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                let mut first = Some(e);
                for waiter in state.waiters.drain(..) {
                    let e = first
                        .take()
                        .unwrap_or_else(|| same_error(&text, &state.shared));
                    waiter.answer.send(Err(e));
                }
            }
        }
        let still_waiting = !state.waiters.is_empty();
        self.waiters_total -= before - state.waiters.len();
        // A failed partition syncs no more (its waiters were all answered). Waiters that no
        // sync can help wait for a roll job (a new segment's name), which answers them.
        if ok && ((still_waiting && sync_would_advance) || wants_sync) {
            self.want_sync(key);
        }
        // A change to the files may have waited for these waiters.
        if before != 0 {
            self.relist(key);
        }
    }
}

/// The error for the second and later waiters of a failed sync (errors are not `Clone`).
fn same_error(text: &str, part: &crate::shared::PartitionShared) -> Error {
    let log = part.log.lock();
    match log.failure() {
        Some(reason) => Error::PartitionFailed(reason.clone()),
        None => Error::io(
            "fdatasync",
            part.dir.clone(),
            io::Error::other(text.to_owned()),
        ),
    }
}
