//! Encodes records into a v2 batch in one buffer: no per-record allocation.

use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use super::{Attributes, HEADER_BYTES, Header, LOG_OVERHEAD_BYTES, MAGIC_V2, field};

/// Why a batch could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Kafka has no empty batches.
    #[error("a batch needs at least one record")]
    Empty,
    /// A key, value, header or record is larger than a varint length can say.
    #[error("field of {0} bytes is too large for a record")]
    FieldTooLarge(usize),
    /// More records than `recordsCount` can hold.
    #[error("too many records for one batch")]
    TooManyRecords,
    /// The batch would exceed `i32::MAX` bytes.
    #[error("batch would exceed the largest possible batch length")]
    BatchTooLarge,
}

/// Builds an uncompressed RecordBatch v2.
///
/// Offsets are contiguous (record *i* has offset delta *i*); the base timestamp is the first
/// record's, and `maxTimestamp` the largest. Header fields default to what Kafka's Java producer
/// writes (`partitionLeaderEpoch`, producer id, epoch and base sequence all -1).
///
/// ```
/// use rill_format::batch::{self, BatchBuilder, Header};
/// let mut builder = BatchBuilder::new();
/// builder.append(1_700_000_000_000, Some(b"key"), Some(b"value"), &[])?;
/// builder.append(1_700_000_000_001, None, Some(b"v2"), &[Header { key: b"h", value: None }])?;
/// let bytes = builder.build()?;
/// let header = batch::validate_for_append(&bytes, 1 << 20)?;
/// assert_eq!(header.records_count, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// An empty builder whose buffer starts with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_BYTES));
        buf.resize(HEADER_BYTES, 0);
        Self {
            buf,
            count: 0,
            first_timestamp: 0,
            max_timestamp: 0,
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }

    /// Sets `baseOffset` (the log assigns its own on append).
    pub fn base_offset(&mut self, base_offset: i64) -> &mut Self {
        self.base_offset = base_offset;
        self
    }

    /// Sets `partitionLeaderEpoch`.
    pub fn partition_leader_epoch(&mut self, epoch: i32) -> &mut Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the idempotent-producer fields.
    pub fn producer(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> &mut Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional.
    pub fn transactional(&mut self, transactional: bool) -> &mut Self {
        if transactional {
            self.attributes |= Attributes::TRANSACTIONAL;
        } else {
            self.attributes &= !Attributes::TRANSACTIONAL;
        }
        self
    }

    /// Marks the batch a control batch (its records are control records: a key of version
    /// and type, which Kafka's consumers skip unless they know the type).
    pub fn control(&mut self, control: bool) -> &mut Self {
        if control {
            self.attributes |= Attributes::CONTROL;
        } else {
            self.attributes &= !Attributes::CONTROL;
        }
        self
    }

    /// Number of records appended so far.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Bytes the batch would take if built now.
    pub fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record. `headers` keys must not be null (they cannot be, by type).
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), BuildError> {
        if self.count == i32::MAX {
            return Err(BuildError::TooManyRecords);
        }
        if self.count == 0 {
            self.first_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        let timestamp_delta = timestamp_ms.wrapping_sub(self.first_timestamp);
        let offset_delta = self.count;
        let body_len = record_body_len(timestamp_delta, offset_delta, key, value, headers)?;
        let body_len_i32 =
            i32::try_from(body_len).map_err(|_| BuildError::FieldTooLarge(body_len))?;
        let new_len = self.buf.len() + varint_len(body_len_i32) + body_len;
        if new_len - LOG_OVERHEAD_BYTES > i32::MAX as usize {
            return Err(BuildError::BatchTooLarge);
        }
        self.buf.reserve(new_len - self.buf.len());
        put_varint(&mut self.buf, body_len_i32);
        self.buf.push(0); // record attributes: unused
        put_varlong(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_nullable(&mut self.buf, key);
        put_nullable(&mut self.buf, value);
        put_varint(&mut self.buf, headers.len() as i32);
        for header in headers {
            put_nullable(&mut self.buf, Some(header.key));
            put_nullable(&mut self.buf, header.value);
        }
        debug_assert_eq!(self.buf.len(), new_len);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        Ok(())
    }

    /// Writes the header and CRC and returns the finished batch. The builder keeps its records;
    /// call [`BatchBuilder::clear`] to start the next batch in the same buffer.
    pub fn finish(&mut self) -> Result<&[u8], BuildError> {
        if self.count == 0 {
            return Err(BuildError::Empty);
        }
        let batch_length = (self.buf.len() - LOG_OVERHEAD_BYTES) as i32;
        let h = &mut self.buf[..HEADER_BYTES];
        h[field::BASE_OFFSET..][..8].copy_from_slice(&self.base_offset.to_be_bytes());
        h[field::BATCH_LENGTH..][..4].copy_from_slice(&batch_length.to_be_bytes());
        h[field::PARTITION_LEADER_EPOCH..][..4]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[field::MAGIC] = MAGIC_V2 as u8;
        h[field::ATTRIBUTES..][..2].copy_from_slice(&self.attributes.to_be_bytes());
        h[field::LAST_OFFSET_DELTA..][..4].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[field::BASE_TIMESTAMP..][..8].copy_from_slice(&self.first_timestamp.to_be_bytes());
        h[field::MAX_TIMESTAMP..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[field::PRODUCER_ID..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        h[field::PRODUCER_EPOCH..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[field::BASE_SEQUENCE..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[field::RECORDS_COUNT..][..4].copy_from_slice(&self.count.to_be_bytes());
        let crc = super::compute_crc(&self.buf);
        self.buf[field::CRC..][..4].copy_from_slice(&crc.to_be_bytes());
        Ok(&self.buf)
    }

    /// Finishes the batch and returns its bytes.
    pub fn build(mut self) -> Result<Vec<u8>, BuildError> {
        self.finish()?;
        Ok(self.buf)
    }

    /// Drops the records, keeping the buffer and the header settings.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_BYTES);
        self.buf[..HEADER_BYTES].fill(0);
        self.count = 0;
    }
}

fn record_body_len(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<usize, BuildError> {
    let header_count =
        i32::try_from(headers.len()).map_err(|_| BuildError::FieldTooLarge(headers.len()))?;
    let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    len += nullable_len(key)? + nullable_len(value)? + varint_len(header_count);
    for header in headers {
        len += nullable_len(Some(header.key))? + nullable_len(header.value)?;
    }
    Ok(len)
}

fn nullable_len(bytes: Option<&[u8]>) -> Result<usize, BuildError> {
    match bytes {
        None => Ok(varint_len(-1)),
        Some(b) => {
            let n = i32::try_from(b.len()).map_err(|_| BuildError::FieldTooLarge(b.len()))?;
            Ok(varint_len(n) + b.len())
        }
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_control_batch_says_so_and_stays_valid() {
        let mut b = BatchBuilder::new();
        b.control(true).partition_leader_epoch(9);
        b.append(-1, Some(&[0, 0, 0, 100]), None, &[]).unwrap();
        let bytes = b.build().unwrap();
        let header = crate::batch::validate_for_append(&bytes, 1 << 20).unwrap();
        assert!(header.attributes.is_control());
        assert!(!header.attributes.is_transactional());
        assert_eq!(header.partition_leader_epoch, 9);
    }
}
