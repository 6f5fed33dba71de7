//! A shard: one thread that owns a set of partitions and one I/O driver.
//!
//! The loop: take requests from the bounded queue into per-partition queues (requests of one
//! partition keep their order) → plan: for each partition with work, put its appends into one
//! round (validation, offsets, rolls), a sync when an append asked for durability or a flush
//! came, and its reads as read operations → run every round and read in one driver batch
//! (group commit) → complete the rounds (offsets advance, futures resolve) and check the read
//! bytes → every `maintenance_interval_ms`, retention and checkpoints → sleep on the doorbell
//! when idle. Control requests (truncate, delete, lookups by time, detach) run between rounds,
//! after the partition's earlier requests.

use crate::config::{Config, DriverChoice};
use crate::error::{Error, Result};
use crate::partition::{PartitionShared, ReadBatches};
use crate::pending::Reply;
use crate::queue::{PartitionKey, Request, ShardHandle};
use crate::send::{GateTicket, SendInfo, SendRange};
use rill_segment::disk::Disk;
use rill_segment::partition::BatchRange;
use rill_segment::plan::Round;
use rill_segment::{AppendInfo, Durability, LogError, Offsets, PartitionLog};
use rill_send::{Finished, SendJob, Transfer};
use rill_uring::{
    ClosedFiles, Driver, DriverError, DriverKind, ReadOp, SyscallDriver, SyscallOptions,
    UringDriver, UringOptions,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a closing shard waits for cancelled transfers to hand their buffers back.
const SEND_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts shard `id` on its own thread, with its driver made there (io_uring rings are
/// single-issuer). Returns once the driver is ready, or why it could not be made.
pub(crate) fn spawn(
    handle: Arc<ShardHandle>,
    disk: Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
    config: Arc<Config>,
) -> Result<(JoinHandle<()>, DriverKind)> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<DriverKind>>();
    let id = handle.id;
    let thread = std::thread::Builder::new()
        .name(format!("rill-shard-{id}"))
        .spawn(move || {
            let driver = match make_driver(&handle, Arc::clone(&disk), closed, &config) {
                Ok(driver) => driver,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(driver.kind()));
            Shard::new(handle, driver, disk, config).run();
        })
        .map_err(|e| Error::io("spawn shard thread", "", e))?;
    match ready_rx.recv() {
        Ok(Ok(kind)) => Ok((thread, kind)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::ShuttingDown)
        }
    }
}

fn make_driver(
    handle: &ShardHandle,
    disk: Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
    config: &Config,
) -> Result<Box<dyn Driver>> {
    let doorbell = Arc::clone(&handle.doorbell);
    let uring_options = UringOptions {
        send: config.send,
        ..config.uring
    };
    let syscall_options = SyscallOptions {
        send: config.send,
        ..config.syscall
    };
    let uring = |disk| UringDriver::new(disk, closed, Arc::clone(&doorbell), uring_options);
    let driver: Box<dyn Driver> = match config.driver {
        DriverChoice::Uring => Box::new(uring(disk)?),
        DriverChoice::Syscall => Box::new(SyscallDriver::new(
            disk,
            Arc::clone(&doorbell),
            syscall_options,
        )?),
        DriverChoice::Auto => match uring(Arc::clone(&disk)) {
            Ok(driver) => Box::new(driver),
            Err(DriverError::Unsupported { what }) => {
                tracing::warn!(%what, "io_uring unavailable; shard uses the syscall driver");
                Box::new(SyscallDriver::new(
                    disk,
                    Arc::clone(&doorbell),
                    syscall_options,
                )?)
            }
            Err(e) => return Err(e.into()),
        },
    };
    Ok(driver)
}

struct PartitionState {
    log: PartitionLog,
    shared: Arc<PartitionShared>,
    pending: VecDeque<Request>,
    /// Whether the key is in the shard's `ready` list.
    listed: bool,
    /// Sends taken from this partition's queue and not yet answered (deferred or in progress).
    sends_in_flight: usize,
    /// A truncation at the head of `pending` waits for `sends_in_flight` to reach zero (it
    /// would change bytes a transfer is sending); the partition is listed again then.
    blocked: bool,
}

