//! A driver over any [`Disk`]: each operation runs with the disk's own calls when started, and
//! its completion is handed back at the next poll. Used with the simulated disk in tests, and
//! as the reference the other drivers are compared with.

use crate::buffers::ReadBuf;
use crate::doorbell::Doorbell;
use crate::driver::{Completion, Driver, DriverKind, DriverStats, ReadOp, sync_inline};
use rill_segment::disk::{self, Disk, FileId};
use rill_send::{Finished, PipePool, SendError, Transfer};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Runs operations with [`Disk`] calls, one after another.
#[derive(Debug)]
pub struct DiskDriver {
    disk: Arc<dyn Disk>,
    doorbell: Arc<Doorbell>,
    stats: DriverStats,
    /// Transfers refused (a [`Disk`] offers no descriptors to send from).
    refused: Vec<Finished>,
    done: Vec<Completion>,
}

impl DiskDriver {
    /// A driver over `disk` (the disk the plans' files were opened on), woken by `doorbell`.
    pub fn new(disk: Arc<dyn Disk>, doorbell: Arc<Doorbell>) -> Self {
        Self {
            disk,
            doorbell,
            stats: DriverStats::default(),
            refused: Vec::new(),
            done: Vec::new(),
        }
    }
}

impl Driver for DiskDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Disk
    }

    fn start_sync(&mut self, token: u64, file: FileId) {
        self.stats.batches += 1;
        sync_inline(
            self.disk.as_ref(),
            &mut self.stats,
            &mut self.done,
            (token, file),
        );
    }

    fn start_read(&mut self, token: u64, read: ReadOp) {
        let mut bytes = vec![0u8; read.len];
        let result = disk::read_exact_at(self.disk.as_ref(), read.file, read.position, &mut bytes);
        self.stats.reads += 1;
        self.done.push(Completion::Read {
            token,
            result: result.map(|()| ReadBuf::from_vec(bytes)),
        });
    }

    fn poll(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.done);
    }

    fn park(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        if self.refused.is_empty() && self.done.is_empty() {
            self.doorbell.wait(timeout)?;
            self.stats.wakeups += 1;
        }
        out.append(&mut self.done);
        Ok(())
    }

    fn io_in_flight(&self) -> usize {
        0
    }

    fn stats(&self) -> DriverStats {
        self.stats
    }

    fn start_send(&mut self, mut transfer: Transfer) {
        transfer.fail(SendError::Unsupported("the disk driver has no socket path"));
        transfer.finish(&mut PipePool::new(1, 4096));
        self.refused.push(transfer.into_finished());
    }

    fn finished_sends(&mut self, out: &mut Vec<Finished>) {
        out.append(&mut self.refused);
    }

    fn sends_in_flight(&self) -> usize {
        self.refused.len()
    }

    fn expire_sends(&mut self, _all: bool) {}
}
