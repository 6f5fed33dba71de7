//! Sends: located under the partition's lock, handed to the driver as transfers (at most
//! `SendConfig::max_transfers` at once; more wait here, in order), answered when they finish.

use super::Shard;
use crate::error::{Error, Result};
use crate::locate::{Want, locate_range};
use crate::pending::Reply;
use crate::request::Request;
use crate::send::{GateTicket, SendHeader, SendInfo, SendRange};
use crate::shared::{PartitionKey, PartitionShared};
use rill_segment::disk::Disk;
use rill_send::{SendJob, Transfer};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a closing shard waits for cancelled transfers to hand their buffers back.
const SEND_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A transfer in progress: who to answer.
struct SendWaiter {
    key: PartitionKey,
    range: SendRange,
    gate: GateTicket,
    reply: Reply<SendInfo>,
}

/// The shard's sends.
#[derive(Default)]
pub(super) struct Sends {
    /// Transfers started, by token.
    started: HashMap<u64, SendWaiter>,
    next_token: u64,
    /// Sends taken from partitions' queues, waiting for a transfer slot.
    pub(super) deferred: VecDeque<Request>,
}

impl Sends {
    /// Answers every send held, started or waiting, with an error made by `error`.
    pub(super) fn fail_all(self, error: impl Fn() -> Error) {
        for (_, waiter) in self.started {
            drop(waiter.gate);
            waiter.reply.send(Err(error()));
        }
        for request in self.deferred {
            request.fail(error());
        }
    }
}

/// A send's range in a partition's log: its `SendRange`, the segment's duplicated descriptor
/// and position (`None` at the end of the log), and the header bytes.
type Located = (SendRange, Option<(std::os::fd::OwnedFd, u64)>, bytes::Bytes);

impl Shard {
    /// Starts deferred sends while transfer slots are free.
    pub(super) fn start_deferred_sends(&mut self) {
        // Bounded by the deferred list; `start_send` defers again only at the limit.
        while self.driver.sends_in_flight() < self.config.send.max_transfers {
            let Some(request) = self.sends.deferred.pop_front() else {
                break;
            };
            self.start_send(request);
        }
    }

    /// Locates a send's batches, builds its header and hands the transfer to the driver (or
    /// defers it while `max_transfers` are in progress).
    fn start_send(&mut self, request: Request) {
        if self.driver.sends_in_flight() >= self.config.send.max_transfers {
            self.sends.deferred.push_front(request);
            return;
        }
        let Request::Send {
            part,
            offset,
            max_bytes,
            limit,
            strategy,
            socket,
            socket_nonblocking,
            header,
            exact_bytes,
            gate,
            reply,
        } = request
        else {
            return;
        };
        // The gate opens before the answer, so a caller that saw it can send again at once.
        let answer = |gate: GateTicket, reply: Reply<SendInfo>, result| {
            drop(gate);
            reply.send(result);
        };
        if reply.is_abandoned() {
            // Nobody waits for it: never put bytes on the socket.
            self.send_ended(part.key);
            return answer(gate, reply, Err(Error::ShuttingDown));
        }
        let want = Want {
            offset,
            max_bytes,
            limit,
            exact_bytes,
        };
        match locate_send(&part, &self.disk, want, header) {
            Err(e) => {
                self.send_ended(part.key);
                answer(gate, reply, Err(e));
            }
            Ok((range, None, header)) if header.is_empty() => {
                self.send_ended(part.key);
                answer(gate, reply, Ok(send_info(&range, 0)));
            }
            Ok((range, file, header)) => {
                let bytes = header.len() as u64 + range.batch_bytes;
                let strategy = strategy.unwrap_or_else(|| self.config.send.strategy_for(bytes));
                let job = SendJob {
                    socket,
                    socket_nonblocking,
                    position: file.as_ref().map_or(0, |(_, position)| *position),
                    file: file.map(|(fd, _)| fd),
                    len: range.batch_bytes,
                    header,
                    strategy,
                };
                let token = self.sends.next_token;
                self.sends.next_token += 1;
                self.sends.started.insert(
                    token,
                    SendWaiter {
                        key: part.key,
                        range,
                        gate,
                        reply,
                    },
                );
                self.driver.start_send(Transfer::new(token, job));
            }
        }
    }

    /// Answers finished transfers and starts deferred ones. Returns whether any finished.
    pub(super) fn collect_sends(&mut self) -> bool {
        let mut done = std::mem::take(&mut self.finished);
        self.driver.finished_sends(&mut done);
        let any = !done.is_empty();
        for finished in done.drain(..) {
            let Some(waiter) = self.sends.started.remove(&finished.token) else {
                debug_assert!(false, "unknown transfer {}", finished.token);
                continue;
            };
            self.send_ended(waiter.key);
            let result = finished
                .result
                .map(|bytes| send_info(&waiter.range, bytes))
                .map_err(Error::Send);
            drop(waiter.gate);
            waiter.reply.send(result);
        }
        self.finished = done;
        self.start_deferred_sends();
        any
    }

    /// A send of partition `key` ended: a change waiting for it may run.
    fn send_ended(&mut self, key: PartitionKey) {
        let Some(state) = self.partitions.get_mut(&key) else {
            return;
        };
        state.sends_in_flight -= 1;
        if state.sends_in_flight == 0 {
            self.relist(key);
        }
    }

    /// At shutdown: fails deferred sends, cancels transfers and waits (bounded) for the driver
    /// to hand them back.
    pub(super) fn drain_sends(&mut self) {
        for request in self.sends.deferred.drain(..) {
            request.fail(Error::ShuttingDown);
        }
        if self.driver.sends_in_flight() == 0 {
            return;
        }
        self.driver.expire_sends(true);
        let deadline = Instant::now() + SEND_DRAIN_TIMEOUT;
        let mut completions = Vec::new();
        // Bounded by the deadline; each pass sleeps at most 50 ms.
        while self.driver.sends_in_flight() > 0 && Instant::now() < deadline {
            self.collect_sends();
            if self.driver.sends_in_flight() == 0 {
                break;
            }
            if let Err(e) = self
                .driver
                .park(Duration::from_millis(50), &mut completions)
            {
                tracing::warn!(error = %e, "waiting for cancelled transfers");
                break;
            }
        }
        self.collect_sends();
        if self.driver.sends_in_flight() > 0 {
            tracing::warn!(
                transfers = self.driver.sends_in_flight(),
                "transfers still running at shutdown (blocked in a blocking socket); abandoned"
            );
        }
    }
}

fn locate_send(
    part: &PartitionShared,
    disk: &Arc<dyn Disk>,
    want: Want,
    header: SendHeader,
) -> Result<Located> {
    let (range, located) = {
        let log = part.log.lock();
        locate_range(&log, want)?
    };
    let header = header
        .resolve(&range)
        .ok_or_else(|| Error::Config("the send's header builder panicked".into()))?;
    let file = match located {
        None => None,
        Some(r) => {
            let fd = disk.clone_fd(r.file).map_err(|e| {
                Error::io(
                    "send: duplicate the segment descriptor",
                    part.dir.clone(),
                    e,
                )
            })?;
            Some((fd, r.position))
        }
    };
    Ok((range, file, header))
}

fn send_info(range: &SendRange, bytes_sent: u64) -> SendInfo {
    SendInfo {
        bytes_sent,
        batch_bytes: range.batch_bytes,
        next_offset: range.next_offset,
        high_watermark: range.high_watermark,
        log_start_offset: range.log_start_offset,
        log_end_offset: range.log_end_offset,
    }
}