impl PartitionState {
    fn publish(&self) {
        *self.shared.offsets.lock() = self.log.offsets();
    }
}

/// One partition's share of a round.
struct Planned {
    key: PartitionKey,
    round: Option<Round>,
    acks: Vec<(Reply<AppendInfo>, AppendInfo)>,
    flushes: Vec<Reply<Offsets>>,
}

/// A read waiting for its bytes.
struct PlannedRead {
    key: PartitionKey,
    range: BatchRange,
    offsets: Offsets,
    high_watermark: i64,
    reply: Reply<ReadBatches>,
}

/// A transfer in progress: who to answer.
struct SendWaiter {
    key: PartitionKey,
    range: SendRange,
    gate: GateTicket,
    reply: Reply<SendInfo>,
}

struct Shard {
    handle: Arc<ShardHandle>,
    driver: Box<dyn Driver>,
    disk: Arc<dyn Disk>,
    config: Arc<Config>,
    /// Transfers started, by token.
    sends: HashMap<u64, SendWaiter>,
    next_send_token: u64,
    /// Sends waiting for a transfer slot (`Config::send.max_transfers` are in progress).
    deferred_sends: VecDeque<Request>,
    finished: Vec<Finished>,
    partitions: HashMap<PartitionKey, PartitionState>,
    /// Partitions with pending requests, each listed once.
    ready: VecDeque<PartitionKey>,
    /// Requests waiting in partitions' queues (bounded by `queue_depth`).
    pending_total: usize,
    inbox: Vec<Request>,
    shutdown: Vec<Reply<()>>,
    next_maintenance_ms: i64,
}

