//! `Partition`: a cheap, clonable handle to one partition of a topic.

use crate::locate::{Want, locate_range};
use crate::pending::Pending;
use crate::queue::ShardHandle;
use crate::read_batches::ReadBatches;
use crate::reply::{self, Reply};
use crate::request::Request;
use crate::send::{PreparedSocket, SocketGates};
use crate::send_item::{SendHeader, SendInfo, SendItem, SendOptions, SendRange, SendReply};
use crate::shared::{OrderGuard, PartitionShared};
use rill_segment::batch::Header;
use rill_segment::partition::{ReadLimit, RollStats};
use rill_segment::{Durability, Offsets};
use std::fmt;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// One record for [`Partition::append_records`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Value, if any (`None` is a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [Header<'a>],
}

impl<'a> Record<'a> {
    /// A record with a value and no key or headers.
    pub fn value(timestamp_ms: i64, value: &'a [u8]) -> Self {
        Self {
            timestamp_ms,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }
}

/// A handle to one partition: cheap to clone, `Send + Sync`, usable from any thread or task.
///
/// An append is validated and written into the page cache on the calling thread, under the
/// partition's lock (a few microseconds for small batches; a segment roll takes longer): a
/// [`Durability::Written`] append is answered by then, a durable one once the partition's shard
/// has fdatasynced it. Reads, flushes, sends and changes to the log go to the shard through a
/// bounded queue. Each method returns a [`Pending`] to `.await` or [`Pending::wait`] for.
/// Appends from one thread (or one task, awaited in order) keep their order; offsets are
/// contiguous and assigned in arrival order.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rill::{Config, Durability, Log, Record};
/// let dir = tempfile::tempdir()?;
/// let (log, _report) = Log::open(Config::new(dir.path()))?;
/// log.create_topic("events", 2)?;
/// let p = log.partition("events", 1)?;
///
/// let first = p.append_records(&[Record::value(1_700_000_000_000, b"hello")]).wait()?;
/// let second = p
///     .append_records_with(&[Record::value(1_700_000_000_001, b"world")], Durability::Written)
///     .wait()?;
/// assert_eq!((first.base_offset, second.base_offset), (0, 1));
///
/// let read = p.read(0, 1 << 20).wait()?;
/// assert_eq!(read.batches().count(), 2);
/// assert_eq!(read.next_offset, 2);
/// assert_eq!(p.offsets().log_end, 2);
/// log.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Partition {
    pub(crate) shared: Arc<PartitionShared>,
    pub(crate) shard: Arc<ShardHandle>,
    pub(crate) default_durability: Durability,
    pub(crate) read_limit: ReadLimit,
    pub(crate) max_read_bytes: u64,
    pub(crate) gates: Arc<SocketGates>,
    pub(crate) clock: crate::WallClock,
    pub(crate) cleaner: rill_segment::compaction::CleanerLimits,
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.shared.topic)
            .field("index", &self.shared.index)
            .field("shard", &self.shard.id)
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// The partition's index in its topic.
    pub fn index(&self) -> u32 {
        self.shared.index
    }

    /// The shard (thread) that owns the partition.
    pub fn shard(&self) -> usize {
        self.shard.id
    }

    /// The largest batch an append accepts now (the topic's `max_batch_bytes`).
    pub fn max_batch_bytes(&self) -> usize {
        self.shared.max_batch_bytes.load(Ordering::Relaxed)
    }

    /// The timestamp type its topic stamps batches with now.
    pub fn timestamp_type(&self) -> rill_segment::batch::TimestampType {
        if self.shared.log_append_time.load(Ordering::Relaxed) {
            rill_segment::batch::TimestampType::LogAppendTime
        } else {
            rill_segment::batch::TimestampType::CreateTime
        }
    }

    /// The settings the partition runs with now: the log's defaults with its topic's
    /// configuration applied.
    pub fn log_config(&self) -> rill_segment::LogConfig {
        self.shared.log.lock().config().clone()
    }

    pub(crate) fn request<T: reply::Pooled>(
        &self,
        make: impl FnOnce(Arc<PartitionShared>, Reply<T>) -> Request,
    ) -> Pending<T> {
        let (reply, slot) = reply::channel();
        Pending::send(&self.shard, make(Arc::clone(&self.shared), reply), slot)
    }

    /// Sends a request that later appends must not overtake (see
    /// [`PartitionShared::ordered_behind`]), holding its [`OrderGuard`]. Counted and queued
    /// under the log's lock, so every append either was written and queued its durable wait
    /// before it, or sees it and queues behind it.
    pub(crate) fn ordered_request<T: reply::Pooled>(
        &self,
        make: impl FnOnce(Arc<PartitionShared>, Reply<T>, OrderGuard) -> Request,
    ) -> Pending<T> {
        let _log = self.shared.log.lock();
        let order = OrderGuard::new(&self.shared);
        self.request(|part, reply| make(part, reply, order))
    }

    /// Reads whole batches from `offset`: the batch containing it, then more while they fit in
    /// `max_bytes` (at least one, whatever its size: Kafka's rule). Empty at the end of the log.
    pub fn read(&self, offset: i64, max_bytes: u64) -> Pending<ReadBatches> {
        self.read_with(offset, max_bytes, self.read_limit)
    }

    /// Reads as [`Partition::read`] does, seeing up to the written or only the durable offset.
    ///
    /// Bytes in the page cache are read on the calling thread (see `docs/ARCHITECTURE.md`,
    /// the life of a read); the rest through the partition's shard.
    pub fn read_with(&self, offset: i64, max_bytes: u64, limit: ReadLimit) -> Pending<ReadBatches> {
        let max_bytes = max_bytes.min(self.max_read_bytes);
        if !self
            .shared
            .detached
            .load(std::sync::atomic::Ordering::SeqCst)
            && let Some(done) = crate::direct_read::try_read(&self.shared, offset, max_bytes, limit)
        {
            return Pending::ready(done);
        }
        self.request(|part, reply| Request::Read {
            part,
            offset,
            max_bytes,
            limit,
            reply,
        })
    }

    /// Reads answered on the calling thread from the page cache since the partition was
    /// opened (the others went through the shard).
    pub fn direct_reads(&self) -> u64 {
        self.shared
            .direct_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The read limit reads and sends use by default (the `Config`'s).
    pub fn read_limit(&self) -> ReadLimit {
        self.read_limit
    }

    /// Start, end and durable offsets, as of the last append, sync or change.
    pub fn offsets(&self) -> Offsets {
        *self.shared.offsets.lock()
    }

    /// How the partition's segment rolls went since it was opened: into a file prepared ahead
    /// (a rename on the appending thread) or synchronously (no file ready in time).
    pub fn roll_stats(&self) -> RollStats {
        self.shared.log.lock().roll_stats()
    }

    /// The batches a [`Partition::send`] of `offset` and `max_bytes` would carry now, without
    /// sending them (the read limit of the `Config`). A service answering one request for
    /// several partitions locates them all, frames the response from the lengths, then sends
    /// each with [`SendOptions::exact_bytes`] = `batch_bytes`. Appends queued before it are
    /// seen.
    pub fn locate(&self, offset: i64, max_bytes: u64) -> Pending<SendRange> {
        self.locate_with(offset, max_bytes, self.read_limit)
    }

    /// [`Partition::locate`] with a chosen read limit. Runs on the calling thread.
    pub fn locate_with(&self, offset: i64, max_bytes: u64, limit: ReadLimit) -> Pending<SendRange> {
        let want = Want {
            offset,
            max_bytes: max_bytes.min(self.max_read_bytes),
            limit,
            exact_bytes: None,
        };
        let log = self.shared.log.lock();
        Pending::ready(locate_range(&log, want).map(|(range, _)| range))
    }

    /// The offset of the first record with a timestamp at or after `timestamp_ms` (Kafka's
    /// ListOffsets by time); `None` if there is none. Runs on the calling thread.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Pending<Option<i64>> {
        let log = self.shared.log.lock();
        let result = log.offset_for_timestamp(timestamp_ms);
        Pending::ready(result.map_err(|e| self.shared.error(&log, e)))
    }

    /// Removes every record at or after `offset` (after earlier requests to the partition
    /// finished; later appends wait for it). Resolves to the new log end.
    pub fn truncate_to(&self, offset: i64) -> Pending<i64> {
        self.ordered_request(|part, reply, order| Request::TruncateTo {
            part,
            offset,
            reply,
            order,
        })
    }

    /// Raises the log start to `offset`, deleting whole segments below it (later appends wait
    /// for it). Resolves to the new log start.
    pub fn delete_before(&self, offset: i64) -> Pending<i64> {
        self.ordered_request(|part, reply, order| Request::DeleteBefore {
            part,
            offset,
            reply,
            order,
        })
    }

    /// Removes every record and starts the log again, empty, at `offset` (any offset: below
    /// the log start, inside the log or beyond its end; Kafka's `truncateFullyAndStartAt`),
    /// after earlier requests to the partition finished; later appends wait for it. For a
    /// replica that installs a snapshot in place of the log below it: the next append gets
    /// `offset`. Crash-safe: after a crash the partition is empty at `offset`, or holds a
    /// prefix of its old log that keeps every record below `offset` it held (all of it, or
    /// cut at `offset`, or none when `offset` lay below its start). Resolves to the new log
    /// start.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Pending<i64> {
        self.ordered_request(|part, reply, order| Request::StartAt {
            part,
            offset,
            reply,
            order,
        })
    }

    /// Makes everything appended so far durable. Resolves to the offsets afterwards.
    pub fn flush(&self) -> Pending<Offsets> {
        self.request(|part, reply| Request::Flush { part, reply })
    }

    /// Sends whole batches from `offset` to a stream socket (TCP or Unix), preceded by
    /// `header`, without copying them through user space (by default: splice from the page
    /// cache through a pipe, on the shard's io_uring).
    ///
    /// The batches are those [`Partition::read`] would return: the one containing `offset`,
    /// then more while they fit in `max_bytes` (at least one whole batch), within one segment,
    /// up to the written end (see [`SendOptions`] for the durable end). At the end of the log
    /// only the header goes out. Resolves once every byte is in the socket, to the bytes sent
    /// and the offset to fetch next.
    ///
    /// The socket may be blocking or non-blocking; a full socket is waited for, not reported.
    /// Sends to one socket never interleave: they run one after another in the order asked,
    /// whatever their partitions. Do not write to the socket yourself while a send to it is
    /// pending. On error, bytes may already be on the wire (a partial frame): close the
    /// connection. Dropping the future of a send that has not started cancels it; one that has
    /// started finishes (or fails) on its own.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rill::{Config, Log, Record, SendHeader};
    /// use std::io::Read;
    /// let dir = tempfile::tempdir()?;
    /// let (log, _) = Log::open(Config::new(dir.path()))?;
    /// log.create_topic("t", 1)?;
    /// let p = log.partition("t", 0)?;
    /// p.append_records(&[Record::value(1_700_000_000_000, b"hello")]).wait()?;
    ///
    /// let (mut rx, tx) = std::os::unix::net::UnixStream::pair()?;
    /// // A 4-byte length prefix, then the batches.
    /// let header = SendHeader::build(|range| (range.batch_bytes as u32).to_be_bytes().to_vec().into());
    /// let sent = p.send(0, 1 << 20, &tx, header).wait()?;
    /// assert_eq!(sent.next_offset, 1);
    /// let mut frame = vec![0; sent.bytes_sent as usize];
    /// rx.read_exact(&mut frame)?;
    /// assert_eq!(&frame[4..], p.read(0, 1 << 20).wait()?.bytes());
    /// log.close()?;
    /// # Ok(()) }
    /// ```
    pub fn send(
        &self,
        offset: i64,
        max_bytes: u64,
        socket: &impl AsFd,
        header: impl Into<SendHeader>,
    ) -> Pending<SendInfo> {
        self.send_with(offset, max_bytes, socket, header, SendOptions::default())
    }

    /// This partition's send as its shard runs it, the partition's defaults filled in.
    pub(crate) fn send_item(
        &self,
        offset: i64,
        max_bytes: u64,
        header: SendHeader,
        options: SendOptions,
    ) -> SendItem {
        SendItem {
            part: Arc::clone(&self.shared),
            offset,
            max_bytes: options
                .exact_bytes
                .unwrap_or_else(|| max_bytes.min(self.max_read_bytes)),
            limit: options.limit.unwrap_or(self.read_limit),
            strategy: options.strategy,
            header,
            exact_bytes: options.exact_bytes,
            more_follows: false,
        }
    }

    /// [`Partition::send`] with a chosen strategy or read limit.
    pub fn send_with(
        &self,
        offset: i64,
        max_bytes: u64,
        socket: &impl AsFd,
        header: impl Into<SendHeader>,
        options: SendOptions,
    ) -> Pending<SendInfo> {
        let socket = match PreparedSocket::new(socket.as_fd()) {
            Ok(socket) => socket,
            Err(e) => return Pending::ready(Err(e)),
        };
        let (reply, slot) = reply::channel();
        let id = socket.id;
        let request = Request::Send {
            item: self.send_item(offset, max_bytes, header.into(), options),
            socket: socket.fd,
            socket_nonblocking: socket.nonblocking,
            gate: self.gates.ticket(id),
            reply: SendReply::One(reply),
        };
        self.gates
            .dispatch(id, &self.shard, request, slot)
            .unwrap_or_else(|e| Pending::ready(Err(e)))
    }
}
