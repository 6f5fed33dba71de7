//! The io_uring driver: a shard's whole batch of writes, fdatasyncs and reads in as few
//! `io_uring_enter` calls as the queue sizes allow.
//!
//! Group commit: every write of every round is submitted together; each round's fdatasync of a
//! file follows that file's writes, either linked behind them in the same submission
//! ([`SyncMode::Linked`]) or submitted once their completions arrived
//! ([`SyncMode::AfterWrites`]). A short write is resubmitted for its remainder; in a linked
//! chain it also cancels the fdatasync (`-ECANCELED`), which is then issued again once the
//! remainder is written. An fdatasync error is recorded, never retried: the partition fail-stops.
//!
//! Ownership: each in-flight operation lives in a [`Slab`] entry keyed by its `user_data` and
//! owns everything the kernel may read or write for it: clones of the write payloads (`Bytes`),
//! the `iovec` array, the read buffer. An entry leaves the slab only when its completion has
//! arrived. [`Driver::run`] returns only when the batch's entries are all gone; if the ring
//! itself breaks, the entries are kept (and leaked at drop) rather than freed under the kernel.

use crate::buffers::{BufferPool, BufferPoolConfig, ReadBuf};
use crate::doorbell::Doorbell;
use crate::driver::{Driver, DriverKind, DriverStats, ReadOp, sync_not_issued};
use crate::error::DriverError;
use crate::files::{ClosedFiles, FileTable};
use crate::ring::{self, RingConfig, RingFeatures};
use bytes::Bytes;
use io_uring::{IoUring, opcode, squeue, types};
use rill_segment::disk::{Disk, FileId};
use rill_segment::plan::Round;
use rill_send::{Finished, SendConfig, Transfer};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod send;

/// When a round's fdatasync of a file is submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
///
/// Measured with 16 partitions and durable appends (`quick_bench`, 5 interleaved repetitions):
/// the same throughput within noise (33.7k vs 33.8k appends/s), with one `io_uring_enter` per
/// round linked against two after writes, so `Linked` is the default.
pub enum SyncMode {
    /// After the completions of the file's writes arrived (one more `io_uring_enter` per round).
    AfterWrites,
    /// Linked (`IOSQE_IO_LINK`) behind the file's writes in the same submission.
    #[default]
    Linked,
}

/// Settings of a [`UringDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UringOptions {
    /// Ring sizes and limits.
    pub ring: RingConfig,
    /// The read-buffer pool.
    pub buffers: BufferPoolConfig,
    /// When fdatasyncs are submitted.
    pub sync_mode: SyncMode,
    /// The send path.
    pub send: SendConfig,
}

/// Retries of one operation after `EINTR` or `EAGAIN` before its error is recorded.
const MAX_RETRIES: u32 = 16;
/// `user_data` of the doorbell poll (slab keys are far smaller).
const DOORBELL: u64 = u64::MAX;

/// Whether the fallback to unregistered read buffers was already reported.
static WARNED_UNREGISTERED: AtomicBool = AtomicBool::new(false);

/// `iovec`s pointing into the `Bytes` of the same operation.
struct IoVecs(Vec<libc::iovec>);

// SAFETY: the pointers refer to `Bytes` owned by the same `Op` (immutable, reference-counted
// memory); moving the array to another thread moves no data and creates no aliasing.
unsafe impl Send for IoVecs {}

enum Op {
    Write {
        round: usize,
        write: usize,
        /// Index in `file_syncs` of the sync that waits for this write.
        sync: Option<usize>,
        done: usize,
        total: usize,
        bufs: Vec<Bytes>,
        iovecs: IoVecs,
        retries: u32,
    },
    Sync {
        file_sync: usize,
    },
    Read {
        read: usize,
        buf: ReadBuf,
        done: usize,
        retries: u32,
    },
}

/// One round's fdatasync of one file and what it waits for.
#[derive(Debug)]
struct FileSync {
    round: usize,
    sync: usize,
    file: FileId,
    pending_writes: usize,
    issued: bool,
    done: bool,
}

#[derive(Clone, Copy)]
enum Target {
    Fixed(u32),
    Fd(i32),
}

