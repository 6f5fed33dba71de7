//! Kafka RecordBatch v2, byte for byte (docs/FORMAT.md §1).
//!
//! A batch is a 61-byte big-endian header followed by varint-encoded records. The CRC-32C covers
//! everything from `attributes` to the end, so the engine may rewrite `baseOffset` and
//! `partitionLeaderEpoch` without recomputing it. Compressed batches are stored as they came; on
//! append their records are decompressed and checked as plain ones are (`codec`), then dropped.

mod builder;
mod codec;
mod compact;
mod record;
pub(crate) mod varint;

pub use builder::{BatchBuilder, BuildError};
pub use codec::{MAX_DECOMPRESSION_RATIO, decompress};
pub use compact::{Filtered, compress, empty_batch, filter_batch};
use record::Summary;
pub use record::{Header, HeaderIter, Record, RecordError, RecordIter};

/// Bytes in a v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before the part that `batchLength` counts: `baseOffset` (8) and `batchLength` (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only magic value rill stores.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;

/// Byte offsets of the header fields.
pub mod field {
    /// `baseOffset: i64`, assigned by the engine.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength: i32`, bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch: i32`, assigned by the engine.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic: i8`, always 2.
    pub const MAGIC: usize = 16;
    /// `crc: u32`, CRC-32C of bytes `ATTRIBUTES..`.
    pub const CRC: usize = 17;
    /// `attributes: i16`; the CRC starts here.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta: i32`.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp: i64` (the first record's timestamp).
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp: i64`.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId: i64`.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch: i16`.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence: i32`.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordsCount: i32`.
    pub const RECORDS_COUNT: usize = 57;
}

/// Compression codec named by attribute bits 0–2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Records are stored as they are.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

/// Which time a topic's batches carry (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamps, checked against the clock within the topic's limits.
    #[default]
    CreateTime,
    /// The time of the append: the engine sets the timestamp-type attribute and `maxTimestamp`
    /// ([`stamp_log_append_time`]).
    LogAppendTime,
}

/// The batch `attributes` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes(pub i16);

impl Attributes {
    /// Bits 0–2: compression codec.
    pub const COMPRESSION_MASK: i16 = 0x07;
    /// Bit 3: timestamps are log-append time.
    pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
    /// Bit 4: part of a transaction.
    pub const TRANSACTIONAL: i16 = 0x10;
    /// Bit 5: a control batch (transaction markers).
    pub const CONTROL: i16 = 0x20;
    /// Bit 6: `baseTimestamp` holds the delete horizon (KIP-534).
    pub const DELETE_HORIZON: i16 = 0x40;
    /// Every bit Kafka defines; anything else is rejected.
    pub const KNOWN_BITS: i16 = 0x7f;

    /// The codec, or `None` for the reserved values 5–7.
    pub fn compression(self) -> Option<Compression> {
        match self.0 & Self::COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
    /// Whether the batch is part of a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }
    /// Whether the batch holds control records.
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }
    /// Whether timestamps are log-append time rather than create time.
    pub fn is_log_append_time(self) -> bool {
        self.0 & Self::TIMESTAMP_TYPE_LOG_APPEND != 0
    }
}

/// Why a batch was refused. Each check a broker makes before storing has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The buffer is shorter than a batch header.
    #[error("batch is {len} bytes, shorter than the {HEADER_BYTES}-byte header")]
    ShorterThanHeader {
        /// Bytes available.
        len: usize,
    },
    /// `batchLength` is below the header size or negative.
    #[error("batchLength {batch_length} is below the minimum {MIN_BATCH_LENGTH}")]
    InvalidLength {
        /// The declared `batchLength`.
        batch_length: i32,
    },
    /// The declared length disagrees with the buffer.
    #[error("batch declares {declared} bytes but the buffer holds {actual}")]
    LengthMismatch {
        /// `12 + batchLength`.
        declared: u64,
        /// Bytes in the buffer.
        actual: usize,
    },
    /// The batch exceeds the configured maximum.
    #[error("batch of {bytes} bytes exceeds the maximum of {max_bytes}")]
    TooLarge {
        /// Batch size.
        bytes: usize,
        /// Configured limit.
        max_bytes: usize,
    },
    /// `magic` is not 2.
    #[error("unsupported magic {0} (only v2 batches are stored)")]
    UnsupportedMagic(i8),
    /// Attribute bits outside those Kafka defines, or a reserved codec.
    #[error("unknown attribute bits {0:#06x}")]
    UnknownAttributes(i16),
    /// The stored CRC does not match the bytes.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordsCount` is negative.
    #[error("negative record count {0}")]
    NegativeRecordCount(i32),
    /// `recordsCount` is zero: a producer may not send an empty batch.
    #[error("batch holds no records")]
    EmptyBatch,
    /// `lastOffsetDelta` disagrees with `recordsCount`.
    #[error("lastOffsetDelta {last_offset_delta} does not match {records_count} records")]
    OffsetDeltaMismatch {
        /// `lastOffsetDelta`.
        last_offset_delta: i32,
        /// `recordsCount`.
        records_count: i32,
    },
    /// A record of an uncompressed batch is malformed.
    #[error("record {index}: {source}")]
    Record {
        /// Zero-based record index.
        index: i32,
        /// What is wrong with it.
        source: RecordError,
    },
    /// A record's offset delta is not its position in the batch.
    #[error("record {index} has offset delta {found}, expected {index}")]
    RecordOffsetDelta {
        /// Zero-based record index.
        index: i32,
        /// Its offset delta.
        found: i32,
    },
    /// Bytes follow the last record (for a compressed batch: at least this many, after
    /// decompression).
    #[error("{0} bytes follow the last record")]
    TrailingBytes(usize),
    /// A compressed batch's records do not decompress.
    #[error("records do not decompress ({codec:?}): {detail}")]
    Decompress {
        /// The batch's codec.
        codec: Compression,
        /// What the decoder reported.
        detail: String,
    },
    /// A compressed batch's records decompress to more than `max_bytes`
    /// ([`MAX_DECOMPRESSION_RATIO`] times the batch limit).
    #[error("records decompress to more than {max_bytes} bytes")]
    DecompressedTooLarge {
        /// The bound.
        max_bytes: usize,
    },
    /// The batch's `maxTimestamp` is not the greatest of its records' timestamps. Time
    /// retention and lookups by time trust it.
    #[error("maxTimestamp {declared} is not the records' greatest timestamp {computed}")]
    MaxTimestampMismatch {
        /// The header's `maxTimestamp`.
        declared: i64,
        /// What the records give.
        computed: i64,
    },
    /// The batch's `maxTimestamp` lies further ahead of the clock than
    /// `LogConfig::max_timestamp_ahead_ms` allows.
    #[error("maxTimestamp {max_timestamp} is more than {allowed_ahead_ms} ms ahead of {now_ms}")]
    TimestampAhead {
        /// The header's `maxTimestamp`.
        max_timestamp: i64,
        /// The clock when appended.
        now_ms: i64,
        /// How far ahead is allowed.
        allowed_ahead_ms: i64,
    },
    /// A record's timestamp lies further behind the clock than the topic allows
    /// (`max_timestamp_behind_ms`, Kafka's `message.timestamp.before.max.ms`).
    #[error(
        "a record timestamp {min_timestamp} is more than {allowed_behind_ms} ms behind {now_ms}"
    )]
    TimestampBehind {
        /// The least record timestamp of the batch.
        min_timestamp: i64,
        /// The clock when appended.
        now_ms: i64,
        /// How far behind is allowed.
        allowed_behind_ms: i64,
    },
    /// A record has a null key, and the log is compacted (compaction keeps the last record of
    /// each key; Kafka refuses such a record the same way).
    #[error("a compacted log takes only records with a key")]
    MissingKey,
    /// The batch names a producer (`producerId >= 0`) but no sequence (`baseSequence < 0`):
    /// an idempotent producer numbers every batch (Kafka refuses it the same way).
    #[error("producer {producer_id} sent base sequence {base_sequence}")]
    InvalidSequence {
        /// The batch's producer id.
        producer_id: i64,
        /// Its base sequence.
        base_sequence: i32,
    },
    /// The producer set the log-append-time bit: the broker assigns that type, never the
    /// producer (Kafka refuses it the same way).
    #[error("the producer set the timestamp type to LogAppendTime")]
    LogAppendTimeFromProducer,
    /// The batch is not at the offset the log expects (stored batches only).
    #[error("batch has base offset {found}, expected {expected}")]
    UnexpectedOffset {
        /// Offset the log expected.
        expected: i64,
        /// Offset in the header.
        found: i64,
    },
}

