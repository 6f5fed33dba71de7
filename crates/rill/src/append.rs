//! Appends, on the caller's thread.
//!
//! The batch is validated (shape, counts, CRC, records) before anything shared is touched; then,
//! under the partition's lock, its offsets are assigned and it is written into the page cache
//! with one `pwritev`. A [`Durability::Written`] append is answered then, with no thread hop and
//! no allocation; a durable one asks the shard to answer once an fdatasync covers it (the shard
//! groups those of many partitions into one submission). Two cases go through the shard
//! instead, so nothing overtakes what is queued: the partition's unsynced bytes are at
//! `max_unsynced_bytes` (the shard writes the batch once a sync made room), or requests that
//! appends must stay behind are queued (see [`PartitionShared::ordered_behind`]).

use crate::error::{Error, Result};
use crate::partition::{Partition, Record};
use crate::pending::Pending;
use crate::request::Request;
use crate::shard::now_ms;
use crate::shared::{OrderGuard, PartitionShared};
use bytes::{Bytes, BytesMut};
use rill_segment::batch::{self, BatchBuilder};
use rill_segment::partition::ValidBatch;
use rill_segment::{AppendInfo, Durability};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Partition {
    /// Appends an encoded Kafka v2 batch with the configured default durability. The batch is
    /// validated (size, magic, CRC, counts); its `baseOffset` is assigned. Resolves to the
    /// batch's base and last offsets once written (or durable).
    pub fn append(&self, batch: impl Into<BytesMut>) -> Pending<AppendInfo> {
        self.append_with(batch, self.default_durability)
    }

    /// Appends an encoded batch, resolving once written ([`Durability::Written`]: visible to
    /// reads) or fdatasynced ([`Durability::Durable`]: survives a crash). The write happens
    /// during this call, on this thread (see the type's documentation).
    pub fn append_with(
        &self,
        batch: impl Into<BytesMut>,
        durability: Durability,
    ) -> Pending<AppendInfo> {
        let batch = match ValidBatch::validate(batch.into(), self.max_batch_bytes) {
            Ok(batch) => batch,
            Err(e) => return Pending::ready(Err(Error::InvalidBatch(e))),
        };
        let now = now_ms();
        let mut log = self.shared.log.lock();
        // Requests are queued while the lock is held, so the queue's order is the log's: a
        // truncation queued after this append's wait cannot run before the wait is answered.
        if self.shared.ordered_behind.load(Ordering::SeqCst) > 0
            || log.must_sync_before(batch.len())
        {
            let order = OrderGuard::new(&self.shared);
            return self.request(|part, reply| Request::Append {
                part,
                batch,
                durability,
                reply,
                order,
            });
        }
        let result = log.append_valid(batch, now);
        let wants_sync = log.wants_sync();
        self.shared.publish(&log);
        let info = match result {
            Ok(info) => info,
            Err(e) => return Pending::ready(Err(self.shared.error(&log, e))),
        };
        if durability == Durability::Durable {
            return self.request(|part, reply| Request::AwaitDurable {
                part,
                durable_offset: info.last_offset + 1,
                info,
                reply,
            });
        }
        drop(log);
        if wants_sync {
            ask_for_sync(&self.shared, &self.shard);
        }
        Pending::ready(Ok(info))
    }

    /// Encodes `records` into one batch and appends it with the default durability.
    pub fn append_records(&self, records: &[Record<'_>]) -> Pending<AppendInfo> {
        self.append_records_with(records, self.default_durability)
    }

    /// Encodes `records` into one batch and appends it.
    pub fn append_records_with(
        &self,
        records: &[Record<'_>],
        durability: Durability,
    ) -> Pending<AppendInfo> {
        match encode(records) {
            Ok(batch) => self.append_with(batch, durability),
            Err(e) => Pending::ready(Err(e)),
        }
    }
}

/// Asks the shard for a sync nobody waits on, once until the shard starts it.
fn ask_for_sync(part: &Arc<PartitionShared>, shard: &crate::queue::ShardHandle) {
    if part.sync_wanted.swap(true, Ordering::SeqCst) {
        return;
    }
    let request = Request::WantSync {
        part: Arc::clone(part),
    };
    if shard.push_control(request).is_err() {
        // Closing: the close syncs everything.
        part.sync_wanted.store(false, Ordering::SeqCst);
    }
}

fn encode(records: &[Record<'_>]) -> Result<BytesMut> {
    let bytes: usize = records
        .iter()
        .map(|r| 32 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len))
        .sum();
    let mut builder = BatchBuilder::with_capacity(batch::HEADER_BYTES + bytes);
    for record in records {
        builder.append(
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
        )?;
    }
    let encoded = builder.build()?;
    Ok(BytesMut::from(Bytes::from(encoded)))
}
