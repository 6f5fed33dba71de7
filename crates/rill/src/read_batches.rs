//! [`ReadBatches`]: whole batches read from a partition, as a read (on the caller's thread or
//! the shard's) answers them.

use bytes::Bytes;
use rill_segment::Offsets;
use rill_segment::batch;
use rill_uring::ReadBuf;

/// Whole batches read from a partition.
///
/// The bytes live in a read buffer (a registered one on the io_uring driver) that returns to
/// its pool when this value, or the [`Bytes`] made from it, drops.
#[derive(Debug)]
pub struct ReadBatches {
    pub(crate) buf: Option<ReadBuf>,
    /// Where the next read starts (after the last batch returned).
    pub next_offset: i64,
    /// The durable offset (a single node's high watermark) when the read was made.
    pub high_watermark: i64,
    /// The end of the written log when the read was made.
    pub log_end_offset: i64,
    /// The first offset of the log when the read was made.
    pub log_start_offset: i64,
}

impl ReadBatches {
    /// The batches in `buf` (`None` at the end of the log), the next read's offset, and the
    /// log's offsets as of the read.
    pub(crate) fn new(buf: Option<ReadBuf>, next_offset: i64, offsets: Offsets) -> Self {
        Self {
            buf,
            next_offset,
            high_watermark: offsets.durable,
            log_end_offset: offsets.log_end,
            log_start_offset: offsets.log_start,
        }
    }

    /// The batches, back to back, as stored (Kafka RecordBatch v2).
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }

    /// Whether no batch was returned (the read was at the end of the log).
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// The batches as [`Bytes`], without copying.
    pub fn into_bytes(self) -> Bytes {
        self.buf.map(ReadBuf::into_bytes).unwrap_or_default()
    }

    /// The owned buffer guard, if any batch was returned.
    pub fn into_buf(self) -> Option<ReadBuf> {
        self.buf
    }

    /// Iterates over the batches (each a whole stored batch, CRC-checked by the read).
    pub fn batches(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.bytes();
        std::iter::from_fn(move || {
            let header = batch::BatchHeader::parse(rest).ok()?;
            let len = usize::try_from(header.total_bytes()).ok()?.min(rest.len());
            let (one, tail) = rest.split_at(len);
            rest = tail;
            Some(one)
        })
    }
}

crate::reply::pooled!(ReadBatches);