/// A parsed v2 batch header. Parsing checks nothing but the size; see [`validate_for_append`]
/// and [`check_stored`] for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition when it was appended.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C of `attributes..end`.
    pub crc: u32,
    /// Codec and flags.
    pub attributes: Attributes,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the front of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let Some(h) = buf.first_chunk::<HEADER_BYTES>() else {
            return Err(BatchError::ShorterThanHeader { len: buf.len() });
        };
        Ok(Self {
            base_offset: be_i64(h, field::BASE_OFFSET),
            batch_length: be_i32(h, field::BATCH_LENGTH),
            partition_leader_epoch: be_i32(h, field::PARTITION_LEADER_EPOCH),
            magic: h[field::MAGIC] as i8,
            crc: be_i32(h, field::CRC) as u32,
            attributes: Attributes(be_i16(h, field::ATTRIBUTES)),
            last_offset_delta: be_i32(h, field::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(h, field::BASE_TIMESTAMP),
            max_timestamp: be_i64(h, field::MAX_TIMESTAMP),
            producer_id: be_i64(h, field::PRODUCER_ID),
            producer_epoch: be_i16(h, field::PRODUCER_EPOCH),
            base_sequence: be_i32(h, field::BASE_SEQUENCE),
            records_count: be_i32(h, field::RECORDS_COUNT),
        })
    }

    /// Whole size of the batch on disk, `12 + batchLength` (meaningful once the length is checked).
    pub fn total_bytes(&self) -> u64 {
        LOG_OVERHEAD_BYTES as u64 + u64::from(self.batch_length.max(0).cast_unsigned())
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset just after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Checks that hold for every batch rill stores: length, magic, attributes, counts.
    /// Needs only the header, so a scanner can decide how many bytes to read next. A batch
    /// rewritten by compaction may hold fewer records than its offset span (Kafka keeps a
    /// batch's `lastOffsetDelta` when records go), down to none: so stored batches need
    /// `lastOffsetDelta >= recordsCount - 1`, and a producer's
    /// ([`BatchHeader::check_producer_shape`]) exactly `recordsCount - 1`.
    pub fn check_shape(&self) -> Result<(), BatchError> {
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength {
                batch_length: self.batch_length,
            });
        }
        if self.magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(self.magic));
        }
        if self.attributes.0 & !Attributes::KNOWN_BITS != 0
            || self.attributes.compression().is_none()
        {
            return Err(BatchError::UnknownAttributes(self.attributes.0));
        }
        if self.records_count < 0 {
            return Err(BatchError::NegativeRecordCount(self.records_count));
        }
        if self.last_offset_delta < 0
            || i64::from(self.last_offset_delta) < i64::from(self.records_count) - 1
        {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: self.last_offset_delta,
                records_count: self.records_count,
            });
        }
        Ok(())
    }

    /// [`BatchHeader::check_shape`], and the rules of a batch as a producer sends it: at least
    /// one record, and one offset per record (`lastOffsetDelta = recordsCount - 1`).
    pub fn check_producer_shape(&self) -> Result<(), BatchError> {
        self.check_shape()?;
        if self.records_count == 0 {
            return Err(BatchError::EmptyBatch);
        }
        if i64::from(self.last_offset_delta) != i64::from(self.records_count) - 1 {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: self.last_offset_delta,
                records_count: self.records_count,
            });
        }
        Ok(())
    }
}

