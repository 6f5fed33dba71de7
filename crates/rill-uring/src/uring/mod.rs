//! The io_uring driver: a shard's fdatasyncs, reads and transfers, each completing on its own.
//!
//! Operations are pushed into the submission queue as the shard starts them and go to the
//! kernel together at the next [`Driver::poll`] or [`Driver::park`]: one `io_uring_enter`
//! carries the fdatasyncs of every partition that asked for one since the last pass (group
//! commit across partitions), and reaps whatever completed, with no barrier: a read is handed
//! back as soon as its own completion arrives, whatever fdatasync is still running. Appends do
//! not come here: they are written into the page cache on the caller's thread (on ext4 an
//! io_uring buffered write is punted to an io-wq worker, a context switch per append).
//!
//! Ownership: each in-flight operation lives in a [`Slab`] entry keyed by its `user_data` and
//! owns what the kernel may write (a read's buffer) until its completion arrives. If the ring
//! itself breaks, every operation is handed back failed and its buffers are leaked rather than
//! freed under the kernel.

use crate::buffers::{BufferPool, BufferPoolConfig};
use crate::doorbell::Doorbell;
use crate::driver::{Completion, Driver, DriverKind, DriverStats, ReadOp};
use crate::error::DriverError;
use crate::files::{ClosedFiles, FileTable};
use crate::ring::{self, RingConfig, RingFeatures};
use io_uring::{IoUring, opcode, squeue, types};
use rill_segment::disk::{Disk, FileId};
use rill_send::{Finished, SendConfig, Transfer};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod send;
mod storage;

/// Settings of a [`UringDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UringOptions {
    /// Ring sizes and limits.
    pub ring: RingConfig,
    /// The read-buffer pool.
    pub buffers: BufferPoolConfig,
    /// The send path.
    pub send: SendConfig,
}

/// Transient `io_uring_enter` errors in a row before the ring is declared broken.
const MAX_ENTER_RETRIES: u32 = 1024;
/// `user_data` of the doorbell poll (slab keys are far smaller).
const DOORBELL: u64 = u64::MAX;

/// Whether the fallback to unregistered read buffers was already reported.
static WARNED_UNREGISTERED: AtomicBool = AtomicBool::new(false);

/// How an entry names its file: a registered slot, or the file itself (its descriptor held open
/// by the operation until the completion).
enum Target {
    Fixed(u32),
    Fd(Arc<std::fs::File>),
}

impl Target {
    /// What the operation must hold until its completion.
    fn pin(&self) -> Option<Arc<std::fs::File>> {
        match self {
            Target::Fixed(_) => None,
            Target::Fd(file) => Some(Arc::clone(file)),
        }
    }
}

