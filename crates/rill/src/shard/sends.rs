//! Sends: located under the partition's lock, handed to the driver as transfers (at most
//! `SendConfig::max_transfers` at once; more wait here, in order), answered when they finish.
//! A run of [`crate::send_in_order`] is one request: when one of its items ends, the next is
//! queued on its partition here, on the shard, and the run is answered once, after its last.

use super::Shard;
use crate::error::{Error, Result};
use crate::locate::{Want, locate_range};
use crate::release::GateTicket;
use crate::request::Request;
use crate::send_item::{SendInfo, SendItem, SendRange, SendReply};
use crate::shared::PartitionKey;
use rill_segment::disk::Disk;
use rill_send::{SendJob, Transfer};
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a closing shard waits for cancelled transfers to hand their buffers back.
const SEND_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A transfer in progress: who to answer.
struct SendWaiter {
    key: PartitionKey,
    range: SendRange,
    owner: SocketOwner,
}

/// What a send holds of its socket until its item ends: the gate, and for a run with items
/// left, the socket for the next one.
struct SocketOwner {
    gate: GateTicket,
    /// The run's own descriptor while a duplicate of it is in the transfer.
    socket: Option<OwnedFd>,
    socket_nonblocking: bool,
    reply: SendReply,
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
            let SocketOwner { gate, reply, .. } = waiter.owner;
            reply.stop_list();
            drop(gate);
            reply.answer(Err(error()));
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
            item,
            socket,
            socket_nonblocking,
            gate,
            reply,
        } = request
        else {
            return;
        };
        let key = item.part.key;
        let mut owner = SocketOwner {
            gate,
            socket: Some(socket),
            socket_nonblocking,
            reply,
        };
        if owner.reply.is_abandoned() {
            // Nobody waits for it: never put bytes on the socket.
            return self.ended_early(key, owner, Err(Error::ShuttingDown));
        }
        let (strategy, more_follows) = (item.strategy, item.more_follows);
        let (range, file, header) = match locate_send(&self.disk, item) {
            Err(e) => return self.ended_early(key, owner, Err(e)),
            Ok((range, None, header)) if header.is_empty() => {
                return self.ended_early(key, owner, Ok(send_info(&range, 0)));
            }
            Ok(located) => located,
        };
        // A run with items left keeps its descriptor for them; the transfer gets a duplicate.
        let job_socket = match owner.socket.take() {
            Some(socket) if owner.reply.has_more() => match socket.try_clone() {
                Ok(duplicate) => {
                    owner.socket = Some(socket);
                    duplicate
                }
                Err(e) => return self.ended_early(key, owner, Err(Error::Socket(e))),
            },
            Some(socket) => socket,
            None => return self.ended_early(key, owner, Err(Error::ShuttingDown)),
        };
        let bytes = header.len() as u64 + range.batch_bytes;
        let job = SendJob {
            socket: job_socket,
            socket_nonblocking,
            position: file.as_ref().map_or(0, |(_, position)| *position),
            file: file.map(|(fd, _)| fd),
            len: range.batch_bytes,
            header,
            strategy: strategy.unwrap_or_else(|| self.config.send.strategy_for(bytes)),
            more_follows,
        };
        let token = self.sends.next_token;
        self.sends.next_token += 1;
        self.sends
            .started
            .insert(token, SendWaiter { key, range, owner });
        self.driver.start_send(Transfer::new(token, job));
    }

    /// A send ended without a transfer (counted in its partition's `sends_in_flight` since it
    /// was served, as a transfer is until it finishes).
    fn ended_early(&mut self, key: PartitionKey, owner: SocketOwner, result: Result<SendInfo>) {
        self.send_ended(key);
        self.item_ended(owner, result);
    }

    /// An item ended with `result`: a run with items left queues its next one on this shard,
    /// holding on to the socket's gate; otherwise the gate opens and the caller is answered.
    fn item_ended(&mut self, owner: SocketOwner, result: Result<SendInfo>) {
        let SocketOwner {
            gate,
            socket,
            socket_nonblocking,
            reply,
        } = owner;
        // A closing shard ends a run here: its next item would be dropped unanswered.
        let result = match result {
            Ok(_) if reply.has_more() && !self.shutdown.is_empty() => Err(Error::ShuttingDown),
            result => result,
        };
        match (result, reply, socket) {
            (Ok(info), SendReply::Run(mut run), Some(socket)) if !run.rest.is_empty() => {
                run.sent.push(info);
                let Some(item) = run.rest.pop_front() else {
                    return;
                };
                // The item's partition is on this shard (runs are cut where the shard changes).
                self.accept(Request::Send {
                    item,
                    socket,
                    socket_nonblocking,
                    gate,
                    reply: SendReply::Run(run),
                });
            }
            (result, reply, _) => {
                if result.is_err() {
                    reply.stop_list();
                }
                // The gate opens before the answer, so a caller that saw it can send again.
                drop(gate);
                reply.answer(result);
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
            self.item_ended(waiter.owner, result);
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

fn locate_send(disk: &Arc<dyn Disk>, item: SendItem) -> Result<Located> {
    let SendItem {
        part,
        offset,
        max_bytes,
        limit,
        header,
        exact_bytes,
        ..
    } = item;
    let want = Want {
        offset,
        max_bytes,
        limit,
        exact_bytes,
    };
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
