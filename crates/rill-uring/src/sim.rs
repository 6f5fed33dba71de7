//! A driver over any [`Disk`]: the plans run with the disk's own calls. Used with the simulated
//! disk in tests, and as the reference the other drivers are compared with.

use crate::buffers::ReadBuf;
use crate::doorbell::Doorbell;
use crate::driver::{Driver, DriverKind, DriverStats, ReadOp};
use rill_segment::disk::{self, Disk};
use rill_segment::plan::{DiskExecutor, Executor, Round};
use rill_send::{Finished, PipePool, SendError, Transfer};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Runs plans with [`Disk`] calls, one after another.
#[derive(Debug)]
pub struct DiskDriver {
    disk: Arc<dyn Disk>,
    doorbell: Arc<Doorbell>,
    stats: DriverStats,
    /// Transfers refused (a [`Disk`] offers no descriptors to send from).
    refused: Vec<Finished>,
}

impl DiskDriver {
    /// A driver over `disk` (the disk the plans' files were opened on), woken by `doorbell`.
    pub fn new(disk: Arc<dyn Disk>, doorbell: Arc<Doorbell>) -> Self {
        Self {
            disk,
            doorbell,
            stats: DriverStats::default(),
            refused: Vec::new(),
        }
    }
}

impl Driver for DiskDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Disk
    }

    fn run(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        if rounds.is_empty() && reads.is_empty() {
            return;
        }
        self.stats.batches += 1;
        DiskExecutor::new(self.disk.as_ref()).execute(rounds);
        for round in rounds.iter() {
            for write in &round.writes {
                if matches!(write.result, Some(Ok(()))) {
                    self.stats.writes += 1;
                    self.stats.write_bytes += write.len();
                }
            }
            self.stats.syncs += round
                .syncs
                .iter()
                .filter(|s| matches!(s.result, Some(Ok(()))))
                .count() as u64;
        }
        for read in reads.iter_mut() {
            let mut bytes = vec![0u8; read.len];
            let result =
                disk::read_exact_at(self.disk.as_ref(), read.file, read.position, &mut bytes);
            read.result = Some(result.map(|()| ReadBuf::from_vec(bytes)));
            self.stats.reads += 1;
        }
    }

    fn park(&mut self, timeout: Duration) -> io::Result<()> {
        if !self.refused.is_empty() {
            return Ok(());
        }
        self.doorbell.wait(timeout)?;
        self.stats.wakeups += 1;
        Ok(())
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

    fn progress_sends(&mut self) {}

    fn sends_in_flight(&self) -> usize {
        self.refused.len()
    }

    fn expire_sends(&mut self, _all: bool) {}
}
