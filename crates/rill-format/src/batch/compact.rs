//! Rewriting a stored batch for compaction (I/O-free): keep the records a predicate keeps,
//! as Kafka's log cleaner does (`MemoryRecords.filterTo`).
//!
//! A batch whose records are all kept is left as it is. A rewritten batch keeps its header
//! fields (base offset, `lastOffsetDelta`, base timestamp, producer fields, attributes), so its
//! offset span and every kept record's offset and timestamp stay what they were; kept records
//! are copied byte for byte (their deltas are relative to the unchanged base). Its record count,
//! length, `maxTimestamp` (create time: the kept records' greatest; log-append time: kept) and
//! CRC are new; a compressed batch is decompressed and its kept records compressed again with
//! the same codec. A batch with no record kept is dropped: the cleaner covers a run of such
//! batches with one empty batch ([`empty_batch`]) so that batches still follow each other
//! without an offset gap.

use super::codec::{XERIAL_HEADER_BYTES, XERIAL_MAGIC, decompress};
use super::{
    Attributes, BatchError, BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2,
    Record, RecordIter, compute_crc, field,
};
use std::io::Write;

/// What [`filter_batch`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// Every record kept (or a control batch): the batch stays as it is; nothing was written
    /// to the output.
    Unchanged,
    /// Some records kept: the rewritten batch was appended to the output.
    Rewritten,
    /// No record kept: nothing was written.
    Removed,
}

/// Bytes of uncompressed input per xerial snappy block (the Java client's default).
const SNAPPY_BLOCK_BYTES: usize = 32 << 10;