/// The io_uring driver. See the module documentation.
///
/// The ring is set up with `SINGLE_ISSUER` where available: create the driver on the thread
/// that will use it, and keep it there.
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
    sync_mode: SyncMode,
    ops: Slab<Op>,
    /// Chains of entries waiting for room in the SQ (or under the in-flight bound).
    backlog: VecDeque<Vec<squeue::Entry>>,
    /// Entries pushed and not yet completed.
    in_flight: usize,
    file_syncs: Vec<FileSync>,
    /// Each round's entries in `file_syncs` (pushed round by round, so contiguous).
    round_syncs: Vec<std::ops::Range<usize>>,
    round_failed: Vec<bool>,
    cqes: Vec<(u64, i32)>,
    broken: Option<io::ErrorKind>,
    stats: DriverStats,
    sends: send::RingSends,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("features", &self.features)
            .field("sync_mode", &self.sync_mode)
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
            sync_mode: options.sync_mode,
            ops: Slab::new(),
            backlog: VecDeque::new(),
            in_flight: 0,
            file_syncs: Vec::new(),
            round_syncs: Vec::new(),
            round_failed: Vec::new(),
            cqes: Vec::new(),
            broken: None,
            stats: DriverStats::default(),
            sends,
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

    /// How fdatasyncs are submitted.
    pub fn sync_mode(&self) -> SyncMode {
        self.sync_mode
    }

    /// Drops registered-file slots of handles closed since the last call.
    fn release_closed_files(&mut self) {
        for file in self.closed.take() {
            if let Some(slot) = self.files.remove(file) {
                // A failed update leaves the old file referenced by the slot until it is reused;
                // nothing reads through a slot that is not in the table.
                let _ = self.ring.submitter().register_files_update(slot, &[-1]);
            }
        }
    }

    /// How to name `file` in an SQE: its registered slot, registering it on first use.
    fn target(&mut self, file: FileId) -> io::Result<Target> {
        if let Some(slot) = self.files.get(file) {
            return Ok(Target::Fixed(slot));
        }
        let fd = self
            .disk
            .raw_fd(file)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        if self.files_registered
            && let Some(slot) = self.files.insert(file)
        {
            if self
                .ring
                .submitter()
                .register_files_update(slot, &[fd])
                .is_ok()
            {
                return Ok(Target::Fixed(slot));
            }
            self.files.remove(file);
        }
        Ok(Target::Fd(fd))
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
            // Buffers: payload `Bytes`, iovec arrays, read buffers; for sends, header bytes,
            // staging buffer and descriptors (see the module documentation and `send`).
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

    fn write_entry(&mut self, key: usize, target: Target, position: u64) -> squeue::Entry {
        let Some(Op::Write { iovecs, .. }) = self.ops.get(key) else {
            unreachable!("write_entry is called on a write op");
        };
        let (ptr, len) = (iovecs.0.as_ptr(), iovecs.0.len() as u32);
        let entry = match target {
            Target::Fixed(slot) => opcode::Writev::new(types::Fixed(slot), ptr, len)
                .offset(position)
                .build(),
            Target::Fd(fd) => opcode::Writev::new(types::Fd(fd), ptr, len)
                .offset(position)
                .build(),
        };
        entry.user_data(key as u64)
    }

    fn sync_entry(target: Target, key: usize) -> squeue::Entry {
        let flags = types::FsyncFlags::DATASYNC;
        match target {
            Target::Fixed(slot) => opcode::Fsync::new(types::Fixed(slot)).flags(flags).build(),
            Target::Fd(fd) => opcode::Fsync::new(types::Fd(fd)).flags(flags).build(),
        }
        .user_data(key as u64)
    }

    /// Builds the write op for `rounds[r].writes[w]` from byte `done` on; returns its entry.
    fn start_write(
        &mut self,
        rounds: &[&mut Round],
        r: usize,
        w: usize,
        sync: Option<usize>,
    ) -> Result<squeue::Entry, io::Error> {
        let write = &rounds[r].writes[w];
        let target = self.target(write.file)?;
        let bufs = write.bufs.clone();
        let total = bufs.iter().map(Bytes::len).sum();
        let iovecs = IoVecs(iovecs_from(&bufs, 0));
        let key = self.ops.insert(Op::Write {
            round: r,
            write: w,
            sync,
            done: 0,
            total,
            bufs,
            iovecs,
            retries: 0,
        });
        Ok(self.write_entry(key, target, write.position))
    }

    /// Submits every write of `rounds`, syncs as the mode says, and every read.
    fn submit_batch(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        self.file_syncs.clear();
        self.round_syncs.clear();
        self.round_failed.clear();
        self.round_failed.resize(rounds.len(), false);
        for (r, round) in rounds.iter().enumerate() {
            let first = self.file_syncs.len();
            for (s, sync) in round.syncs.iter().enumerate() {
                let pending_writes = round.writes.iter().filter(|w| w.file == sync.file).count();
                self.file_syncs.push(FileSync {
                    round: r,
                    sync: s,
                    file: sync.file,
                    pending_writes,
                    issued: false,
                    done: false,
                });
            }
            self.round_syncs.push(first..self.file_syncs.len());
        }
        let linked = self.sync_mode == SyncMode::Linked;
        let sq_entries = self.features.sq_entries as usize;
        for r in 0..rounds.len() {
            let syncs = self.round_syncs[r].clone();
            // Per sync of the round, the entries of its file's writes; writes to files the round
            // does not sync go alone.
            let mut chains: Vec<Vec<squeue::Entry>> = vec![Vec::new(); syncs.len()];
            let mut alone = Vec::new();
            for w in 0..rounds[r].writes.len() {
                let file = rounds[r].writes[w].file;
                let sync = syncs.clone().find(|&fs| self.file_syncs[fs].file == file);
                match (self.start_write(rounds, r, w, sync), sync) {
                    (Ok(entry), Some(fs)) => chains[fs - syncs.start].push(entry),
                    (Ok(entry), None) => alone.push(entry),
                    (Err(e), sync) => self.fail_write(rounds, (r, w), sync, e),
                }
            }
            for (fs, writes) in syncs.clone().zip(chains) {
                // Linked mode: the file's writes then its sync, one chain in one submission.
                let chain_fits = writes.len() < sq_entries;
                if linked
                    && !writes.is_empty()
                    && chain_fits
                    && !self.round_failed[r]
                    && let Some(sync_entry) = self.new_sync_entry(rounds, fs)
                {
                    let mut chain: Vec<squeue::Entry> = writes
                        .into_iter()
                        .map(|e| e.flags(squeue::Flags::IO_LINK))
                        .collect();
                    chain.push(sync_entry);
                    self.push_chain(&chain);
                    continue;
                }
                alone.extend(writes);
            }
            for entry in alone {
                self.push_chain(&[entry]);
            }
            // Syncs with no write in the round (a flush) go now; others when their writes end.
            for fs in syncs {
                self.maybe_issue_sync(rounds, fs);
            }
        }
        for (i, read) in reads.iter_mut().enumerate() {
            match self.start_read(read, i) {
                Ok(entry) => self.push_chain(&[entry]),
                Err(e) => read.result = Some(Err(e)),
            }
        }
    }

    /// Makes the sync op for `file_syncs[fs]` and marks it issued; `None` (with the result
    /// recorded) if its file cannot be named.
    fn new_sync_entry(&mut self, rounds: &mut [&mut Round], fs: usize) -> Option<squeue::Entry> {
        let file = self.file_syncs[fs].file;
        match self.target(file) {
            Ok(target) => {
                let key = self.ops.insert(Op::Sync { file_sync: fs });
                self.file_syncs[fs].issued = true;
                Some(Self::sync_entry(target, key))
            }
            Err(e) => {
                self.finish_sync(rounds, fs, Err(e));
                None
            }
        }
    }

    fn maybe_issue_sync(&mut self, rounds: &mut [&mut Round], fs: usize) {
        let state = &self.file_syncs[fs];
        if state.done || state.issued || state.pending_writes > 0 {
            return;
        }
        if self.round_failed[state.round] {
            self.finish_sync(rounds, fs, Err(sync_not_issued()));
            return;
        }
        if let Some(entry) = self.new_sync_entry(rounds, fs) {
            self.push_chain(&[entry]);
        }
    }

    fn finish_sync(&mut self, rounds: &mut [&mut Round], fs: usize, result: io::Result<()>) {
        let state = &mut self.file_syncs[fs];
        state.done = true;
        state.issued = false;
        if result.is_ok() {
            self.stats.syncs += 1;
        }
        rounds[state.round].syncs[state.sync].result = Some(result);
    }

    /// Records a failed write (`sync`: the sync waiting for it): the round's writes failed, so
    /// its syncs not yet issued never will be.
    fn fail_write(
        &mut self,
        rounds: &mut [&mut Round],
        (r, w): (usize, usize),
        sync: Option<usize>,
        e: io::Error,
    ) {
        rounds[r].writes[w].result = Some(Err(e));
        self.round_failed[r] = true;
        if let Some(fs) = sync {
            let state = &mut self.file_syncs[fs];
            state.pending_writes = state.pending_writes.saturating_sub(1);
        }
        // Syncs of the round that are not in flight will never be issued.
        for fs in self.round_syncs[r].clone() {
            self.maybe_issue_sync(rounds, fs);
        }
    }

    fn start_read(&mut self, read: &ReadOp, index: usize) -> io::Result<squeue::Entry> {
        if u32::try_from(read.len).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read larger than 4 GiB",
            ));
        }
        let target = self.target(read.file)?;
        let buf = self.pool.take(read.len);
        let key = self.ops.insert(Op::Read {
            read: index,
            buf,
            done: 0,
            retries: 0,
        });
        Ok(self.read_entry(key, target, read.position))
    }

    fn read_entry(&mut self, key: usize, target: Target, position: u64) -> squeue::Entry {
        let Some(Op::Read { buf, done, .. }) = self.ops.get_mut(key) else {
            unreachable!("read_entry is called on a read op");
        };
        let len = (buf.len() - *done) as u32;
        // SAFETY: `done < buf.len()`, so the pointer stays inside the buffer, which the op owns
        // until its completion.
        let ptr = unsafe { buf.as_mut_ptr().add(*done) };
        let position = position + *done as u64;
        let entry = match (buf.fixed_index(), target) {
            (Some(index), Target::Fixed(slot)) => {
                opcode::ReadFixed::new(types::Fixed(slot), ptr, len, index)
                    .offset(position)
                    .build()
            }
            (Some(index), Target::Fd(fd)) => opcode::ReadFixed::new(types::Fd(fd), ptr, len, index)
                .offset(position)
                .build(),
            (None, Target::Fixed(slot)) => opcode::Read::new(types::Fixed(slot), ptr, len)
                .offset(position)
                .build(),
            (None, Target::Fd(fd)) => opcode::Read::new(types::Fd(fd), ptr, len)
                .offset(position)
                .build(),
        };
        entry.user_data(key as u64)
    }

    /// Submits and reaps until no operation of the batch is in flight.
    fn drive(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        let mut enter_errors = 0u32;
        // Each pass waits for at least one completion; operations are finite and each one
        // completes after a bounded number of resubmissions, so the loop ends.
        while self.batch_ops() > 0 {
            self.flush_backlog();
            // Wait for everything in flight, not just the first completion: one enter per
            // dependency step of the batch (writes, then syncs) instead of one per completion.
            // Transfers to sockets may take long (a slow consumer): the batch never waits for them.
            let want = self
                .in_flight
                .saturating_sub(self.sends.entries_in_flight + usize::from(self.doorbell_armed))
                .max(1);
            self.stats.submit_calls += 1;
            match self.ring.submit_and_wait(want) {
                Ok(_) => enter_errors = 0,
                Err(e) if is_transient(&e) => {
                    enter_errors += 1;
                    if enter_errors > MAX_RETRIES * 64 {
                        self.break_ring(rounds, reads, &e);
                        return;
                    }
                }
                Err(e) => {
                    self.break_ring(rounds, reads, &e);
                    return;
                }
            }
            self.reap(rounds, reads);
        }
    }

    /// Submits what is queued and reaps what completed, without sleeping. An enter that asks
    /// for one completion with a zero timeout: deferred task work (`DEFER_TASKRUN`) runs only
    /// in an enter with `GETEVENTS`.
    fn poll_completions(&mut self) {
        let ts = types::Timespec::new();
        let args = types::SubmitArgs::new().timespec(&ts);
        self.stats.submit_calls += 1;
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || is_transient(&e) => {}
            Err(e) => {
                tracing::error!(error = %e, "io_uring_enter failed; the driver stops");
                self.broken = Some(e.kind());
                return;
            }
        }
        self.reap(&mut [], &mut []);
    }

    /// Operations of the current batch (everything but the doorbell poll) not yet completed.
    fn batch_ops(&self) -> usize {
        self.ops.len()
    }

    fn reap(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
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
            self.complete(rounds, reads, user_data as usize, res);
        }
        self.cqes = cqes;
    }

    fn complete(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp], key: usize, res: i32) {
        let Some(op) = self.ops.try_remove(key) else {
            debug_assert!(false, "completion for unknown op {key}");
            return;
        };
        match op {
            Op::Write { .. } => self.complete_write(rounds, op, res),
            Op::Sync { file_sync } => self.complete_sync(rounds, file_sync, res),
            Op::Read { .. } => self.complete_read(reads, op, res),
        }
    }

    fn complete_write(&mut self, rounds: &mut [&mut Round], op: Op, res: i32) {
        let Op::Write {
            round,
            write,
            sync,
            mut done,
            total,
            bufs,
            retries,
            ..
        } = op
        else {
            return;
        };
        let errno = -res;
        let resubmit = match res {
            ..0 if errno == libc::ECANCELED && !self.round_failed[round] => {
                // A linked predecessor was short: this write never ran.
                Some(retries)
            }
            ..0 if (errno == libc::EINTR || errno == libc::EAGAIN) && retries < MAX_RETRIES => {
                Some(retries + 1)
            }
            ..0 => {
                self.fail_write(
                    rounds,
                    (round, write),
                    sync,
                    io::Error::from_raw_os_error(errno),
                );
                return;
            }
            0 => {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                self.fail_write(rounds, (round, write), sync, e);
                return;
            }
            _ => {
                done += res as usize;
                if done < total {
                    self.stats.resubmits += 1;
                    Some(retries)
                } else {
                    None
                }
            }
        };
        if let Some(retries) = resubmit {
            let position = rounds[round].writes[write].position + done as u64;
            let file = rounds[round].writes[write].file;
            let target = match self.target(file) {
                Ok(t) => t,
                Err(e) => return self.fail_write(rounds, (round, write), sync, e),
            };
            let iovecs = IoVecs(iovecs_from(&bufs, done));
            let key = self.ops.insert(Op::Write {
                round,
                write,
                sync,
                done,
                total,
                bufs,
                iovecs,
                retries,
            });
            let entry = self.write_entry(key, target, position);
            self.push_chain(&[entry]);
            return;
        }
        rounds[round].writes[write].result = Some(Ok(()));
        self.stats.writes += 1;
        self.stats.write_bytes += total as u64;
        if let Some(fs) = sync {
            let state = &mut self.file_syncs[fs];
            state.pending_writes = state.pending_writes.saturating_sub(1);
            self.maybe_issue_sync(rounds, fs);
        }
    }

    fn complete_sync(&mut self, rounds: &mut [&mut Round], fs: usize, res: i32) {
        self.file_syncs[fs].issued = false;
        if res == -libc::ECANCELED {
            // The chain broke before the sync ran (a short or failed write): issue it again
            // once the file's writes are complete, or record that it never ran.
            self.maybe_issue_sync(rounds, fs);
        } else if res < 0 {
            // Never retried: after a failed fdatasync the kernel may have dropped the dirty
            // pages, so a later success would prove nothing.
            self.finish_sync(rounds, fs, Err(io::Error::from_raw_os_error(-res)));
        } else {
            // Unlinked: issued only after the file's writes completed. Linked: the kernel ran it
            // only because every write before it in the chain completed in full.
            self.finish_sync(rounds, fs, Ok(()));
        }
    }

    fn complete_read(&mut self, reads: &mut [ReadOp], op: Op, res: i32) {
        let Op::Read {
            read,
            mut buf,
            mut done,
            retries,
        } = op
        else {
            return;
        };
        let errno = -res;
        let retry = match res {
            ..0 if (errno == libc::EINTR || errno == libc::EAGAIN) && retries < MAX_RETRIES => {
                retries + 1
            }
            ..0 => {
                reads[read].result = Some(Err(io::Error::from_raw_os_error(errno)));
                return;
            }
            0 => {
                reads[read].result = Some(Err(io::ErrorKind::UnexpectedEof.into()));
                return;
            }
            _ => {
                done += res as usize;
                if done >= buf.len() {
                    self.stats.reads += 1;
                    if buf.fixed_index().is_some() {
                        self.stats.fixed_reads += 1;
                    }
                    buf.truncate(done);
                    reads[read].result = Some(Ok(buf));
                    return;
                }
                self.stats.resubmits += 1;
                retries
            }
        };
        let (file, position) = (reads[read].file, reads[read].position);
        let target = match self.target(file) {
            Ok(t) => t,
            Err(e) => {
                reads[read].result = Some(Err(e));
                return;
            }
        };
        let key = self.ops.insert(Op::Read {
            read,
            buf,
            done,
            retries: retry,
        });
        let entry = self.read_entry(key, target, position);
        self.push_chain(&[entry]);
    }

    /// `io_uring_enter` failed for good: record errors for every operation of the batch and
    /// keep the in-flight entries (their buffers) alive, since the kernel may still use them.
    fn break_ring(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp], e: &io::Error) {
        tracing::error!(error = %e, "io_uring_enter failed; the driver stops");
        self.broken = Some(e.kind());
        Self::fail_everything(rounds, reads);
    }

    fn fail_everything(rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        let error = || io::Error::other("the io_uring driver broke; reopen the log");
        for round in rounds.iter_mut() {
            for write in &mut round.writes {
                write.result.get_or_insert_with(|| Err(error()));
            }
            for sync in &mut round.syncs {
                sync.result.get_or_insert_with(|| Err(error()));
            }
        }
        for read in reads.iter_mut() {
            read.result.get_or_insert_with(|| Err(error()));
        }
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

/// `iovec`s for the bytes of `bufs` after the first `skip`.
fn iovecs_from(bufs: &[Bytes], mut skip: usize) -> Vec<libc::iovec> {
    let mut out = Vec::with_capacity(bufs.len());
    for buf in bufs {
        if skip >= buf.len() {
            skip -= buf.len();
            continue;
        }
        let rest = &buf[skip..];
        out.push(libc::iovec {
            iov_base: rest.as_ptr().cast_mut().cast(),
            iov_len: rest.len(),
        });
        skip = 0;
    }
    out
}

impl Driver for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Uring
    }

    fn run(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        self.send_run_ready();
        if rounds.iter().all(|r| r.is_empty()) && reads.is_empty() {
            return;
        }
        self.stats.batches += 1;
        if self.broken.is_some() {
            Self::fail_everything(rounds, reads);
            return;
        }
        self.release_closed_files();
        self.submit_batch(rounds, reads);
        self.drive(rounds, reads);
        debug_assert!(self.broken.is_some() || self.ops.is_empty());
    }

    fn park(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(kind) = self.broken {
            return Err(io::Error::new(kind, "the io_uring driver broke"));
        }
        self.release_closed_files();
        self.send_run_ready();
        self.flush_backlog();
        if self.sends.has_work() {
            // Finished transfers wait for the shard, or steps are ready: only submit and reap.
            self.poll_completions();
            return Ok(());
        }
        if !self.doorbell_armed && self.backlog.is_empty() && self.fits(1) {
            let entry =
                opcode::PollAdd::new(types::Fd(self.doorbell.as_raw_fd()), libc::POLLIN as u32)
                    .build()
                    .user_data(DOORBELL);
            // The poll needs no buffer; it is cancelled when the ring closes. Without room it
            // is armed at a later park, and this one ends at its timeout at the latest.
            self.push_now(&[entry]);
            self.doorbell_armed = true;
        }
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        self.stats.submit_calls += 1;
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || is_transient(&e) => {}
            Err(e) => return Err(e),
        }
        self.reap(&mut [], &mut []);
        Ok(())
    }

    fn stats(&self) -> DriverStats {
        self.stats.with_pipes(self.sends.pipe_stats())
    }

    fn start_send(&mut self, transfer: Transfer) {
        self.send_start(transfer);
    }

    fn finished_sends(&mut self, out: &mut Vec<Finished>) {
        self.send_collect(out);
    }

    fn progress_sends(&mut self) {
        if self.broken.is_some() {
            self.send_fail_broken();
            return;
        }
        self.send_run_ready();
        self.flush_backlog();
        if self.sends.entries_in_flight == 0 && self.ring.submission().is_empty() {
            return;
        }
        self.poll_completions();
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