/// The io_uring driver. See the module documentation.
///
/// The ring is set up with `SINGLE_ISSUER` where available: only the thread that created it
/// may submit. So the driver is neither `Send` nor `Sync`: create it on the thread that will
/// use it, and it stays there.
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<rill_uring::UringDriver>();
/// ```
pub struct UringDriver {
    ring: IoUring,
    features: RingFeatures,
    disk: Arc<dyn Disk>,
    closed: Arc<ClosedFiles>,
    files: FileTable,
    files_registered: bool,
    pool: BufferPool,
    doorbell: Arc<Doorbell>,
    doorbell_armed: bool,
    ops: Slab<storage::Op>,
    /// Completions not yet handed to the shard.
    done: Vec<Completion>,
    /// fdatasyncs started since the last pass, and whether each is a background one (see
    /// `dispatch_syncs`).
    queued_syncs: Vec<crate::driver::QueuedSync>,
    /// Background fdatasyncs in the slab.
    background_syncs: usize,
    /// Chains of entries waiting for room in the SQ (or under the in-flight bound).
    backlog: VecDeque<Vec<squeue::Entry>>,
    /// Entries pushed and not yet completed.
    in_flight: usize,
    /// Storage entries pushed since the last `io_uring_enter`.
    unsubmitted: usize,
    cqes: Vec<(u64, i32)>,
    /// Transient `io_uring_enter` errors in a row.
    enter_errors: u32,
    broken: Option<io::ErrorKind>,
    stats: DriverStats,
    sends: send::RingSends,
    /// Keeps the driver on its creating thread (`SINGLE_ISSUER`).
    _single_issuer: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("features", &self.features)
            .field("registered_files", &self.files.len())
            .field("pool", &self.pool)
            .field("in_flight", &self.in_flight)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl UringDriver {
    /// Sets up a ring on the calling thread for files of `disk`. Handles reported to `closed`
    /// (see [`crate::NotifyingDisk`]) are dropped from the registered-file table.
    pub fn new(
        disk: Arc<dyn Disk>,
        closed: Arc<ClosedFiles>,
        doorbell: Arc<Doorbell>,
        options: UringOptions,
    ) -> Result<Self, DriverError> {
        options.send.validate().map_err(DriverError::Config)?;
        let (ring, features) = ring::build(&options.ring)?;
        let submitter = ring.submitter();
        let mut workers = options.ring.iowq_max_workers;
        if workers != [0, 0] {
            submitter
                .register_iowq_max_workers(&mut workers)
                .map_err(|e| DriverError::setup("io_uring_register(IOWQ_MAX_WORKERS)", e))?;
        }
        let files_registered = options.ring.registered_files > 0
            && submitter
                .register_files_sparse(options.ring.registered_files)
                .is_ok();
        let pool = BufferPool::new(options.buffers)?;
        let iovec = pool.arena_iovec();
        // SAFETY: the iovec describes the pool's anonymous mapping, which lives as long as the
        // pool; the driver keeps a clone of the pool (and every `ReadBuf` keeps the mapping
        // alive), so the registered memory outlives the ring's use of it.
        match unsafe { submitter.register_buffers(&[iovec]) } {
            Ok(()) => pool.mark_registered(),
            Err(e) => {
                if !WARNED_UNREGISTERED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        bytes = iovec.iov_len,
                        "io_uring refused to register the read buffers (RLIMIT_MEMLOCK?); \
                         reads use ordinary buffers"
                    );
                }
            }
        }
        let sends = send::RingSends::new(options.send, features.cq_entries as usize, &doorbell);
        Ok(Self {
            ring,
            features,
            disk,
            closed,
            files: FileTable::new(options.ring.registered_files),
            files_registered,
            pool,
            doorbell,
            doorbell_armed: false,
            ops: Slab::with_capacity(256),
            done: Vec::with_capacity(256),
            queued_syncs: Vec::with_capacity(64),
            background_syncs: 0,
            backlog: VecDeque::new(),
            in_flight: 0,
            unsubmitted: 0,
            cqes: Vec::with_capacity(256),
            enter_errors: 0,
            broken: None,
            stats: DriverStats::default(),
            sends,
            _single_issuer: std::marker::PhantomData,
        })
    }

    /// What the ring was set up with.
    pub fn features(&self) -> RingFeatures {
        self.features
    }

    /// The read-buffer pool (registered unless the kernel refused).
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Drops registered-file slots of handles closed since the last call.
    fn release_closed_files(&mut self) {
        for file in self.closed.take() {
            if let Some(slot) = self.files.remove(file) {
                self.clear_slot(slot);
            }
        }
    }

    /// Drops the ring's reference to a released slot's file (a deleted segment's space is
    /// freed only when nothing holds the file).
    fn clear_slot(&mut self, slot: u32) {
        // A failed update leaves the old file referenced by the slot until it is reused;
        // nothing reads through a slot that is not in the table.
        let _ = self.ring.submitter().register_files_update(slot, &[-1]);
    }

    /// How to name `file` in an SQE, for one operation: its registered slot (registering it on
    /// first use, replacing the least recently used idle slot when the table is full), counted
    /// in until [`UringDriver::end_target`]; or, when no slot is free of operations, the file
    /// itself, whose descriptor the operation holds open until its completion (a descriptor
    /// number closed under an entry could be reused for another file before io_uring resolves
    /// it, which for io-wq work is when a worker picks the entry up).
    fn target(&mut self, file: FileId) -> io::Result<Target> {
        if let Some(slot) = self.files.begin(file) {
            return Ok(Target::Fixed(slot));
        }
        let shared = self.disk.shared_file(file)?;
        if self.files_registered
            && let Some((slot, _evicted)) = self.files.insert(file)
        {
            // Replacing the slot drops the ring's reference to the evicted file; no operation
            // uses that slot (the table only evicts idle ones).
            if self
                .ring
                .submitter()
                .register_files_update(slot, &[shared.as_raw_fd()])
                .is_ok()
            {
                return Ok(Target::Fixed(slot));
            }
            self.files.remove(file);
        }
        Ok(Target::Fd(shared))
    }

    /// Ends an operation's use of its target (see [`UringDriver::target`]).
    fn end_target(&mut self, file: FileId, pinned: bool) {
        if !pinned && let Some(slot) = self.files.end(file) {
            self.clear_slot(slot);
        }
    }

    /// Queues a chain of entries (linked by the caller's flags) for submission.
    fn push_chain(&mut self, chain: &[squeue::Entry]) {
        if self.backlog.is_empty() && self.fits(chain.len()) {
            self.push_now(chain);
        } else {
            self.stats.sq_full += 1;
            self.backlog.push_back(chain.to_vec());
        }
    }

    fn fits(&mut self, entries: usize) -> bool {
        let cq_room = self.features.cq_entries as usize;
        // One CQ slot stays free for the doorbell poll.
        let free_sq = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        free_sq >= entries && self.in_flight + entries < cq_room
    }

    fn push_now(&mut self, chain: &[squeue::Entry]) {
        let mut sq = self.ring.submission();
        for entry in chain {
            // Buffers: read buffers; for sends, header bytes, staging buffer and descriptors (see the module documentation and `send`).
            // SAFETY: each entry's buffers are owned by its slab entry until its completion
            // arrives; `fits` checked the room, so the push cannot fail.
            let pushed = unsafe { sq.push(entry) };
            debug_assert!(pushed.is_ok(), "fits() checked SQ room");
            if is_send(entry.get_user_data()) {
                self.sends.entries_in_flight += 1;
            }
        }
        drop(sq);
        self.in_flight += chain.len();
    }

    fn flush_backlog(&mut self) {
        // Bounded by the backlog's length.
        while let Some(len) = self.backlog.front().map(Vec::len) {
            if !self.fits(len) {
                break;
            }
            if let Some(chain) = self.backlog.pop_front() {
                self.push_now(&chain);
            }
        }
    }

    /// Queues a storage operation's entry.
    fn push_storage(&mut self, entry: squeue::Entry) {
        self.unsubmitted += 1;
        self.push_chain(&[entry]);
    }

    /// Books an `io_uring_enter` that submits what is queued: a batch if storage entries are
    /// among it, and nothing left unsubmitted.
    fn count_submission(&mut self) {
        if self.unsubmitted > 0 {
            self.stats.batches += 1;
            self.unsubmitted = 0;
        }
        self.sends.copy_bytes_unsubmitted = 0;
        self.stats.submit_calls += 1;
    }

    /// Submits what is queued now, and runs the deferred task work it creates (a read's linked
    /// send) in the same enter: `GETEVENTS` with nothing to wait for. Completions stay in the
    /// completion queue for the next `enter` to reap (`fits` keeps room for them). An error
    /// leaves the entries queued, and the next `enter` meets it again and handles it.
    fn submit_now(&mut self) {
        if self.broken.is_some() {
            return;
        }
        let queued = self.ring.submission().len();
        if queued == 0 {
            self.sends.copy_bytes_unsubmitted = 0;
            return;
        }
        self.count_submission();
        // SAFETY: no argument pointer is passed (`None`), and every queued entry's buffers are
        // owned by its slab entry until its completion arrives (see `push_now`).
        let _ = unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                queued as u32,
                0,
                io_uring::EnterFlags::GETEVENTS.bits(),
                None,
            )
        };
    }

    /// Submits what is queued and reaps what completed, waiting at most `timeout` (zero: not
    /// at all) for a first completion. Under `DEFER_TASKRUN` completions are posted only in an
    /// enter with `GETEVENTS`: a waiting enter always carries it, one that does not wait carries
    /// it when the kernel flags deferred completions (`TASKRUN_FLAG`).
    fn enter(&mut self, timeout: Duration) -> io::Result<()> {
        if self.broken.is_some() {
            return Ok(());
        }
        self.flush_backlog();
        self.count_submission();
        let entered = if timeout.is_zero() {
            // `min_complete` 0: the kernel runs deferred completions and returns at once. A
            // wait for one completion with a zero timeout would arm an already expired timer
            // and schedule out and back in: measured here, the shard threads' CPU per durable
            // append fell from about 35 µs to 12 µs without it (16 partitions, 100-record
            // batches).
            self.ring.submitter().submit()
        } else {
            let ts = types::Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos());
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match entered {
            Ok(_) => self.enter_errors = 0,
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => self.enter_errors = 0,
            Err(e) if is_transient(&e) && self.enter_errors < MAX_ENTER_RETRIES => {
                // EBUSY: completions must be reaped first, which the reap below does.
                self.enter_errors += 1;
            }
            Err(e) => {
                tracing::error!(error = %e, "io_uring_enter failed; the driver stops");
                self.broken = Some(e.kind());
                self.reap();
                self.storage_fail_broken();
                self.send_fail_broken();
                return Err(e);
            }
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        self.in_flight -= cqes.len().min(self.in_flight);
        for &(user_data, res) in &cqes {
            if user_data == DOORBELL {
                self.doorbell_armed = false;
                self.doorbell.consume();
                self.stats.wakeups += 1;
                continue;
            }
            if is_send(user_data) {
                self.sends.entries_in_flight -= 1;
                self.send_complete(user_data, res);
                continue;
            }
            self.storage_complete(user_data as usize, res);
        }
        self.cqes = cqes;
    }

    /// Whether anything is queued or in flight for the kernel (the doorbell poll aside).
    fn has_kernel_work(&mut self) -> bool {
        self.in_flight > usize::from(self.doorbell_armed)
            || !self.backlog.is_empty()
            || !self.ring.submission().is_empty()
    }
}

