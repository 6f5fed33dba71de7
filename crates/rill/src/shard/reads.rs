//! Reads: located under the partition's lock, started on the driver, and answered when their
//! own bytes arrive (checked: whole batches, CRCs, offsets), whatever else is in flight.

use super::{InFlight, Shard};
use crate::locate::locate_error;
use crate::read_batches::ReadBatches;
use crate::reply::Reply;
use crate::shared::PartitionKey;
use rill_segment::Offsets;
use rill_segment::partition::{BatchRange, ReadLimit};
use rill_uring::{ReadBuf, ReadOp};
use std::io;

/// A read waiting for its bytes.
#[derive(Debug)]
pub(super) struct PlannedRead {
    key: PartitionKey,
    range: BatchRange,
    offsets: Offsets,
    reply: Reply<ReadBatches>,
}

impl PlannedRead {
    /// Answers the read with `e`.
    pub(super) fn fail(self, e: crate::error::Error) {
        self.reply.send(Err(e));
    }
}

impl Shard {
    pub(super) fn start_read(
        &mut self,
        key: PartitionKey,
        offset: i64,
        max_bytes: u64,
        limit: ReadLimit,
        reply: Reply<ReadBatches>,
    ) {
        let Some(state) = self.partitions.get_mut(&key) else {
            return;
        };
        let (located, offsets) = {
            let log = state.shared.log.lock();
            let located = log
                .locate(offset, max_bytes, limit)
                .map_err(|e| locate_error(&log, e));
            (located, log.offsets())
        };
        match located {
            Ok(Some(range)) => {
                let read = ReadOp::new(range.file, range.position, range.len as usize);
                let token = self.in_flight.insert(InFlight::Read(PlannedRead {
                    key,
                    range,
                    offsets,
                    reply,
                }));
                state.reads_in_flight += 1;
                self.driver.start_read(token as u64, read);
            }
            Ok(None) => reply.send(Ok(ReadBatches::new(None, offset, offsets))),
            Err(e) => reply.send(Err(e)),
        }
    }

    pub(super) fn read_done(&mut self, token: usize, result: io::Result<ReadBuf>) {
        let Some(InFlight::Read(read)) = self.in_flight.try_remove(token) else {
            debug_assert!(false, "read completion for unknown token {token}");
            return;
        };
        let Some(state) = self.partitions.get_mut(&read.key) else {
            read.reply.send(Err(crate::error::Error::ShuttingDown));
            return;
        };
        state.reads_in_flight -= 1;
        let dir = &state.shared.dir;
        let answer = match result {
            Ok(buf) => match read.range.check(dir, &buf) {
                Ok(()) => Ok(ReadBatches::new(
                    Some(buf),
                    read.range.next_offset,
                    read.offsets,
                )),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(crate::error::Error::io("read", dir.clone(), e)),
        };
        read.reply.send(answer);
        self.relist(read.key);
    }
}
