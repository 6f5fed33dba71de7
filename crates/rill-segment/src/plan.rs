//! I/O plans: the partition log decides *what* to write and sync; an executor decides *how*.
//!
//! A [`Round`] holds one partition's data operations for one shard round: vectored writes at
//! known positions and fdatasyncs. An executor runs every write of every round it is given,
//! then, for each round whose writes all succeeded, its syncs (a sync covers only writes that
//! completed before it was issued). It records each operation's result in place and hands the
//! rounds back to their partitions ([`crate::partition::PartitionLog::complete_round`]).
//!
//! [`DiskExecutor`] runs rounds with the [`Disk`] calls, one after the other. The io_uring and
//! baseline executors of the `rill-uring` crate run the same rounds concurrently.

use crate::disk::{self, Disk, FileId};
use bytes::Bytes;
use std::io;

/// Most buffers in one vectored write (Linux's `IOV_MAX`).
pub const MAX_WRITE_BUFFERS: usize = 1024;

/// A vectored write of `bufs`, in order, at `position` of `file`.
#[derive(Debug)]
pub struct WriteOp {
    /// The file.
    pub file: FileId,
    /// Byte position of the first buffer.
    pub position: u64,
    /// The batches to write, in order, contiguous in the file.
    pub bufs: Vec<Bytes>,
    /// Set by the executor: the write completed whole, or why not.
    pub result: Option<io::Result<()>>,
}

impl WriteOp {
    /// Bytes this write covers.
    pub fn len(&self) -> u64 {
        self.bufs.iter().map(|b| b.len() as u64).sum()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.bufs.iter().all(Bytes::is_empty)
    }
}

/// An fdatasync of `file`.
#[derive(Debug)]
pub struct SyncOp {
    /// The file.
    pub file: FileId,
    /// Set by the executor.
    pub result: Option<io::Result<()>>,
}

/// One partition's operations for one round.
#[derive(Debug)]
pub struct Round {
    pub(crate) owner: u64,
    /// Writes, in the order planned. Writes to different files are independent; writes to one
    /// file never overlap.
    pub writes: Vec<WriteOp>,
    /// Syncs, to run after every write of the round succeeded.
    pub syncs: Vec<SyncOp>,
}

impl Round {
    pub(crate) fn new(owner: u64) -> Self {
        Self {
            owner,
            writes: Vec::new(),
            syncs: Vec::new(),
        }
    }

    /// Whether the round has no operations.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.syncs.is_empty()
    }

    /// Adds `batch` at `position` of `file`, extending the previous write when contiguous.
    pub(crate) fn push_write(&mut self, file: FileId, position: u64, batch: Bytes) {
        if let Some(last) = self.writes.last_mut()
            && last.file == file
            && last.position + last.len() == position
            && last.bufs.len() < MAX_WRITE_BUFFERS
        {
            last.bufs.push(batch);
            return;
        }
        self.writes.push(WriteOp {
            file,
            position,
            bufs: vec![batch],
            result: None,
        });
    }

    pub(crate) fn push_sync(&mut self, file: FileId) {
        if !self.syncs.iter().any(|s| s.file == file) {
            self.syncs.push(SyncOp { file, result: None });
        }
    }

    /// Whether every write completed successfully.
    pub fn writes_succeeded(&self) -> bool {
        self.writes.iter().all(|w| matches!(w.result, Some(Ok(()))))
    }
}

/// Runs rounds' operations.
pub trait Executor {
    /// Runs every write of every round, then the syncs of each round whose writes succeeded,
    /// recording each result in place.
    fn execute(&mut self, rounds: &mut [&mut Round]);
}

/// Runs rounds with plain [`Disk`] calls, sequentially. Short writes are resubmitted.
#[derive(Debug)]
pub struct DiskExecutor<'a> {
    disk: &'a dyn Disk,
}

impl<'a> DiskExecutor<'a> {
    /// An executor over `disk`, which must be the disk the rounds' files were opened on.
    pub fn new(disk: &'a dyn Disk) -> Self {
        Self { disk }
    }
}

impl Executor for DiskExecutor<'_> {
    fn execute(&mut self, rounds: &mut [&mut Round]) {
        for round in rounds.iter_mut() {
            for write in &mut round.writes {
                let bufs: Vec<&[u8]> = write.bufs.iter().map(|b| &b[..]).collect();
                write.result = Some(disk::write_all_at(
                    self.disk,
                    write.file,
                    write.position,
                    &bufs,
                ));
            }
        }
        for round in rounds.iter_mut() {
            let ok = round.writes_succeeded();
            for sync in &mut round.syncs {
                sync.result = Some(if ok {
                    self.disk.fdatasync(sync.file)
                } else {
                    Err(io::Error::other("not issued: a write of the round failed"))
                });
            }
        }
    }
}