/// CRC-32C (Castagnoli) over `attributes..end`, as stored in the header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(field::ATTRIBUTES..).unwrap_or(&[]))
}

/// Validates a batch a producer sent, as a broker does before storing it: size, length, magic,
/// attributes, counts, CRC, a create-time timestamp type, every record (bounds, count, offset
/// deltas; a compressed batch's as they come out of its decoder, bounded by
/// [`MAX_DECOMPRESSION_RATIO`] times `max_batch_bytes`), and that `maxTimestamp` is the records'
/// greatest timestamp. Returns the parsed header.
pub fn validate_for_append(
    batch: &[u8],
    max_batch_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    validate_producer_batch(batch, max_batch_bytes).map(|valid| valid.header)
}

/// What [`validate_producer_batch`] found in a valid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The parsed header.
    pub header: BatchHeader,
    /// The least record timestamp (`maxTimestamp` is the greatest): what a limit on how far
    /// behind the clock a timestamp may lie checks.
    pub min_timestamp: i64,
    /// Whether a record has a null key (refused by a compacted log).
    pub keyless: bool,
}

/// [`validate_for_append`], also returning the records' least timestamp.
pub fn validate_producer_batch(
    batch: &[u8],
    max_batch_bytes: usize,
) -> Result<ProducerBatch, BatchError> {
    let header = BatchHeader::parse(batch)?;
    header.check_producer_shape()?;
    check_length(&header, batch.len())?;
    if batch.len() > max_batch_bytes {
        return Err(BatchError::TooLarge {
            bytes: batch.len(),
            max_bytes: max_batch_bytes,
        });
    }
    check_crc(&header, batch)?;
    if header.attributes.is_log_append_time() {
        return Err(BatchError::LogAppendTimeFromProducer);
    }
    if header.producer_id >= 0 && header.base_sequence < 0 && !header.attributes.is_control() {
        return Err(BatchError::InvalidSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    let summary = if header.attributes.compression() == Some(Compression::None) {
        check_records(&header, batch)?
    } else {
        codec::check_compressed_records(&header, batch, max_batch_bytes)?
    };
    if summary.max_timestamp != header.max_timestamp {
        return Err(BatchError::MaxTimestampMismatch {
            declared: header.max_timestamp,
            computed: summary.max_timestamp,
        });
    }
    Ok(ProducerBatch {
        header,
        min_timestamp: summary.min_timestamp,
        keyless: summary.keyless,
    })
}

/// Makes a validated batch's timestamps log-append time, as a broker does for a topic with
/// `message.timestamp.type=LogAppendTime`: sets the timestamp-type attribute and `maxTimestamp`
/// to `now_ms` and recomputes the CRC (both fields are under it). Records keep their own
/// timestamps; readers take `maxTimestamp` for every record of such a batch. Returns the new
/// CRC (`None`, and nothing changed, for a buffer shorter than a header).
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) -> Option<u32> {
    if batch.len() < HEADER_BYTES {
        return None;
    }
    let attributes = i16::from_be_bytes([batch[field::ATTRIBUTES], batch[field::ATTRIBUTES + 1]])
        | Attributes::TIMESTAMP_TYPE_LOG_APPEND;
    batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Some(crc)
}

/// Checks a batch read back from a segment: shape, exact length, CRC, and that it sits at
/// `expected_offset`. Records are not decoded: the CRC covers them.
pub fn check_stored(batch: &[u8], expected_offset: i64) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    header.check_shape()?;
    check_length(&header, batch.len())?;
    if header.base_offset != expected_offset {
        return Err(BatchError::UnexpectedOffset {
            expected: expected_offset,
            found: header.base_offset,
        });
    }
    check_crc(&header, batch)?;
    Ok(header)
}

