//! What every driver does: run a shard's batch of planned operations, and sleep until woken.

use crate::buffers::ReadBuf;
use rill_segment::disk::FileId;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOp {
    /// The file.
    pub file: FileId,
    /// Byte position.
    pub position: u64,
    /// Bytes to read; the read fails if the file ends sooner.
    pub len: usize,
}

impl ReadOp {
    /// A read of `len` bytes at `position` of `file`.
    pub fn new(file: FileId, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }
}

/// The end of an operation started with [`Driver::start_sync`] or [`Driver::start_read`],
/// carrying the caller's token.
#[derive(Debug)]
pub enum Completion {
    /// An fdatasync ended.
    Sync {
        /// The token given to [`Driver::start_sync`].
        token: u64,
        /// The file synced.
        file: FileId,
        /// Done, or why not (never retried).
        result: io::Result<()>,
    },
    /// A read ended.
    Read {
        /// The token given to [`Driver::start_read`].
        token: u64,
        /// The bytes (exactly the length asked for), or why not.
        result: io::Result<ReadBuf>,
    },
}

/// Counters of a driver's work since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Submissions (`io_uring_enter`, or passes of the baseline) that carried at least one
    /// storage operation: fdatasyncs of many partitions started together count once.
    pub batches: u64,
    /// System calls that submitted or waited for I/O (`io_uring_enter`, or one per syscall
    /// operation for the baseline).
    pub submit_calls: u64,
    /// fdatasyncs completed successfully.
    pub syncs: u64,
    /// fdatasyncs run inline on the shard thread: a lone one on the io_uring and baseline
    /// drivers (see `take_lone_sync`), every one on the disk driver.
    pub inline_syncs: u64,
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
    /// Registered-file slots given to another file, least recently used first (io_uring).
    pub registered_file_evictions: u64,
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
        self.syncs += other.syncs;
        self.inline_syncs += other.inline_syncs;
        self.reads += other.reads;
        self.fixed_reads += other.fixed_reads;
        self.resubmits += other.resubmits;
        self.sq_full += other.sq_full;
        self.wakeups += other.wakeups;
        self.sends += other.sends;
        self.send_bytes += other.send_bytes;
        self.pipes_created += other.pipes_created;
        self.pipes_closed_dirty += other.pipes_closed_dirty;
        self.registered_file_evictions += other.registered_file_evictions;
    }
}

/// Runs a shard's planned I/O. A driver lives on the thread that made it (the io_uring one
/// cannot move: its ring is single-issuer).
pub trait Driver: fmt::Debug {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;

    /// Starts an fdatasync of `file`. Its [`Completion::Sync`] carries `token`. The file must
    /// stay open until then.
    fn start_sync(&mut self, token: u64, file: FileId);

    /// Starts an fdatasync nobody waits for (a watermark slot's): it never runs inline on the
    /// shard thread, and it does not count when the driver decides whether a sync is alone.
    fn start_background_sync(&mut self, token: u64, file: FileId) {
        self.start_sync(token, file);
    }

    /// Starts a read. Its [`Completion::Read`] carries `token`. The file must stay open until
    /// then.
    fn start_read(&mut self, token: u64, read: ReadOp);

    /// Submits what was started and moves the completions that arrived into `out`, without
    /// sleeping. Every started operation completes exactly once, whatever happens to the driver.
    fn poll(&mut self, out: &mut Vec<Completion>);

    /// Sleeps until an operation completes, the shard's doorbell rings or `timeout` passes, and
    /// moves completions into `out`. The shard must have called
    /// [`crate::Doorbell::prepare_sleep`] and checked its queue first.
    fn park(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()>;

    /// Storage operations (syncs and reads) started and not yet handed back.
    fn io_in_flight(&self) -> usize;

    /// Counters so far.
    fn stats(&self) -> DriverStats;

    /// Starts a transfer to a socket (see `rill_send`). It progresses during [`Driver::poll`] and
    /// [`Driver::park`], which does not sleep while a finished transfer waits to be collected;
    /// [`Driver::finished_sends`] hands it back with its result. The caller bounds how many are
    /// in progress.
    fn start_send(&mut self, transfer: Transfer);

    /// Moves the outcomes of finished transfers into `out`.
    fn finished_sends(&mut self, out: &mut Vec<Finished>);

    /// Transfers started and not yet handed back.
    fn sends_in_flight(&self) -> usize;

    /// Fails transfers that made no progress for the stall timeout, or with `all` every
    /// transfer (shutdown); they are handed back once nothing of theirs is in flight.
    fn expire_sends(&mut self, all: bool);
}

/// An fdatasync started and not yet submitted: its token, its file, and whether it is a
/// background one (see [`Driver::start_background_sync`]).
pub(crate) type QueuedSync = (u64, FileId, bool);

/// The drivers' rule for running a sync inline: when `queued` holds exactly one sync someone
/// waits for and `idle` (nothing else in flight but background syncs), removes and returns it.
/// A thread hop to run a lone sync elsewhere costs more than blocking the shard on it, when
/// nothing else waits for the shard.
pub(crate) fn take_lone_sync(queued: &mut Vec<QueuedSync>, idle: bool) -> Option<QueuedSync> {
    let mut waited = queued.iter().filter(|(_, _, background)| !background);
    let first = waited.next()?;
    if !idle || waited.next().is_some() {
        return None;
    }
    let at = queued.iter().position(|sync| sync == first)?;
    Some(queued.remove(at))
}

/// Counts a finished fdatasync and queues its completion.
pub(crate) fn sync_finished(
    stats: &mut DriverStats,
    done: &mut Vec<Completion>,
    (token, file): (u64, FileId),
    result: io::Result<()>,
) {
    stats.submit_calls += 1;
    if result.is_ok() {
        stats.syncs += 1;
    }
    done.push(Completion::Sync {
        token,
        file,
        result,
    });
}

/// Runs an fdatasync with `disk`'s own call on this thread, counts it (as inline) and queues its
/// completion.
pub(crate) fn sync_inline(
    disk: &dyn rill_segment::disk::Disk,
    stats: &mut DriverStats,
    done: &mut Vec<Completion>,
    (token, file): (u64, FileId),
) {
    stats.inline_syncs += 1;
    let result = disk.fdatasync(file);
    sync_finished(stats, done, (token, file), result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_waited_sync_runs_inline() {
        let data = (1, FileId(1), false);
        let slot = (2, FileId(2), true);
        let mut queued = vec![slot, data];
        assert_eq!(take_lone_sync(&mut queued, true), Some(data));
        assert_eq!(queued, vec![slot], "background syncs stay queued");
        let mut busy = vec![data];
        assert_eq!(take_lone_sync(&mut busy, false), None);
        let mut two = vec![data, (3, FileId(3), false)];
        assert_eq!(take_lone_sync(&mut two, true), None);
        assert_eq!(two.len(), 2);
        let mut background_only = vec![slot];
        assert_eq!(take_lone_sync(&mut background_only, true), None);
    }
}