/// Keeps the records of the stored `batch` for which `keep` answers true (see the module
/// documentation); a rewritten batch is appended to `out`. A compressed batch may decompress to
/// at most `max_decompressed_bytes`.
pub fn filter_batch(
    batch: &[u8],
    max_decompressed_bytes: usize,
    keep: &mut dyn FnMut(&Record<'_>) -> bool,
    out: &mut Vec<u8>,
) -> Result<Filtered, BatchError> {
    let header = BatchHeader::parse(batch)?;
    header.check_shape()?;
    if header.attributes.is_control() || header.records_count == 0 {
        return Ok(Filtered::Unchanged);
    }
    let codec = header
        .attributes
        .compression()
        .ok_or(BatchError::UnknownAttributes(header.attributes.0))?;
    let decompressed;
    let section: &[u8] = if codec == Compression::None {
        &batch[HEADER_BYTES..]
    } else {
        decompressed = decompress(&header, batch, max_decompressed_bytes)?;
        &decompressed
    };
    let mut kept = Vec::new();
    let mut kept_count = 0i32;
    let mut max_timestamp = i64::MIN;
    let mut records = RecordIter::new_uncompressed(&header, section);
    // Bounded by the record count.
    loop {
        let start = section.len() - records.remaining_bytes();
        let Some(record) = records.next() else { break };
        let record = record.map_err(|source| BatchError::Record {
            index: kept_count,
            source,
        })?;
        let end = section.len() - records.remaining_bytes();
        if keep(&record) {
            kept.extend_from_slice(&section[start..end]);
            kept_count += 1;
            max_timestamp = max_timestamp.max(record.timestamp);
        }
    }
    if kept_count == header.records_count {
        return Ok(Filtered::Unchanged);
    }
    if kept_count == 0 {
        return Ok(Filtered::Removed);
    }
    let payload = if codec == Compression::None {
        kept
    } else {
        compress(codec, &kept)?
    };
    let start = out.len();
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    out.extend_from_slice(&payload);
    let rewritten = &mut out[start..];
    let batch_length = i32::try_from(rewritten.len() - LOG_OVERHEAD_BYTES)
        .map_err(|_| BatchError::InvalidLength { batch_length: -1 })?;
    put(rewritten, field::BATCH_LENGTH, &batch_length.to_be_bytes());
    put(rewritten, field::RECORDS_COUNT, &kept_count.to_be_bytes());
    if !header.attributes.is_log_append_time() {
        put(
            rewritten,
            field::MAX_TIMESTAMP,
            &max_timestamp.to_be_bytes(),
        );
    }
    let crc = compute_crc(rewritten);
    put(rewritten, field::CRC, &crc.to_be_bytes());
    Ok(Filtered::Rewritten)
}

/// A batch of no records covering offsets `base_offset..=last_offset` (the span of batches
/// compaction emptied), so the batches around it still follow each other. No producer, no
/// compression, create time; both timestamps `max_timestamp` (the emptied batches' greatest,
/// so retention by time treats the span as it did).
pub fn empty_batch(
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    partition_leader_epoch: i32,
) -> Result<[u8; HEADER_BYTES], BatchError> {
    let last_offset_delta = i32::try_from(last_offset - base_offset)
        .ok()
        .filter(|d| *d >= 0)
        .ok_or(BatchError::OffsetDeltaMismatch {
            last_offset_delta: -1,
            records_count: 0,
        })?;
    let mut b = [0u8; HEADER_BYTES];
    put(&mut b, field::BASE_OFFSET, &base_offset.to_be_bytes());
    let length = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    put(&mut b, field::BATCH_LENGTH, &length.to_be_bytes());
    put(
        &mut b,
        field::PARTITION_LEADER_EPOCH,
        &partition_leader_epoch.to_be_bytes(),
    );
    b[field::MAGIC] = MAGIC_V2 as u8;
    put(&mut b, field::ATTRIBUTES, &Attributes(0).0.to_be_bytes());
    put(
        &mut b,
        field::LAST_OFFSET_DELTA,
        &last_offset_delta.to_be_bytes(),
    );
    put(&mut b, field::BASE_TIMESTAMP, &max_timestamp.to_be_bytes());
    put(&mut b, field::MAX_TIMESTAMP, &max_timestamp.to_be_bytes());
    put(&mut b, field::PRODUCER_ID, &(-1i64).to_be_bytes());
    put(&mut b, field::PRODUCER_EPOCH, &(-1i16).to_be_bytes());
    put(&mut b, field::BASE_SEQUENCE, &(-1i32).to_be_bytes());
    put(&mut b, field::RECORDS_COUNT, &0i32.to_be_bytes());
    let crc = compute_crc(&b);
    put(&mut b, field::CRC, &crc.to_be_bytes());
    Ok(b)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `records` compressed with `codec` as Kafka's clients write it: gzip, snappy in xerial
/// framing (the Java client's; every client reads it), LZ4 frame (independent blocks), zstd.
pub fn compress(codec: Compression, records: &[u8]) -> Result<Vec<u8>, BatchError> {
    let failed = |e: std::io::Error| BatchError::Decompress {
        codec,
        detail: format!("compressing: {e}"),
    };
    match codec {
        Compression::None => Ok(records.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(records).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + records.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(SNAPPY_BLOCK_BYTES) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| failed(std::io::Error::other(e)))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(records).map_err(failed)?;
            encoder
                .finish()
                .map_err(|e| failed(std::io::Error::other(e)))
        }
        Compression::Zstd => zstd::encode_all(records, 3).map_err(failed),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::batch::{BatchBuilder, check_stored, records};

    fn plain(keys: &[&str]) -> Vec<u8> {
        let mut builder = BatchBuilder::new();
        builder.base_offset(100);
        for (i, key) in keys.iter().enumerate() {
            builder
                .append(1000 + i as i64, Some(key.as_bytes()), Some(b"v"), &[])
                .unwrap();
        }
        builder.build().unwrap()
    }

    fn with_codec(batch: &[u8], codec: Compression, attribute: i16) -> Vec<u8> {
        let header = BatchHeader::parse(batch).unwrap();
        let section = compress(codec, &batch[HEADER_BYTES..]).unwrap();
        let mut out = batch[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&section);
        let length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
        put(&mut out, field::BATCH_LENGTH, &length.to_be_bytes());
        put(
            &mut out,
            field::ATTRIBUTES,
            &(header.attributes.0 | attribute).to_be_bytes(),
        );
        let crc = compute_crc(&out);
        put(&mut out, field::CRC, &crc.to_be_bytes());
        out
    }

    fn keys_of(batch: &[u8], max: usize) -> Vec<(i64, String)> {
        let header = BatchHeader::parse(batch).unwrap();
        let section = decompress(&header, batch, max).unwrap();
        RecordIter::new_uncompressed(&header, &section)
            .map(|r| {
                let r = r.unwrap();
                (
                    r.offset,
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn kept_records_keep_their_offsets_in_every_codec() {
        let original = plain(&["a", "b", "c", "d"]);
        for (codec, bit) in [
            (Compression::None, 0),
            (Compression::Gzip, 1),
            (Compression::Snappy, 2),
            (Compression::Lz4, 3),
            (Compression::Zstd, 4),
        ] {
            let batch = with_codec(&original, codec, bit);
            check_stored(&batch, 100).unwrap();
            let mut out = Vec::new();
            let mut keep = |r: &Record<'_>| r.key != Some(b"b") && r.key != Some(b"d");
            let filtered = filter_batch(&batch, 1 << 20, &mut keep, &mut out).unwrap();
            assert_eq!(filtered, Filtered::Rewritten, "{codec:?}");
            let header = check_stored(&out, 100).unwrap();
            assert_eq!(header.records_count, 2);
            assert_eq!(header.last_offset_delta, 3, "the offset span is kept");
            assert_eq!(header.max_timestamp, 1002, "the kept records' greatest");
            assert_eq!(header.attributes.compression(), Some(codec));
            assert_eq!(
                keys_of(&out, 1 << 20),
                vec![(100, "a".to_owned()), (102, "c".to_owned())]
            );
            let mut all = |_: &Record<'_>| true;
            assert_eq!(
                filter_batch(&batch, 1 << 20, &mut all, &mut Vec::new()).unwrap(),
                Filtered::Unchanged
            );
            let mut none = |_: &Record<'_>| false;
            assert_eq!(
                filter_batch(&batch, 1 << 20, &mut none, &mut Vec::new()).unwrap(),
                Filtered::Removed
            );
        }
    }

    #[test]
    fn an_empty_batch_spans_the_offsets_it_replaces() {
        let b = empty_batch(10, 19, 5_000, 3).unwrap();
        let header = check_stored(&b, 10).unwrap();
        assert_eq!(header.records_count, 0);
        assert_eq!(header.next_offset(), 20);
        assert_eq!(header.partition_leader_epoch, 3);
        assert_eq!(records(&b).unwrap().count(), 0);
        assert!(empty_batch(10, 9, 0, 0).is_err());
        // A producer's rules refuse such a batch: only compaction writes it.
        assert_eq!(header.check_producer_shape(), Err(BatchError::EmptyBatch));
    }
}
