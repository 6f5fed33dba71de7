//! [`send_in_order`]: several partitions' batches to one socket, one after another, as one
//! request to each shard instead of one per partition.
//!
//! A service that answers a fetch of many partitions writes them into one response; each
//! partition's part must follow the previous one's on the socket. With [`Partition::send`]
//! that is one request per partition, each dispatched by the socket's gate when the one
//! before it ends. Here consecutive partitions on the same shard form a *run*: one request
//! that its shard works through item by item (the next item is queued on the shard itself
//! when one ends) and answers once. Runs of different shards follow each other through the
//! socket's gate, as single sends do.

use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::pending::Pending;
use crate::queue::ShardHandle;
use crate::reply;
use crate::request::Request;
use crate::send::{PreparedSocket, SocketGates};
use crate::send_item::{RunRest, SendHeader, SendInfo, SendItem, SendOptions, SendReply};
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};

/// Runs asked of their shards ahead of the one awaited, at most (and at most what the socket's
/// gate queues, `queue_depth`); later runs are asked for as earlier ones end.
const RUNS_AHEAD: usize = 32;

/// One partition's part of a [`send_in_order`] list: the arguments of
/// [`Partition::send_with`].
#[derive(Debug)]
pub struct PartitionSend<'a> {
    /// The partition to send from.
    pub partition: &'a Partition,
    /// The offset to send from.
    pub offset: i64,
    /// At most this many batch bytes (at least one batch), unless `options.exact_bytes`.
    pub max_bytes: u64,
    /// Bytes written before the batches.
    pub header: SendHeader,
    /// Strategy, read limit and exact length.
    pub options: SendOptions,
}

/// Sends each partition's batches, with its header before them, to `socket`, in the order of
/// `sends`, and resolves to what each sent, in that order.
///
/// It does what a [`Partition::send_with`] per entry, awaited in order, would do, with fewer
/// steps: consecutive entries whose partitions share a shard go to that shard as one request,
/// which sends them one after another without a trip back to the caller (order a response's
/// partitions by [`Partition::shard`] where the protocol allows it). The partitions must all
/// belong to one [`crate::Log`].
///
/// On error the list stops at the failed entry ([`Error::SendPart`] names it); the entries
/// before it, and part of it, may be on the wire: close the connection. Dropping the future
/// stops the list before the next entry starts (an entry being sent finishes on its own).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rill::{Config, Log, PartitionSend, Record, SendOptions, send_in_order};
/// use std::io::Read;
/// let dir = tempfile::tempdir()?;
/// let (log, _) = Log::open(Config::new(dir.path()))?;
/// log.create_topic("t", 2)?;
/// let (p0, p1) = (log.partition("t", 0)?, log.partition("t", 1)?);
/// p0.append_records(&[Record::value(1_700_000_000_000, b"zero")]).wait()?;
/// p1.append_records(&[Record::value(1_700_000_000_000, b"one")]).wait()?;
///
/// let (mut rx, tx) = std::os::unix::net::UnixStream::pair()?;
/// let entry = |partition, header: &'static [u8]| PartitionSend {
///     partition,
///     offset: 0,
///     max_bytes: 1 << 20,
///     header: header.into(),
///     options: SendOptions::default(),
/// };
/// let sent = send_in_order(&tx, [entry(&p0, b"p0:"), entry(&p1, b"p1:")]).wait()?;
/// assert_eq!(sent.len(), 2);
/// let total: u64 = sent.iter().map(|s| s.bytes_sent).sum();
/// let mut bytes = vec![0; total as usize];
/// rx.read_exact(&mut bytes)?;
/// assert_eq!(&bytes[..3], b"p0:");
/// assert_eq!(&bytes[sent[0].bytes_sent as usize..][..3], b"p1:");
/// log.close()?;
/// # Ok(()) }
/// ```
pub fn send_in_order<'a>(
    socket: &impl AsFd,
    sends: impl IntoIterator<Item = PartitionSend<'a>>,
) -> SendsInOrder {
    let mut pending = SendsInOrder {
        socket: None,
        gates: None,
        runs: VecDeque::new(),
        entered: VecDeque::new(),
        sent: Vec::new(),
        failed: None,
        list_failed: Arc::new(AtomicBool::new(false)),
    };
    match plan_runs(sends) {
        Ok((runs, gates, count)) if !runs.is_empty() => match PreparedSocket::new(socket.as_fd()) {
            Ok(socket) => {
                pending.socket = Some(socket);
                pending.runs = runs;
                pending.gates = gates;
                pending.sent.reserve_exact(count);
                pending.enter_runs();
            }
            Err(e) => pending.failed = Some(part_error(0, e)),
        },
        Ok(_) => {}
        Err(e) => pending.failed = Some(e),
    }
    pending
}

/// Consecutive entries on one shard, not yet asked of it.
struct Run {
    shard: Arc<ShardHandle>,
    /// The first entry's place in the list.
    start: usize,
    items: VecDeque<SendItem>,
}

