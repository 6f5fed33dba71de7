//! What every driver does: run a shard's batch of planned operations, and sleep until woken.

use crate::buffers::ReadBuf;
use rill_segment::disk::FileId;
use rill_segment::plan::Round;
use rill_send::{Finished, Transfer};
use std::fmt;
use std::io;
use std::time::Duration;

/// Which driver runs a shard's I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// io_uring ([`crate::UringDriver`]).
    Uring,
    /// Plain system calls and epoll ([`crate::SyscallDriver`]), the baseline and fallback.
    Syscall,
    /// The [`rill_segment::disk::Disk`] calls ([`crate::DiskDriver`]), for simulated disks.
    Disk,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uring => "io_uring",
            Self::Syscall => "syscall",
            Self::Disk => "disk",
        })
    }
}

/// A read of `len` bytes at `position` of `file`, into a buffer the driver provides.
#[derive(Debug)]
pub struct ReadOp {
    /// The file.
    pub file: FileId,
    /// Byte position.
    pub position: u64,
    /// Bytes to read; the read fails if the file ends sooner.
    pub len: usize,
    /// Set by the driver: the bytes, or why not.
    pub result: Option<io::Result<ReadBuf>>,
}

impl ReadOp {
    /// A read not yet run.
    pub fn new(file: FileId, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
            result: None,
        }
    }
}

/// Counters of a driver's work since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Batches run ([`Driver::run`] calls with at least one operation).
    pub batches: u64,
    /// System calls that submitted or waited for I/O (`io_uring_enter`, or one per syscall
    /// operation for the baseline).
    pub submit_calls: u64,
    /// Write operations completed (each may be several `iovec`s).
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// fdatasyncs completed successfully.
    pub syncs: u64,
    /// Reads completed.
    pub reads: u64,
    /// Reads that used a registered (fixed) buffer.
    pub fixed_reads: u64,
    /// Short writes or reads resubmitted for their remainder.
    pub resubmits: u64,
    /// Times the submission queue was full and the driver submitted early to make room.
    pub sq_full: u64,
    /// Wake-ups from [`Driver::park`] by the doorbell.
    pub wakeups: u64,
    /// Transfers to sockets completed successfully.
    pub sends: u64,
    /// Bytes those transfers wrote to sockets (headers included).
    pub send_bytes: u64,
    /// Splice pipes made (the pool reuses clean ones).
    pub pipes_created: u64,
    /// Splice pipes closed because a failed transfer left bytes in them.
    pub pipes_closed_dirty: u64,
}

impl DriverStats {
    /// These counters with the pipe pool's counters filled in.
    pub(crate) fn with_pipes(self, pipes: rill_send::PipeStats) -> Self {
        Self {
            pipes_created: pipes.created,
            pipes_closed_dirty: pipes.closed_dirty,
            ..self
        }
    }
}

impl std::ops::AddAssign for DriverStats {
    /// Sums counters (of several shards' drivers).
    fn add_assign(&mut self, other: Self) {
        self.batches += other.batches;
        self.submit_calls += other.submit_calls;
        self.writes += other.writes;
        self.write_bytes += other.write_bytes;
        self.syncs += other.syncs;
        self.reads += other.reads;
        self.fixed_reads += other.fixed_reads;
        self.resubmits += other.resubmits;
        self.sq_full += other.sq_full;
        self.wakeups += other.wakeups;
        self.sends += other.sends;
        self.send_bytes += other.send_bytes;
        self.pipes_created += other.pipes_created;
        self.pipes_closed_dirty += other.pipes_closed_dirty;
    }
}

/// Runs a shard's planned I/O.
pub trait Driver: Send + fmt::Debug {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;

    /// Runs every write of every round; the syncs of a round once all of its writes to that
    /// file completed (none issued for a round with a failed write); and every read. Results
    /// are recorded in place. Returns when every operation has completed: no buffer of `rounds`
    /// or `reads` is referenced by the kernel afterwards.
    fn run(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]);

    /// Sleeps until the shard's doorbell rings or `timeout` passes. The shard must have called
    /// [`crate::Doorbell::prepare_sleep`] and checked its queue first.
    fn park(&mut self, timeout: Duration) -> io::Result<()>;

    /// Counters so far.
    fn stats(&self) -> DriverStats;

    /// Starts a transfer to a socket (see `rill_send`). It progresses during [`Driver::run`] and
    /// [`Driver::park`], which does not sleep while a finished transfer waits to be collected;
    /// [`Driver::finished_sends`] hands it back with its result. The caller bounds how many are
    /// in progress.
    fn start_send(&mut self, transfer: Transfer);

    /// Moves the outcomes of finished transfers into `out`.
    fn finished_sends(&mut self, out: &mut Vec<Finished>);

    /// Advances transfers without sleeping: submits their pending steps and reaps what
    /// completed. The shard calls it on every pass while transfers are in progress, so they
    /// move even when no batch runs and the shard cannot sleep.
    fn progress_sends(&mut self);

    /// Transfers started and not yet handed back.
    fn sends_in_flight(&self) -> usize;

    /// Fails transfers that made no progress for the stall timeout, or with `all` every
    /// transfer (shutdown); they are handed back once nothing of theirs is in flight.
    fn expire_sends(&mut self, all: bool);
}

/// The error recorded for a sync that was not issued because a write of its round failed.
pub(crate) fn sync_not_issued() -> io::Error {
    io::Error::other("fdatasync not issued: a write of the round failed")
}
