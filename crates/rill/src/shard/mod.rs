//! A shard: one thread that owns a set of partitions' I/O with one driver, completion-driven.
//!
//! Appends are written on their callers' threads (see [`crate::append`]); a shard does what
//! needs its driver or must be ordered: it group-commits (durable appends and flushes wait for
//! an fdatasync that covers them; the fdatasyncs of every partition that needs one go to the
//! driver together, at most one per partition in flight, and appends go on meanwhile, covered
//! by the next), reads, sends, and changes to the log (truncation, deletion, retention).
//!
//! The loop: take requests from the bounded queue into per-partition queues (a partition's
//! requests keep their order) → serve each partition with work (module `serve`) → start the
//! syncs asked for (module `commit`) → one driver poll: submit what was started, and handle each
//! completion on its own (a read is answered when its bytes arrive, whatever sync is still
//! running) → every `maintenance_interval_ms`, retention → sleep in the driver when idle, until a
//! completion or the doorbell.

mod commit;
mod control;
mod failed;
mod reads;
mod roller;
mod sends;
mod serve;

use crate::config::{Config, DriverChoice};
use crate::error::{Error, Result};
use crate::queue::ShardHandle;
use crate::reply::Reply;
use crate::request::Request;
use crate::shared::{PartitionKey, PartitionShared};
use rill_segment::disk::{Disk, FileId};
use rill_send::Finished;
use rill_uring::{
    ClosedFiles, Completion, DiskDriver, Driver, DriverError, DriverKind, SyscallDriver,
    SyscallOptions, UringDriver, UringOptions,
};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts shard `id` on its own thread, with its driver made there (io_uring rings are
/// single-issuer). Returns once the driver is ready, or why it could not be made.
pub(crate) fn spawn(
    handle: Arc<ShardHandle>,
    disk: Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
    config: Arc<Config>,
    on_disk: bool,
) -> Result<(JoinHandle<()>, DriverKind)> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<DriverKind>>();
    let id = handle.id;
    let thread = std::thread::Builder::new()
        .name(format!("rill-shard-{id}"))
        .spawn(move || {
            let driver = match make_driver(&handle, Arc::clone(&disk), closed, &config, on_disk) {
                Ok(driver) => driver,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let roller = match roller::Roller::spawn(id, Arc::clone(&disk), &handle.doorbell) {
                Ok(roller) => roller,
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::io("spawn roll-job thread", "", e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(driver.kind()));
            Shard::new(handle, driver, roller, disk, config).run();
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
    on_disk: bool,
) -> Result<Box<dyn Driver>> {
    let doorbell = Arc::clone(&handle.doorbell);
    if on_disk {
        // A disk of the caller's has no descriptors to submit I/O on: its own calls run it.
        return Ok(Box::new(DiskDriver::new(disk, doorbell)));
    }
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

/// A partition as its shard keeps it.
struct PartitionState {
    shared: Arc<PartitionShared>,
    /// Requests taken from the queue, in arrival order.
    pending: VecDeque<Request>,
    /// Whether the key is in the shard's `ready` list.
    listed: bool,
    /// The request at the head of `pending` waits for an event of this partition (a sync to
    /// end, or its I/O to drain); the partition is listed again when one comes.
    blocked: bool,
    /// Durable appends and flushes waiting for the durable offset, in offset order.
    waiters: VecDeque<commit::Waiter>,
    /// The token of the sync in flight.
    sync_token: Option<usize>,
    /// The token of the watermark slot's fdatasync in flight.
    watermark_token: Option<usize>,
    /// Whether the key is in the shard's `sync_queue`.
    sync_queued: bool,
    reads_in_flight: usize,
    /// Sends taken from this partition's queue and not yet answered (deferred or in progress).
    sends_in_flight: usize,
}

impl PartitionState {
    /// Whether an operation in flight names one of the partition's files by handle.
    fn files_in_use(&self) -> bool {
        self.reads_in_flight > 0
            || self.sync_token.is_some()
            || self.watermark_token.is_some()
            // A roll job (module `roller`) names the sealed segment's file.
            || self.shared.log.lock().roll_job_out()
    }

    /// Whether `request` (a change to the partition's files) must wait. Reads and syncs name
    /// files by handle, so nothing may close one under them; a truncation would change bytes a
    /// transfer is sending, or cut data a durable waiter waits for; a detach would fail the
    /// waiters. (Transfers hold their own descriptors: deleting files under them is safe.)
    fn must_wait(&self, request: &Request) -> bool {
        let files_in_use = self.files_in_use();
        match request {
            Request::TruncateTo { .. } | Request::StartAt { .. } => {
                files_in_use || self.sends_in_flight > 0 || !self.waiters.is_empty()
            }
            Request::Detach { .. } => files_in_use || !self.waiters.is_empty(),
            _ => files_in_use,
        }
    }
}

/// An operation of the driver in flight, by token.
enum InFlight {
    Sync(commit::SyncInFlight),
    Watermark(commit::WatermarkInFlight),
    Read(reads::PlannedRead),
}

struct Shard {
    handle: Arc<ShardHandle>,
    driver: Box<dyn Driver>,
    roller: roller::Roller,
    disk: Arc<dyn Disk>,
    config: Arc<Config>,
    partitions: HashMap<PartitionKey, PartitionState>,
    /// Partitions with requests to serve, each listed once.
    ready: VecDeque<PartitionKey>,
    /// Partitions whose sync starts at the end of this pass, each listed once.
    sync_queue: Vec<PartitionKey>,
    /// Driver operations in flight, keyed by their token.
    in_flight: Slab<InFlight>,
    completions: Vec<Completion>,
    /// Scratch: the files of a sync being started.
    files: Vec<FileId>,
    /// Requests waiting in partitions' queues.
    pending_total: usize,
    /// Durable waiters of every partition.
    waiters_total: usize,
    inbox: Vec<Request>,
    shutdown: Vec<Reply<()>>,
    /// When maintenance runs next (monotonic).
    next_maintenance: Instant,
    sends: sends::Sends,
    finished: Vec<Finished>,
}

impl Shard {
    fn new(
        handle: Arc<ShardHandle>,
        driver: Box<dyn Driver>,
        roller: roller::Roller,
        disk: Arc<dyn Disk>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            handle,
            driver,
            roller,
            disk,
            next_maintenance: Instant::now()
                + Duration::from_millis(config.maintenance_interval_ms),
            config,
            partitions: HashMap::new(),
            ready: VecDeque::new(),
            sync_queue: Vec::new(),
            in_flight: Slab::with_capacity(256),
            completions: Vec::with_capacity(256),
            files: Vec::with_capacity(8),
            pending_total: 0,
            waiters_total: 0,
            inbox: Vec::new(),
            shutdown: Vec::new(),
            sends: sends::Sends::default(),
            finished: Vec::new(),
        }
    }

    /// Runs passes until the shard closes. A panic in a pass (a bug) is caught: the shard's
    /// partitions fail-stop and the thread answers every request with an error until closed.
    fn run(mut self) {
        loop {
            let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pass()));
            match pass {
                Ok(true) => {}
                Ok(false) => return,
                Err(panic) => return self.fail_safe(&failed::panic_message(&*panic)),
            }
        }
    }

    /// One pass of the loop; false once the shard closed.
    fn pass(&mut self) -> bool {
        #[cfg(feature = "test-hooks")]
        #[allow(clippy::panic, reason = "the test hook's whole point")]
        if self
            .handle
            .panic_next_pass
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected shard panic (test hook)");
        }
        {
            self.take_requests();
            let served = self.serve_ready();
            self.start_syncs();
            let mut completions = std::mem::take(&mut self.completions);
            self.driver.poll(&mut completions);
            let completed = !completions.is_empty();
            self.handle_completions(&mut completions);
            self.completions = completions;
            let rolled = self.collect_roll_jobs();
            let answered = self.collect_sends();
            self.maintain_if_due();
            *self.handle.stats.lock() = self.driver.stats();
            if !self.shutdown.is_empty() && self.drained() {
                self.drain_sends();
                self.close_all();
                return false;
            }
            let idle = !served && !completed && !answered && !rolled;
            if idle && self.ready.is_empty() && self.sync_queue.is_empty() {
                self.sleep();
            }
        }
        true
    }

    /// Whether nothing is left to do before closing: no request queued or waiting, no
    /// operation in flight.
    fn drained(&self) -> bool {
        self.pending_total == 0
            && self.waiters_total == 0
            && self.in_flight.is_empty()
            && self.roller.in_flight == 0
            && self.sync_queue.is_empty()
            && self.handle.is_empty()
    }

    fn sleep(&mut self) {
        let until_maintenance = self
            .next_maintenance
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let timeout =
            until_maintenance.min(Duration::from_millis(self.config.maintenance_interval_ms));
        let doorbell = Arc::clone(&self.handle.doorbell);
        doorbell.prepare_sleep();
        let mut completions = std::mem::take(&mut self.completions);
        // Queued requests that cannot be taken (no room) wait for an operation to end, which
        // wakes the driver.
        if (self.handle.is_empty() || self.room() == 0)
            && !self.roller.has_done()
            && let Err(e) = self.driver.park(timeout, &mut completions)
        {
            tracing::error!(error = %e, "shard cannot sleep on its driver; polling");
            let _ = doorbell.wait(timeout);
        }
        doorbell.end_sleep();
        self.handle_completions(&mut completions);
        self.completions = completions;
    }

    /// How many more requests the shard may take: `queue_depth` in all, durable waiters, reads
    /// and syncs in flight, and transfers in progress or waiting included.
    fn room(&self) -> usize {
        let busy = self.pending_total
            + self.waiters_total
            + self.in_flight.len()
            + self.sends.deferred.len()
            + self.driver.sends_in_flight();
        self.config.queue_depth.saturating_sub(busy)
    }

    /// Moves queued requests into their partitions' queues, at most `room()`.
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
            Request::Attach { shared, reply } => {
                let state = PartitionState {
                    shared: Arc::clone(&shared),
                    pending: VecDeque::new(),
                    listed: false,
                    blocked: false,
                    waiters: VecDeque::new(),
                    sync_token: None,
                    watermark_token: None,
                    sync_queued: false,
                    reads_in_flight: 0,
                    sends_in_flight: 0,
                };
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
                    request.fail(part.unknown());
                    return;
                };
                state.pending.push_back(request);
                self.pending_total += 1;
                if !state.listed && !state.blocked {
                    state.listed = true;
                    self.ready.push_back(part.key);
                }
            }
        }
    }

    /// Lists `key` to be served if it has requests and is not listed or blocked.
    fn relist(&mut self, key: PartitionKey) {
        if let Some(state) = self.partitions.get_mut(&key)
            && !state.pending.is_empty()
            && !state.listed
        {
            state.blocked = false;
            state.listed = true;
            self.ready.push_back(key);
        }
    }

    fn handle_completions(&mut self, completions: &mut Vec<Completion>) {
        for completion in completions.drain(..) {
            match completion {
                Completion::Sync {
                    token,
                    file,
                    result,
                } => self.sync_done(token as usize, file, result),
                Completion::Read { token, result } => self.read_done(token as usize, result),
            }
        }
    }
}
