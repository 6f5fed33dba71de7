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
use crate::queue::{NoRoom, Permit};
use crate::request::Request;
use crate::shared::{OrderGuard, PartitionShared};
use bytes::{Bytes, BytesMut};
use rill_segment::batch::{self, BatchBuilder};
use rill_segment::partition::ValidBatch;
use rill_segment::{AppendInfo, Durability};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How an append gets room in its shard's queue, when it needs any (a durable wait, or a batch
/// the shard must write).
enum Room {
    /// Take it at once, or wait for it in line (in the returned future).
    Wait,
    /// Take it at once, or fail with [`Error::QueueFull`] before anything is written.
    Try,
    /// Use this permit (from [`Partition::reserve`]).
    Held(Permit),
}

/// Room for one append in a partition's shard queue, from [`Partition::reserve`]: the append
/// made with it never fails with [`Error::QueueFull`], and waits for room only when it must stay
/// behind a request of the partition (a truncation, deletion, or an earlier append) that is
/// itself still waiting for room. Dropping it unused gives the room back.
#[derive(Debug)]
pub struct AppendPermit {
    partition: Partition,
    permit: Permit,
}

impl AppendPermit {
    /// Appends `batch` (at most the bytes reserved, to be sure of the room) with the
    /// partition's default durability.
    pub fn append(self, batch: impl Into<BytesMut>) -> Pending<AppendInfo> {
        let durability = self.partition.default_durability;
        self.append_with(batch, durability)
    }

    /// Appends `batch` with the permit's room; see [`Partition::append_with`].
    pub fn append_with(
        self,
        batch: impl Into<BytesMut>,
        durability: Durability,
    ) -> Pending<AppendInfo> {
        let Self { partition, permit } = self;
        match partition.append_in(batch.into(), durability, Room::Held(permit)) {
            Ok(pending) => pending,
            Err(e) => Pending::ready(Err(e)),
        }
    }
}

/// The future of [`Partition::reserve`]: room for one append, in arrival order.
#[derive(Debug)]
#[must_use = "the room is taken only when awaited or waited for"]
pub struct Reserve {
    partition: Partition,
    bytes: usize,
    state: ReserveState,
}

#[derive(Debug)]
enum ReserveState {
    /// In line for room with this ticket.
    Waiting(u64),
    /// Known without waiting (room at once, or the shard is closing).
    Ready(Result<AppendPermit>),
    Done,
}

impl Reserve {
    /// Blocks the calling thread until there is room. Do not call it on an async executor's
    /// thread; `.await` the future there.
    pub fn wait(self) -> Result<AppendPermit> {
        crate::pending::block_on(self)
    }
}

impl std::future::Future for Reserve {
    type Output = Result<AppendPermit>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<AppendPermit>> {
        let this = &mut *self;
        let ticket = match std::mem::replace(&mut this.state, ReserveState::Done) {
            ReserveState::Ready(result) => return std::task::Poll::Ready(result),
            ReserveState::Done => return std::task::Poll::Ready(Err(Error::ShuttingDown)),
            ReserveState::Waiting(ticket) => ticket,
        };
        match this.partition.shard.poll_reserve(ticket, this.bytes, cx) {
            std::task::Poll::Pending => {
                this.state = ReserveState::Waiting(ticket);
                std::task::Poll::Pending
            }
            std::task::Poll::Ready(result) => {
                std::task::Poll::Ready(result.map_err(|_| Error::ShuttingDown).map(|permit| {
                    AppendPermit {
                        partition: this.partition.clone(),
                        permit,
                    }
                }))
            }
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        if let ReserveState::Waiting(ticket) = self.state {
            self.partition.shard.cancel_wait(ticket);
        }
    }
}

impl Partition {
    /// Appends an encoded Kafka v2 batch with the configured default durability. The batch is
    /// validated (size, magic, CRC, counts); its `baseOffset` is assigned. Resolves to the
    /// batch's base and last offsets once written (or durable).
    pub fn append(&self, batch: impl Into<BytesMut>) -> Pending<AppendInfo> {
        self.append_with(batch, self.default_durability)
    }

    /// Appends an encoded batch, resolving once written ([`Durability::Written`]: visible to
    /// reads) or fdatasynced ([`Durability::Durable`]: survives a crash). The write happens
    /// during this call, on this thread (see the type's documentation), unless the shard's
    /// queue must carry it and is full: then the future waits for room, in arrival order,
    /// holding the batch, and the append happens once there is room and the future is polled.
    /// Such a future keeps its place in line while it is not polled, and requests behind it
    /// wait: await it (or drop it) rather than keep it aside.
    pub fn append_with(
        &self,
        batch: impl Into<BytesMut>,
        durability: Durability,
    ) -> Pending<AppendInfo> {
        match self.append_in(batch.into(), durability, Room::Wait) {
            Ok(pending) => pending,
            Err(e) => Pending::ready(Err(e)),
        }
    }