/// Cuts the list into runs where the shard changes; also gives the log's socket gates and the
/// number of entries.
fn plan_runs<'a>(
    sends: impl IntoIterator<Item = PartitionSend<'a>>,
) -> Result<(VecDeque<Run>, Option<Arc<SocketGates>>, usize)> {
    let mut runs: VecDeque<Run> = VecDeque::new();
    let mut gates: Option<Arc<SocketGates>> = None;
    let mut count = 0;
    for send in sends {
        let partition = send.partition;
        match &gates {
            Some(gates) if !Arc::ptr_eq(gates, &partition.gates) => {
                return Err(Error::Config(
                    "send_in_order: the partitions belong to different logs".into(),
                ));
            }
            Some(_) => {}
            None => gates = Some(Arc::clone(&partition.gates)),
        }
        let item = partition.send_item(send.offset, send.max_bytes, send.header, send.options);
        // Every entry but the last is followed at once by the next (marked when it comes).
        if let Some(last) = runs.back_mut().and_then(|run| run.items.back_mut()) {
            last.more_follows = true;
        }
        match runs.back_mut() {
            Some(run) if Arc::ptr_eq(&run.shard, &partition.shard) => run.items.push_back(item),
            _ => runs.push_back(Run {
                shard: Arc::clone(&partition.shard),
                start: count,
                items: VecDeque::from([item]),
            }),
        }
        count += 1;
    }
    Ok((runs, gates, count))
}

/// The answer to [`send_in_order`]: what each entry sent, in order.
#[must_use = "the sends stop before the next entry once this is dropped"]
pub struct SendsInOrder {
    socket: Option<PreparedSocket>,
    gates: Option<Arc<SocketGates>>,
    /// Runs not yet asked for.
    runs: VecDeque<Run>,
    /// Runs asked for, oldest first, each with its first entry's place.
    entered: VecDeque<(usize, Pending<Vec<SendInfo>>)>,
    sent: Vec<SendInfo>,
    failed: Option<Error>,
    /// Shared with the runs asked for (see `RunRest::list_failed`).
    list_failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for SendsInOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendsInOrder")
            .field("runs_waiting", &self.runs.len())
            .field("runs_asked", &self.entered.len())
            .field("sent", &self.sent.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl SendsInOrder {
    /// Blocks the calling thread until every entry is sent or one fails. Do not call it on an
    /// async executor's thread; `.await` the future there.
    pub fn wait(self) -> Result<Vec<SendInfo>> {
        crate::pending::block_on(self)
    }

    /// Asks for runs until `RUNS_AHEAD` are asked for and unanswered (or one cannot be).
    fn enter_runs(&mut self) {
        let ahead = self
            .gates
            .as_ref()
            .map_or(1, |gates| RUNS_AHEAD.min(gates.max_waiting()).max(1));
        // Bounded by `ahead`.
        while self.failed.is_none() && self.entered.len() < ahead {
            let Some(run) = self.runs.pop_front() else {
                return;
            };
            let start = run.start;
            match self.enter(run) {
                Ok(pending) => self.entered.push_back((start, pending)),
                Err(e) => self.failed = Some(part_error(start, e)),
            }
        }
    }

    /// Asks `run`'s shard for it through the socket's gate.
    fn enter(&self, mut run: Run) -> Result<Pending<Vec<SendInfo>>> {
        let (Some(socket), Some(gates), Some(first)) =
            (&self.socket, &self.gates, run.items.pop_front())
        else {
            return Err(Error::ShuttingDown);
        };
        let (reply, slot) = reply::channel();
        let request = Request::Send {
            item: first,
            socket: socket.duplicate()?,
            socket_nonblocking: socket.nonblocking,
            gate: gates.ticket(socket.id),
            reply: SendReply::Run(Box::new(RunRest {
                sent: Vec::with_capacity(run.items.len() + 1),
                rest: run.items,
                reply,
                list_failed: Arc::clone(&self.list_failed),
            })),
        };
        gates.dispatch(socket.id, &run.shard, request, slot)
    }
}

/// `e` as the failure of the entry at `index` (a run's error names its entry within the run).
fn part_error(index: usize, e: Error) -> Error {
    match e {
        Error::SendPart {
            index: within,
            source,
        } => Error::SendPart {
            index: index + within,
            source,
        },
        e => Error::SendPart {
            index,
            source: Box::new(e),
        },
    }
}

// `SendsInOrder` holds no self-references: moving it is always fine.
impl Unpin for SendsInOrder {}

impl Future for SendsInOrder {
    type Output = Result<Vec<SendInfo>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Bounded: each pass takes one run's answer, or returns.
        loop {
            let Some((start, oldest)) = this.entered.front_mut() else {
                if let Some(e) = this.failed.take() {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(std::mem::take(&mut this.sent)));
            };
            let start = *start;
            match Pin::new(oldest).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(sent)) => {
                    this.entered.pop_front();
                    this.sent.extend(sent);
                    this.enter_runs();
                }
                Poll::Ready(Err(e)) => {
                    // The runs after it stop: they are dropped unanswered or never asked for.
                    this.entered.clear();
                    this.runs.clear();
                    return Poll::Ready(Err(part_error(start, e)));
                }
            }
        }
    }
}