/// Whether `user_data` names a send entry (the doorbell's `u64::MAX` has every bit set).
fn is_send(user_data: u64) -> bool {
    user_data != DOORBELL && user_data & send::SEND_TAG != 0
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

impl Driver for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Uring
    }

    fn start_sync(&mut self, token: u64, file: FileId) {
        self.queued_syncs.push((token, file, false));
    }

    fn start_background_sync(&mut self, token: u64, file: FileId) {
        self.queued_syncs.push((token, file, true));
    }

    fn start_read(&mut self, token: u64, read: ReadOp) {
        self.read_start(token, read);
    }

    fn poll(&mut self, out: &mut Vec<Completion>) {
        self.release_closed_files();
        self.send_run_ready();
        self.dispatch_syncs();
        if self.has_kernel_work() {
            // An error broke the ring: its operations are handed back failed.
            let _ = self.enter(Duration::ZERO);
        }
        out.append(&mut self.done);
    }

    fn park(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        if let Some(kind) = self.broken {
            out.append(&mut self.done);
            return Err(io::Error::new(kind, "the io_uring driver broke"));
        }
        self.release_closed_files();
        self.send_run_ready();
        self.dispatch_syncs();
        self.flush_backlog();
        let timeout = if !self.done.is_empty() || self.sends.has_work() {
            // Completions or finished transfers wait for the shard: only submit and reap.
            Duration::ZERO
        } else {
            timeout
        };
        if !timeout.is_zero() && !self.doorbell_armed && self.backlog.is_empty() && self.fits(1) {
            let entry =
                opcode::PollAdd::new(types::Fd(self.doorbell.as_raw_fd()), libc::POLLIN as u32)
                    .build()
                    .user_data(DOORBELL);
            // The poll needs no buffer; it is cancelled when the ring closes. Without room it
            // is armed at a later park, and this one ends at its timeout at the latest.
            self.push_now(&[entry]);
            self.doorbell_armed = true;
        }
        let entered = self.enter(timeout);
        out.append(&mut self.done);
        entered
    }

    fn io_in_flight(&self) -> usize {
        self.ops.len() + self.queued_syncs.len()
    }

    fn stats(&self) -> DriverStats {
        let stats = DriverStats {
            registered_file_evictions: self.files.evictions(),
            ..self.stats
        };
        stats.with_pipes(self.sends.pipe_stats())
    }

    fn start_send(&mut self, transfer: Transfer) {
        self.send_start(transfer);
    }

    fn finished_sends(&mut self, out: &mut Vec<Finished>) {
        self.send_collect(out);
    }

    fn sends_in_flight(&self) -> usize {
        self.sends.in_flight()
    }

    fn expire_sends(&mut self, all: bool) {
        self.send_expire(all);
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        if !self.ops.is_empty() {
            // Only after the ring broke: the kernel may still touch these buffers, so they are
            // leaked instead of freed.
            std::mem::forget(std::mem::take(&mut self.ops));
        }
        self.sends.leak_in_flight();
    }
}