impl Shard {
    fn new(
        handle: Arc<ShardHandle>,
        driver: Box<dyn Driver>,
        disk: Arc<dyn Disk>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            handle,
            driver,
            disk,
            sends: HashMap::new(),
            next_send_token: 0,
            deferred_sends: VecDeque::new(),
            finished: Vec::new(),
            next_maintenance_ms: now_ms() + config.maintenance_interval_ms as i64,
            config,
            partitions: HashMap::new(),
            ready: VecDeque::new(),
            pending_total: 0,
            inbox: Vec::new(),
            shutdown: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            self.take_requests();
            let worked = self.run_round();
            if self.driver.sends_in_flight() > 0 {
                self.driver.progress_sends();
            }
            let answered = self.collect_sends();
            self.maintain_if_due();
            if !self.shutdown.is_empty() && self.pending_total == 0 && self.handle.is_empty() {
                self.drain_sends();
                self.close_all();
                return;
            }
            // Partitions with requests are listed, except those waiting for their transfers
            // (a completion wakes the driver's sleep).
            if !worked && !answered && self.ready.is_empty() {
                self.sleep();
            }
        }
    }

    fn sleep(&mut self) {
        let until_maintenance = (self.next_maintenance_ms - now_ms()).max(1) as u64;
        let timeout =
            Duration::from_millis(until_maintenance.min(self.config.maintenance_interval_ms));
        let doorbell = Arc::clone(&self.handle.doorbell);
        doorbell.prepare_sleep();
        // Queued requests that cannot be taken (no room: transfers hold it) wait for a
        // transfer to end, which wakes the driver.
        if (self.handle.is_empty() || self.room() == 0)
            && let Err(e) = self.driver.park(timeout)
        {
            tracing::error!(error = %e, "shard cannot sleep on its driver; polling");
            let _ = doorbell.wait(timeout);
        }
        doorbell.end_sleep();
    }

    /// How many more requests the shard may take: `queue_depth` in all, transfers in progress
    /// or waiting included.
    fn room(&self) -> usize {
        let busy = self.pending_total + self.deferred_sends.len() + self.driver.sends_in_flight();
        self.config.queue_depth.saturating_sub(busy)
    }

    /// Moves queued requests into their partitions' queues, at most `queue_depth` in all
    /// (transfers in progress or waiting count too).
    fn take_requests(&mut self) {
        let room = self.room();
        let mut inbox = std::mem::take(&mut self.inbox);
        self.handle.drain(&mut inbox, room);
        for request in inbox.drain(..) {
            self.accept(request);
        }
        self.inbox = inbox;
    }

    fn accept(&mut self, request: Request) {
        match request {
            Request::Attach { log, shared, reply } => {
                let state = PartitionState {
                    log: *log,
                    shared: Arc::clone(&shared),
                    pending: VecDeque::new(),
                    listed: false,
                    sends_in_flight: 0,
                    blocked: false,
                };
                state.publish();
                self.partitions.insert(shared.key, state);
                reply.send(Ok(()));
            }
            Request::Shutdown { reply } => {
                self.handle.close();
                self.shutdown.push(reply);
            }
            request => {
                let Some(part) = request.partition().cloned() else {
                    return;
                };
                let Some(state) = self.partitions.get_mut(&part.key) else {
                    fail_request(request, unknown(&part));
                    return;
                };
                state.pending.push_back(request);
                self.pending_total += 1;
                if !state.listed {
                    state.listed = true;
                    self.ready.push_back(part.key);
                }
            }
        }
    }

    /// Plans, runs and completes one round over every partition with work. Returns whether
    /// anything was done.
    fn run_round(&mut self) -> bool {
        let now = now_ms();
        let mut planned = Vec::new();
        let mut reads = Vec::new();
        let mut read_ops = Vec::new();
        let mut worked = false;
        let mut visited = Vec::new();
        let mut sends = Vec::new();
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(state) = self.partitions.get_mut(&key) else {
                continue;
            };
            state.listed = false;
            let before = state.pending.len();
            let plan = plan_partition(
                state,
                &self.config,
                now,
                (&mut reads, &mut read_ops),
                &mut sends,
            );
            let after = self.partitions.get(&key).map_or(0, |s| s.pending.len());
            self.pending_total -= before - after;
            worked |= before != after;
            if let Some(plan) = plan {
                planned.push(plan);
            }
            visited.push(key);
            if let Some(state) = self.partitions.get_mut(&key)
                && !state.pending.is_empty()
                && !state.listed
                && !state.blocked
            {
                state.listed = true;
                self.ready.push_back(key);
            }
        }
        // Started before the batch runs, so their first entries go in its submission.
        for request in sends {
            self.start_send(request);
        }
        if planned.is_empty() && read_ops.is_empty() {
            for key in visited {
                self.detach_if_asked(key);
            }
            return worked;
        }
        {
            let mut rounds: Vec<&mut Round> = planned
                .iter_mut()
                .filter_map(|p| p.round.as_mut())
                .collect();
            self.driver.run(&mut rounds, &mut read_ops);
        }
        let now = now_ms();
        for plan in planned {
            self.complete(plan, now);
        }
        for (read, op) in reads.into_iter().zip(read_ops) {
            self.answer_read(read, op);
        }
        *self.handle.stats.lock() = self.driver.stats();
        // Detaching closes files: only after this round's operations on them finished.
        for key in visited {
            self.detach_if_asked(key);
        }
        true
    }

    fn complete(&mut self, plan: Planned, now: i64) {
        let Some(state) = self.partitions.get_mut(&plan.key) else {
            return;
        };
        let result = match plan.round {
            Some(round) => state.log.complete_round(round, now).map(|_| ()),
            None => Ok(()),
        };
        state.publish();
        match result {
            Ok(()) => {
                for (reply, info) in plan.acks {
                    reply.send(Ok(info));
                }
                let offsets = state.log.offsets();
                for reply in plan.flushes {
                    reply.send(Ok(offsets));
                }
            }
            Err(e) => {
                let error = shared_error(&state.log, &e);
                for (reply, _) in plan.acks {
                    reply.send(Err(error()));
                }
                for reply in plan.flushes {
                    reply.send(Err(error()));
                }
            }
        }
    }

    fn answer_read(&mut self, read: PlannedRead, op: ReadOp) {
        let Some(state) = self.partitions.get(&read.key) else {
            read.reply.send(Err(Error::ShuttingDown));
            return;
        };
        let result = match op.result {
            Some(Ok(buf)) => match state.log.check_read(&read.range, &buf) {
                Ok(()) => Ok(ReadBatches {
                    buf: Some(buf),
                    next_offset: read.range.next_offset,
                    high_watermark: read.high_watermark,
                    log_end_offset: read.offsets.log_end,
                    log_start_offset: read.offsets.log_start,
                }),
                Err(e) => Err(e.into()),
            },
            Some(Err(e)) => Err(Error::io("read", state.log.dir(), e)),
            None => Err(Error::io(
                "read",
                state.log.dir(),
                std::io::Error::other("the driver did not run the read"),
            )),
        };
        read.reply.send(result);
    }

    /// Locates a send's batches, builds its header and hands the transfer to the driver (or
    /// defers it while `max_transfers` are in progress).
    fn start_send(&mut self, request: Request) {
        if self.driver.sends_in_flight() >= self.config.send.max_transfers {
            self.deferred_sends.push_back(request);
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
        let Some(state) = self.partitions.get_mut(&part.key) else {
            return answer(gate, reply, Err(unknown(&part)));
        };
        let want = Want {
            offset,
            max_bytes,
            limit,
            exact_bytes,
        };
        match locate_send(state, &self.disk, want, header) {
            Err(e) => {
                self.send_ended(part.key);
                answer(gate, reply, Err(e));
            }
            Ok((range, None, header)) if header.is_empty() => {
                self.send_ended(part.key);
                answer(gate, reply, Ok(send_info(&range, 0)));
            }
            Ok((range, file, header)) => {
                let job = SendJob {
                    socket,
                    socket_nonblocking,
                    position: file.as_ref().map_or(0, |(_, position)| *position),
                    file: file.map(|(fd, _)| fd),
                    len: range.batch_bytes,
                    header,
                    strategy,
                };
                let token = self.next_send_token;
                self.next_send_token += 1;
                self.sends.insert(
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
    fn collect_sends(&mut self) -> bool {
        let mut done = std::mem::take(&mut self.finished);
        self.driver.finished_sends(&mut done);
        let any = !done.is_empty();
        for finished in done.drain(..) {
            let Some(waiter) = self.sends.remove(&finished.token) else {
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
        // Bounded by the deferred list; `start_send` defers again only at the limit.
        while self.driver.sends_in_flight() < self.config.send.max_transfers {
            let Some(request) = self.deferred_sends.pop_front() else {
                break;
            };
            self.start_send(request);
        }
        any
    }

    /// A transfer of partition `key` ended: a truncation waiting for it may run.
    fn send_ended(&mut self, key: PartitionKey) {
        let Some(state) = self.partitions.get_mut(&key) else {
            return;
        };
        state.sends_in_flight -= 1;
        if state.sends_in_flight == 0 && state.blocked {
            state.blocked = false;
            if !state.pending.is_empty() && !state.listed {
                state.listed = true;
                self.ready.push_back(key);
            }
        }
    }

    /// At shutdown: fails deferred sends, cancels transfers and waits (bounded) for the driver
    /// to hand them back.
    fn drain_sends(&mut self) {
        for request in self.deferred_sends.drain(..) {
            fail_request(request, Error::ShuttingDown);
        }
        if self.driver.sends_in_flight() == 0 {
            return;
        }
        self.driver.expire_sends(true);
        let deadline = Instant::now() + SEND_DRAIN_TIMEOUT;
        // Bounded by the deadline; each pass sleeps at most 50 ms.
        while self.driver.sends_in_flight() > 0 && Instant::now() < deadline {
            self.collect_sends();
            if self.driver.sends_in_flight() == 0 {
                break;
            }
            if let Err(e) = self.driver.park(Duration::from_millis(50)) {
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

    /// Runs a pending `Detach` at the head of the partition's queue.
    fn detach_if_asked(&mut self, key: PartitionKey) {
        let asked = self
            .partitions
            .get(&key)
            .and_then(|s| s.pending.front())
            .is_some_and(|r| matches!(r, Request::Detach { .. }));
        if !asked {
            return;
        }
        let Some(mut state) = self.partitions.remove(&key) else {
            return;
        };
        self.pending_total -= state.pending.len();
        if let Err(e) = state.log.close() {
            tracing::warn!(error = %e, dir = %state.log.dir().display(), "closing a detached partition");
        }
        for request in state.pending.drain(..) {
            match request {
                Request::Detach { reply, .. } => reply.send(Ok(())),
                other => fail_request(other, unknown(&state.shared)),
            }
        }
    }

    fn maintain_if_due(&mut self) {
        let now = now_ms();
        if now < self.next_maintenance_ms {
            return;
        }
        self.next_maintenance_ms = now + self.config.maintenance_interval_ms as i64;
        self.driver.expire_sends(false);
        for state in self.partitions.values_mut() {
            if state.log.failure().is_some() {
                continue;
            }
            if let Err(e) = state.log.apply_retention(now) {
                tracing::warn!(error = %e, dir = %state.log.dir().display(), "retention");
            }
            if let Err(e) = state.log.maybe_checkpoint(now) {
                tracing::warn!(error = %e, dir = %state.log.dir().display(), "checkpoint");
            }
            state.publish();
        }
    }

    fn close_all(&mut self) {
        let mut first_error = None;
        for state in self.partitions.values_mut() {
            if let Err(e) = state.log.close() {
                tracing::warn!(error = %e, dir = %state.log.dir().display(), "close");
                first_error.get_or_insert(e);
            }
            state.publish();
        }
        let stats = self.driver.stats();
        tracing::debug!(shard = self.handle.id, ?stats, "shard stopped");
        let mut first_error = first_error.map(Error::from);
        for reply in self.shutdown.drain(..) {
            reply.send(first_error.take().map_or(Ok(()), Err));
        }
    }
}

/// Plans one partition's pending requests into a round and reads; runs control requests
/// that come before any append. Stops at a control request once a round was begun (it runs
/// after the round completes), when the unsynced bound needs a sync first, or at
/// `max_round_bytes`.
fn plan_partition(
    state: &mut PartitionState,
    config: &Config,
    now: i64,
    (reads, read_ops): (&mut Vec<PlannedRead>, &mut Vec<ReadOp>),
    sends: &mut Vec<Request>,
) -> Option<Planned> {
    let mut plan = Planned {
        key: state.shared.key,
        round: None,
        acks: Vec::new(),
        flushes: Vec::new(),
    };
    let mut need_sync = false;
    let mut round_bytes = 0usize;
    let reads_before = reads.len();
    // Bounded: each pass removes one request or stops.
    while let Some(front) = state.pending.front() {
        match front {
            Request::Append { batch, .. } => {
                let len = batch.len();
                if round_bytes > 0 && round_bytes + len > config.max_round_bytes {
                    break;
                }
                if !ensure_round(state, &mut plan) {
                    continue;
                }
                if state.log.must_sync_before(len) {
                    need_sync = true;
                    break;
                }
                let Some(Request::Append {
                    batch,
                    durability,
                    reply,
                    ..
                }) = state.pending.pop_front()
                else {
                    break;
                };
                round_bytes += len;
                let Some(round) = plan.round.as_mut() else {
                    break;
                };
                match state.log.plan_append(round, batch, now) {
                    Ok(info) => {
                        need_sync |= durability == Durability::Durable;
                        plan.acks.push((reply, info));
                    }
                    Err(e) => reply.send(Err(e.into())),
                }
            }
            Request::Read { .. } => {
                if let Some(Request::Read {
                    offset,
                    max_bytes,
                    limit,
                    reply,
                    ..
                }) = state.pending.pop_front()
                {
                    plan_read(state, offset, max_bytes, limit, reply, reads, read_ops);
                }
            }
            Request::Flush { .. } => {
                if !ensure_round(state, &mut plan) {
                    continue;
                }
                if let Some(Request::Flush { reply, .. }) = state.pending.pop_front() {
                    need_sync = true;
                    plan.flushes.push(reply);
                }
            }
            Request::Send { .. } => {
                if let Some(request) = state.pending.pop_front() {
                    // Counted from now until answered, so a truncation behind it waits.
                    state.sends_in_flight += 1;
                    sends.push(request);
                }
            }
            Request::Detach { .. } => break,
            _ => {
                // Control requests change files: they wait for this partition's planned round
                // and reads to finish.
                if plan.round.is_some() || reads.len() > reads_before {
                    break;
                }
                // A truncation would change bytes a transfer is sending (a deletion only
                // unlinks files, which the transfers hold open).
                if matches!(front, Request::TruncateTo { .. }) && state.sends_in_flight > 0 {
                    state.blocked = true;
                    break;
                }
                if let Some(request) = state.pending.pop_front() {
                    run_control(state, request, now);
                }
            }
        }
    }
    if need_sync && let Some(round) = plan.round.as_mut() {
        // On error (a failed partition) the round's completion reports the failure.
        let _ = state.log.plan_sync(round);
    }
    if plan.round.is_none() && plan.acks.is_empty() && plan.flushes.is_empty() {
        return None;
    }
    Some(plan)
}

/// Begins the partition's round if needed. On failure, answers the request at the head of
/// the queue with the error and returns false.
fn ensure_round(state: &mut PartitionState, plan: &mut Planned) -> bool {
    if plan.round.is_some() {
        return true;
    }
    match state.log.begin_round() {
        Ok(round) => {
            plan.round = Some(round);
            true
        }
        Err(e) => {
            if let Some(request) = state.pending.pop_front() {
                fail_request(request, shared_error(&state.log, &e)());
            }
            false
        }
    }
}

fn plan_read(
    state: &PartitionState,
    offset: i64,
    max_bytes: u64,
    limit: rill_segment::partition::ReadLimit,
    reply: Reply<ReadBatches>,
    reads: &mut Vec<PlannedRead>,
    read_ops: &mut Vec<ReadOp>,
) {
    let offsets = state.log.offsets();
    match state.log.locate(offset, max_bytes, limit) {
        Ok(Some(range)) => {
            read_ops.push(ReadOp::new(range.file, range.position, range.len as usize));
            reads.push(PlannedRead {
                key: state.shared.key,
                range,
                offsets,
                high_watermark: offsets.durable,
                reply,
            });
        }
        Ok(None) => reply.send(Ok(ReadBatches {
            buf: None,
            next_offset: offset,
            high_watermark: offsets.durable,
            log_end_offset: offsets.log_end,
            log_start_offset: offsets.log_start,
        })),
        Err(e) => reply.send(Err(locate_error(&state.log, e))),
    }
}

fn run_control(state: &mut PartitionState, request: Request, now: i64) {
    // Offsets are published before the answer, so a caller that sees the answer sees them.
    match request {
        Request::OffsetForTimestamp {
            timestamp_ms,
            reply,
            ..
        } => reply.send(
            state
                .log
                .offset_for_timestamp(timestamp_ms)
                .map_err(Error::from),
        ),
        Request::Locate {
            offset,
            max_bytes,
            limit,
            reply,
            ..
        } => {
            let want = Want {
                offset,
                max_bytes,
                limit,
                exact_bytes: None,
            };
            reply.send(locate_range(state, want).map(|(range, _)| range));
        }
        Request::TruncateTo { offset, reply, .. } => {
            let result = state.log.truncate_to(offset, now).map_err(Error::from);
            state.publish();
            reply.send(result);
        }
        Request::DeleteBefore { offset, reply, .. } => {
            let result = state
                .log
                .delete_before(offset, now)
                .map(|outcome| outcome.log_start_offset)
                .map_err(Error::from);
            state.publish();
            reply.send(result);
        }
        other => fail_request(other, Error::Config("not a control request".into())),
    }
}

/// A send's range in `state`'s log: its `SendRange`, the segment's duplicated descriptor and
/// position (`None` at the end of the log), and the header bytes.
type Located = (SendRange, Option<(std::os::fd::OwnedFd, u64)>, bytes::Bytes);

/// What a send or locate asks for.
#[derive(Debug, Clone, Copy)]
struct Want {
    offset: i64,
    max_bytes: u64,
    limit: rill_segment::partition::ReadLimit,
    /// For a send: the exact batch bytes expected (see `SendOptions::exact_bytes`).
    exact_bytes: Option<u64>,
}

/// The range `want` covers now, and the batches' place in their segment.
fn locate_range(
    state: &PartitionState,
    want: Want,
) -> Result<(SendRange, Option<rill_segment::partition::BatchRange>)> {
    let offsets = state.log.offsets();
    let located = state
        .log
        .locate(want.offset, want.max_bytes, want.limit)
        .map_err(|e| locate_error(&state.log, e))?;
    let range = SendRange {
        offset: want.offset,
        batch_bytes: located.as_ref().map_or(0, |r| r.len),
        next_offset: located.as_ref().map_or(want.offset, |r| r.next_offset),
        high_watermark: offsets.durable,
        log_start_offset: offsets.log_start,
        log_end_offset: offsets.log_end,
    };
    match want.exact_bytes {
        Some(expected) if expected != range.batch_bytes => Err(Error::RangeChanged {
            expected,
            found: range.batch_bytes,
        }),
        _ => Ok((range, located)),
    }
}

fn locate_send(
    state: &PartitionState,
    disk: &Arc<dyn Disk>,
    want: Want,
    header: crate::send::SendHeader,
) -> Result<Located> {
    let (range, located) = locate_range(state, want)?;
    let header = header
        .resolve(&range)
        .ok_or_else(|| Error::Config("the send's header builder panicked".into()))?;
    let file = match located {
        None => None,
        Some(r) => {
            let fd = disk.clone_fd(r.file).map_err(|e| {
                Error::io("send: duplicate the segment descriptor", state.log.dir(), e)
            })?;
            Some((fd, r.position))
        }
    };
    Ok((range, file, header))
}

/// The error of a failed `locate`: on a failed partition (which serves only durable data), an
/// offset beyond the durable end is reported as the failure, not as out of range.
fn locate_error(log: &PartitionLog, e: LogError) -> Error {
    match (log.failure(), &e) {
        (Some(reason), LogError::OffsetOutOfRange { offset, .. })
            if *offset > log.offsets().durable =>
        {
            Error::PartitionFailed(reason.clone())
        }
        _ => e.into(),
    }
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

/// An error for each of several callers, derived from one `LogError` (which is not `Clone`).
fn shared_error(log: &PartitionLog, e: &LogError) -> impl Fn() -> Error + use<> {
    let failure = log.failure().cloned();
    let text = e.to_string();
    let dir = log.dir().to_path_buf();
    let closed = matches!(e, LogError::Config(_));
    move || match (&failure, closed) {
        (Some(reason), _) => Error::PartitionFailed(reason.clone()),
        (None, true) => Error::ShuttingDown,
        (None, false) => Error::io("append", dir.clone(), std::io::Error::other(text.clone())),
    }
}

fn unknown(part: &PartitionShared) -> Error {
    Error::UnknownPartition {
        topic: part.topic.to_string(),
        partition: part.index,
    }
}

/// Answers any request with `error`.
fn fail_request(request: Request, e: Error) {
    match request {
        Request::Append { reply, .. } => reply.send(Err(e)),
        Request::Read { reply, .. } => reply.send(Err(e)),
        Request::Flush { reply, .. } => reply.send(Err(e)),
        Request::Send { reply, gate, .. } => {
            drop(gate);
            reply.send(Err(e));
        }
        Request::OffsetForTimestamp { reply, .. } => reply.send(Err(e)),
        Request::Locate { reply, .. } => reply.send(Err(e)),
        Request::TruncateTo { reply, .. } | Request::DeleteBefore { reply, .. } => {
            reply.send(Err(e));
        }
        Request::Detach { reply, .. }
        | Request::Shutdown { reply }
        | Request::Attach { reply, .. } => reply.send(Err(e)),
    }
}