fn check_length(header: &BatchHeader, len: usize) -> Result<(), BatchError> {
    if header.total_bytes() != len as u64 {
        return Err(BatchError::LengthMismatch {
            declared: header.total_bytes(),
            actual: len,
        });
    }
    Ok(())
}

fn check_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Checks an uncompressed batch's records; returns their least and greatest timestamps.
fn check_records(header: &BatchHeader, batch: &[u8]) -> Result<Summary, BatchError> {
    let records = &batch[HEADER_BYTES..];
    let mut pos = 0;
    let mut summary = Summary::new();
    // Bounded by the records section: each record takes at least one byte or fails.
    for index in 0..header.records_count.max(0) {
        let checked = record::check_record(records, pos)
            .map_err(|source| BatchError::Record { index, source })?;
        if checked.offset_delta != index {
            return Err(BatchError::RecordOffsetDelta {
                index,
                found: checked.offset_delta,
            });
        }
        summary.add(header.base_timestamp, &checked);
        pos = checked.next;
    }
    if records.len() != pos {
        return Err(BatchError::TrailingBytes(records.len() - pos));
    }
    Ok(summary)
}

/// Sets `baseOffset` in place. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(slot) = batch.get_mut(field::BASE_OFFSET..field::BASE_OFFSET + 8) {
        slot.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Sets `partitionLeaderEpoch` in place. The CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    let at = field::PARTITION_LEADER_EPOCH;
    if let Some(slot) = batch.get_mut(at..at + 4) {
        slot.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Iterates the records of an uncompressed batch, borrowing its bytes. Compressed batches yield
/// [`RecordError::Compressed`] once: their records exist only inside the decoder (validation on
/// append reads them there).
pub fn records(batch: &[u8]) -> Result<RecordIter<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    Ok(RecordIter::new(&header, &batch[HEADER_BYTES..]))
}