    /// Appends as [`Partition::append_with`] does, but never waits for room in the shard's
    /// queue: fails at once with [`Error::QueueFull`], having written nothing, when the append
    /// would need room that is not there (a written append to a partition below its unsynced
    /// bound needs none). Other errors come through the returned future.
    pub fn try_append_with(
        &self,
        batch: impl Into<BytesMut>,
        durability: Durability,
    ) -> Result<Pending<AppendInfo>> {
        match self.append_in(batch.into(), durability, Room::Try) {
            Err(Error::QueueFull) => Err(Error::QueueFull),
            Err(e) => Ok(Pending::ready(Err(e))),
            Ok(pending) => Ok(pending),
        }
    }

    /// Waits for room for one append of up to `bytes` in the shard's queue, in arrival order,
    /// so a producer can slow down before building its next batch. The [`AppendPermit`] holds
    /// the room until used or dropped.
    pub fn reserve(&self, bytes: usize) -> Reserve {
        let state = match self.shard.reserve_or_ticket(bytes) {
            Ok(Ok(permit)) => ReserveState::Ready(Ok(AppendPermit {
                partition: self.clone(),
                permit,
            })),
            Ok(Err(ticket)) => ReserveState::Waiting(ticket),
            Err(_) => ReserveState::Ready(Err(Error::ShuttingDown)),
        };
        Reserve {
            partition: self.clone(),
            bytes,
            state,
        }
    }

    fn append_in(
        &self,
        batch: BytesMut,
        durability: Durability,
        room: Room,
    ) -> Result<Pending<AppendInfo>> {
        let started = std::time::Instant::now();
        let max_batch_bytes = self.shared.max_batch_bytes.load(Ordering::Relaxed);
        let mut batch =
            ValidBatch::validate(batch, max_batch_bytes).map_err(Error::InvalidBatch)?;
        let now = self.clock.coarse_now_ms();
        if self.shared.log_append_time.load(Ordering::Relaxed) {
            batch.stamp_log_append_time(now);
        }
        let mut log = self.shared.log.lock();
        // Requests are queued while the lock is held, so the queue's order is the log's: a
        // truncation queued after this append's wait cannot run before the wait is answered.
        if self.shared.ordered_behind.load(Ordering::SeqCst) > 0
            || log.must_sync_before(batch.len())
        {
            return self.queue_append(batch, durability, room);
        }
        let permit = match (durability, room) {
            (Durability::Written, _) => None,
            (Durability::Durable, Room::Held(permit)) => Some(permit),
            (Durability::Durable, room) => match self.shard.try_reserve(0) {
                Ok(permit) => Some(permit),
                Err(NoRoom::Closed) => return Err(Error::ShuttingDown),
                // No room for the durable wait: nothing is written; the shard writes the batch
                // once the queue has room for it.
                Err(NoRoom::Full) => return self.queue_append(batch, durability, room),
            },
        };
        let result = log.append_valid(batch, now);
        // A roll job (the next segment's file, a rename's directory sync, a seal) is started
        // by the shard, asked the same way as a sync.
        let wants_sync = log.wants_sync() || log.has_roll_work();
        self.shared.publish(&log);
        let info = result.map_err(|e| self.shared.error(&log, e))?;
        let metrics = &self.shared.metrics;
        metrics.appends.increment(1);
        metrics.append_bytes.increment(info.batch_bytes);
        metrics
            .append_seconds
            .record(started.elapsed().as_secs_f64());
        if let Some(permit) = permit {
            let (reply, slot) = crate::reply::channel();
            permit.push(Request::AwaitDurable {
                part: Arc::clone(&self.shared),
                durable_offset: info.last_offset + 1,
                info,
                reply,
            });
            return Ok(Pending::sent(slot));
        }
        drop(log);
        if wants_sync {
            ask_for_sync(&self.shared, &self.shard);
        }
        Ok(Pending::ready(Ok(info)))
    }

    /// Queues the batch for the shard to write (the caller holds the log's lock).
    fn queue_append(
        &self,
        batch: ValidBatch,
        durability: Durability,
        room: Room,
    ) -> Result<Pending<AppendInfo>> {
        let permit = match room {
            // A request this append must stay behind may still wait for room in its caller's
            // future: then the append takes its place in line too (the permit goes back).
            // Ordered requests take their ticket under the log's lock, which is held here.
            Room::Held(permit) if self.shard.has_waiting() => {
                drop(permit);
                None
            }
            Room::Held(permit) => Some(permit),
            Room::Try => match self.shard.try_reserve(batch.len()) {
                Ok(permit) => Some(permit),
                Err(NoRoom::Full) => return Err(Error::QueueFull),
                Err(NoRoom::Closed) => return Err(Error::ShuttingDown),
            },
            Room::Wait => None,
        };
        let order = OrderGuard::new(&self.shared);
        let make = |part, reply| Request::Append {
            part,
            batch,
            durability,
            reply,
            order,
            bytes: None,
        };
        Ok(match permit {
            Some(permit) => {
                let (reply, slot) = crate::reply::channel();
                permit.push(make(Arc::clone(&self.shared), reply));
                Pending::sent(slot)
            }
            None => self.request(make),
        })
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
