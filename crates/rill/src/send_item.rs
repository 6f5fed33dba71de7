//! What a send is, as plain data: the types a caller sees ([`SendHeader`], [`SendRange`],
//! [`SendOptions`], [`SendInfo`]), the item a shard runs ([`SendItem`]) and who it answers
//! ([`SendReply`]).

use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::shared::PartitionShared;
use bytes::Bytes;
use rill_segment::partition::ReadLimit;
use rill_send::SendStrategy;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a send found to ship, given to a [`SendHeader::build`] closure so that the header can
/// frame exactly these bytes (a Kafka fetch response carries the records' length and the high
/// watermark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRange {
    /// The offset asked for.
    pub offset: i64,
    /// Bytes of whole batches that follow the header (0 at the end of the log).
    pub batch_bytes: u64,
    /// Where the next fetch starts (after the last batch sent).
    pub next_offset: i64,
    /// The durable offset (a single node's high watermark).
    pub high_watermark: i64,
    /// The first offset of the log.
    pub log_start_offset: i64,
    /// The end of the written log.
    pub log_end_offset: i64,
}

type BuildHeader = Box<dyn FnOnce(&SendRange) -> Bytes + Send>;

/// Bytes written to the socket before the batches.
#[derive(Default)]
pub enum SendHeader {
    /// No header: only the batches.
    #[default]
    None,
    /// These bytes.
    Bytes(Bytes),
    /// Bytes made from the located range, on the shard thread, just before sending. Keep it
    /// short; a panic in it fails the send (the shard survives).
    Build(BuildHeader),
}

impl SendHeader {
    /// A header made from the located range (see [`SendRange`]).
    pub fn build(f: impl FnOnce(&SendRange) -> Bytes + Send + 'static) -> Self {
        Self::Build(Box::new(f))
    }

    /// The header bytes for `range`; `None` if the builder panicked.
    pub(crate) fn resolve(self, range: &SendRange) -> Option<Bytes> {
        match self {
            Self::None => Some(Bytes::new()),
            Self::Bytes(bytes) => Some(bytes),
            Self::Build(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(range))).ok()
            }
        }
    }
}

impl fmt::Debug for SendHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bytes(b) => f.debug_tuple("Bytes").field(&b.len()).finish(),
            Self::Build(_) => f.write_str("Build(..)"),
        }
    }
}

impl From<Bytes> for SendHeader {
    fn from(bytes: Bytes) -> Self {
        Self::Bytes(bytes)
    }
}

impl From<Vec<u8>> for SendHeader {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes.into())
    }
}

impl From<&'static [u8]> for SendHeader {
    fn from(bytes: &'static [u8]) -> Self {
        Self::Bytes(Bytes::from_static(bytes))
    }
}

impl From<Option<Bytes>> for SendHeader {
    fn from(bytes: Option<Bytes>) -> Self {
        bytes.map_or(Self::None, Self::Bytes)
    }
}

/// Choices of one send; the defaults come from the [`crate::Config`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// How bytes move (default: `Config::send.strategy`, except that a splice of fewer bytes
    /// than `Config::send.copy_below_bytes` copies; see `SendConfig::strategy_for`).
    pub strategy: Option<SendStrategy>,
    /// How far the send sees: written, or only durable data (default: `Config::read_limit`).
    pub limit: Option<ReadLimit>,
    /// Send exactly the range a [`crate::Partition::locate`] returned: its `batch_bytes`.
    /// `max_bytes` is then ignored, and a log that no longer holds a range of this length at
    /// the offset (truncated or trimmed since) fails the send with
    /// [`crate::Error::RangeChanged`] before anything is written. A service that frames
    /// several partitions in one response needs this: the frame's length is computed from
    /// the located ranges before the first byte goes out.
    pub exact_bytes: Option<u64>,
}

/// The result of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendInfo {
    /// Bytes written to the socket: header and batches.
    pub bytes_sent: u64,
    /// Bytes of whole batches among them.
    pub batch_bytes: u64,
    /// Where the next fetch starts.
    pub next_offset: i64,
    /// The durable offset when the range was located.
    pub high_watermark: i64,
    /// The first offset of the log then.
    pub log_start_offset: i64,
    /// The end of the written log then.
    pub log_end_offset: i64,
}

/// One partition's send as its shard runs it: where to start, how much, and the header.
#[derive(Debug)]
pub(crate) struct SendItem {
    pub(crate) part: Arc<PartitionShared>,
    pub(crate) offset: i64,
    pub(crate) max_bytes: u64,
    pub(crate) limit: ReadLimit,
    /// `None`: the configured strategy for the located size (`SendConfig::strategy_for`).
    pub(crate) strategy: Option<SendStrategy>,
    pub(crate) header: SendHeader,
    /// Fail with `RangeChanged` unless the located batches are exactly this long.
    pub(crate) exact_bytes: Option<u64>,
    /// Another send to the socket follows at once (`SendJob::more_follows`).
    pub(crate) more_follows: bool,
}

/// Who a send's request answers.
#[derive(Debug)]
pub(crate) enum SendReply {
    /// A single send ([`crate::Partition::send`]).
    One(Reply<SendInfo>),
    /// A run of [`crate::send_in_order`]: consecutive sends on one shard, answered together.
    Run(Box<RunRest>),
}

/// What is left of a run while one of its items is sent.
#[derive(Debug)]
pub(crate) struct RunRest {
    /// The items after the current one, in order.
    pub(crate) rest: VecDeque<SendItem>,
    /// What the items before the current one sent.
    pub(crate) sent: Vec<SendInfo>,
    pub(crate) reply: Reply<Vec<SendInfo>>,
    /// Set when a run of the list failed, before its gate opens: the list's later runs, queued
    /// behind it at the gate, then send nothing.
    pub(crate) list_failed: Arc<AtomicBool>,
}

impl SendReply {
    /// Whether the caller gave up: nothing more should go to the socket.
    pub(crate) fn is_abandoned(&self) -> bool {
        match self {
            Self::One(reply) => reply.is_abandoned(),
            Self::Run(run) => run.reply.is_abandoned() || run.list_failed.load(Ordering::SeqCst),
        }
    }

    /// The current item failed: a run's list stops (see [`RunRest::list_failed`]). Call it
    /// before the gate opens.
    pub(crate) fn stop_list(&self) {
        if let Self::Run(run) = self {
            run.list_failed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether an item follows the current one.
    pub(crate) fn has_more(&self) -> bool {
        matches!(self, Self::Run(run) if !run.rest.is_empty())
    }

    /// Answers with the current item's result (the last item's, or a failure, for a run). A
    /// run's error names the failed item by its place in the run.
    pub(crate) fn answer(self, result: Result<SendInfo>) {
        match self {
            Self::One(reply) => reply.send(result),
            Self::Run(run) => {
                let RunRest {
                    mut sent, reply, ..
                } = *run;
                let result = match result {
                    Ok(info) => {
                        sent.push(info);
                        Ok(sent)
                    }
                    Err(e) => Err(Error::SendPart {
                        index: sent.len(),
                        source: Box::new(e),
                    }),
                };
                reply.send(result);
            }
        }
    }
}

crate::reply::pooled!(SendInfo, Vec<SendInfo>);