fn be_i64(h: &[u8; HEADER_BYTES], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(h: &[u8; HEADER_BYTES], at: usize) -> i32 {
    i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

fn be_i16(h: &[u8; HEADER_BYTES], at: usize) -> i16 {
    i16::from_be_bytes([h[at], h[at + 1]])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Records at 100, 300 and 200 ms.
    fn three_records() -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for ts in [100, 300, 200] {
            b.append(ts, None, Some(b"v"), &[]).unwrap();
        }
        b.build().unwrap()
    }

    fn set_i64(batch: &mut [u8], at: usize, value: i64) {
        batch[at..at + 8].copy_from_slice(&value.to_be_bytes());
    }

    fn reseal(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Issue #15, item 3: an overstated `maxTimestamp` pinned a segment against time retention,
    /// an understated one made lookups by time skip the batch.
    #[test]
    fn max_timestamp_must_be_the_records_greatest() {
        let good = three_records();
        assert_eq!(
            validate_for_append(&good, 1 << 20).unwrap().max_timestamp,
            300
        );
        for (declared, name) in [(i64::MAX, "overstated"), (200, "understated")] {
            let mut bad = good.clone();
            set_i64(&mut bad, field::MAX_TIMESTAMP, declared);
            reseal(&mut bad);
            assert_eq!(
                validate_for_append(&bad, 1 << 20),
                Err(BatchError::MaxTimestampMismatch {
                    declared,
                    computed: 300
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_producer_cannot_set_log_append_time() {
        let mut batch = three_records();
        let attributes =
            i16::from_be_bytes([batch[field::ATTRIBUTES], batch[field::ATTRIBUTES + 1]])
                | Attributes::TIMESTAMP_TYPE_LOG_APPEND;
        batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        reseal(&mut batch);
        assert_eq!(
            validate_for_append(&batch, 1 << 20),
            Err(BatchError::LogAppendTimeFromProducer)
        );
    }
}
