//! The records of a compressed batch, checked as they come out of the decoder (Kafka's four
//! codecs: gzip, snappy, lz4, zstd), so a producer's `maxTimestamp`, record count and offset
//! deltas are verified for compressed batches as for plain ones.
//!
//! Bounded: the decompressed records may total at most [`MAX_DECOMPRESSION_RATIO`] times the
//! batch limit, and only one record is held at a time (gzip, lz4 and zstd stream; a snappy
//! block is decompressed whole, its declared length checked first). The crates: `flate2` (its
//! pure-Rust `miniz_oxide` backend), `snap`, `lz4_flex` (frame format) and `zstd` (the
//! reference library): each maintained and the common choice for its codec in Rust.

use super::RecordError;
use super::record::{Summary, check_record};
use super::varint::get_varint;
use super::{BatchError, BatchHeader, Compression, HEADER_BYTES};
use std::cell::RefCell;
use std::io::{self, Read};

/// How many times the batch limit a compressed batch's records may decompress to. Past it the
/// batch is refused ([`BatchError::DecompressedTooLarge`]): a small batch of zeros must not make
/// the engine decompress gigabytes.
pub const MAX_DECOMPRESSION_RATIO: usize = 64;
/// A reused record buffer larger than this is freed after use, so one large batch does not
/// keep its memory on the thread.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;
/// Bytes of decompressed output read from the decoder at a time.
const READ_BLOCK_BYTES: usize = 16 << 10;
/// xerial snappy framing (Kafka's Java client): magic, then version and compatible version.
pub(super) const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
pub(super) const XERIAL_HEADER_BYTES: usize = 16;

thread_local! {
    /// One record at a time, reused across batches on this thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Checks the records of compressed `batch`: count, offset deltas, every record's shape, no
/// trailing bytes; returns their least and greatest timestamps.
pub(super) fn check_compressed_records(
    header: &BatchHeader,
    batch: &[u8],
    max_batch_bytes: usize,
) -> Result<Summary, BatchError> {
    let codec = header
        .attributes
        .compression()
        .ok_or(BatchError::UnknownAttributes(header.attributes.0))?;
    let payload = batch.get(HEADER_BYTES..).unwrap_or(&[]);
    let max_bytes = max_batch_bytes.saturating_mul(MAX_DECOMPRESSION_RATIO);
    let mut snappy_buf = None;
    let reader = decoder(codec, payload, max_bytes, &mut snappy_buf)?;
    // Records are parsed a few bytes at a time: read the decoder's output in blocks.
    let mut limited =
        io::BufReader::with_capacity(READ_BLOCK_BYTES, reader).take(max_bytes as u64 + 1);
    SCRATCH.with_borrow_mut(|scratch| {
        let result = check_stream(header, &mut limited, scratch, codec);
        if scratch.capacity() > KEEP_SCRATCH_BYTES {
            *scratch = Vec::new();
        }
        if limited.limit() == 0 {
            return Err(BatchError::DecompressedTooLarge { max_bytes });
        }
        result
    })
}

/// The whole records section of a stored batch, decompressed (at most `max_bytes`): for
/// rewriting its records (compaction). An uncompressed batch's section is returned as is.
pub fn decompress(
    header: &BatchHeader,
    batch: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let codec = header
        .attributes
        .compression()
        .ok_or(BatchError::UnknownAttributes(header.attributes.0))?;
    let payload = batch.get(HEADER_BYTES..).unwrap_or(&[]);
    let mut snappy = None;
    let reader = decoder(codec, payload, max_bytes, &mut snappy)?;
    let mut out = Vec::new();
    reader
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompress {
            codec,
            detail: e.to_string(),
        })?;
    if out.len() > max_bytes {
        return Err(BatchError::DecompressedTooLarge { max_bytes });
    }
    Ok(out)
}

/// A reader of `codec`'s decompressed output of `payload`. A snappy payload is decompressed
/// whole into `snappy_buf` (its declared length checked against `max_bytes` first).
fn decoder<'a>(
    codec: Compression,
    payload: &'a [u8],
    max_bytes: usize,
    snappy_buf: &'a mut Option<Vec<u8>>,
) -> Result<Box<dyn Read + 'a>, BatchError> {
    let corrupt = |e: io::Error| BatchError::Decompress {
        codec,
        detail: e.to_string(),
    };
    Ok(match codec {
        Compression::None => Box::new(payload),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(payload)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(payload)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(payload).map_err(corrupt)?)
        }
        Compression::Snappy => {
            let buf = snappy_decompress(payload, max_bytes).map_err(|e| match e {
                SnappyError::TooLarge => BatchError::DecompressedTooLarge { max_bytes },
                SnappyError::Corrupt(detail) => BatchError::Decompress { codec, detail },
            })?;
            Box::new(&snappy_buf.insert(buf)[..])
        }
    })
}

/// Reads `header.records_count` records from `stream`, one at a time into `scratch`.
fn check_stream(
    header: &BatchHeader,
    stream: &mut impl Read,
    scratch: &mut Vec<u8>,
    codec: Compression,
) -> Result<Summary, BatchError> {
    let corrupt = |e: io::Error| BatchError::Decompress {
        codec,
        detail: e.to_string(),
    };
    let mut summary = Summary::new();
    // Bounded by the count, and each record by the decompression limit.
    for index in 0..header.records_count.max(0) {
        scratch.clear();
        let declared = read_length_prefix(stream, scratch).map_err(corrupt)?;
        let Some(declared) = declared else {
            return Err(BatchError::Record {
                index,
                source: RecordError::Truncated,
            });
        };
        // Grown as the bytes arrive, never to the declared length up front: a forged length
        // must not allocate more than the stream (bounded by the caller) holds.
        let start = scratch.len();
        let read = stream
            .by_ref()
            .take(declared as u64)
            .read_to_end(scratch)
            .map_err(corrupt)?;
        if read < declared {
            return Err(BatchError::Record {
                index,
                source: RecordError::Truncated,
            });
        }
        debug_assert_eq!(scratch.len(), start + declared);
        let checked =
            check_record(scratch, 0).map_err(|source| BatchError::Record { index, source })?;
        debug_assert_eq!(checked.next, scratch.len());
        if checked.offset_delta != index {
            return Err(BatchError::RecordOffsetDelta {
                index,
                found: checked.offset_delta,
            });
        }
        summary.add(header.base_timestamp, &checked);
    }
    let mut rest = [0u8; 1];
    match stream.read(&mut rest) {
        Ok(0) => Ok(summary),
        Ok(_) => Err(BatchError::TrailingBytes(1)),
        Err(e) => Err(corrupt(e)),
    }
}

/// Reads a record's length varint byte by byte into `scratch`; `None` at a clean end of
/// stream. Returns the body length it declares.
fn read_length_prefix(stream: &mut impl Read, scratch: &mut Vec<u8>) -> io::Result<Option<usize>> {
    // A varint is at most 5 bytes.
    for _ in 0..5 {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        scratch.push(byte[0]);
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let (length, _) = get_varint(scratch).map_err(|e| invalid(&e.to_string()))?;
    usize::try_from(length)
        .map(Some)
        .map_err(|_| invalid("negative record length"))
}

enum SnappyError {
    TooLarge,
    Corrupt(String),
}

/// Snappy as Kafka clients write it: xerial framing (the Java client: a header, then blocks
/// each with a 4-byte length) or one raw block (librdkafka may write either).
fn snappy_decompress(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, SnappyError> {
    let mut out = Vec::new();
    if input.starts_with(XERIAL_MAGIC) && input.len() >= XERIAL_HEADER_BYTES {
        let mut rest = &input[XERIAL_HEADER_BYTES..];
        // Bounded by the input: each block consumes at least its 4-byte length.
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(SnappyError::Corrupt("truncated block length".into()));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let Some(block) = tail.get(..len) else {
                return Err(SnappyError::Corrupt("truncated block".into()));
            };
            snappy_block(block, max_bytes, &mut out)?;
            rest = &tail[len..];
        }
    } else {
        snappy_block(input, max_bytes, &mut out)?;
    }
    Ok(out)
}

fn snappy_block(block: &[u8], max_bytes: usize, out: &mut Vec<u8>) -> Result<(), SnappyError> {
    let len = snap::raw::decompress_len(block).map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    if out.len().saturating_add(len) > max_bytes {
        return Err(SnappyError::TooLarge);
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, compute_crc, field, validate_for_append};
    use std::io::Write;

    /// Records at 100, 300 and 200 ms, then `extra` more at 150 ms, each holding `value`.
    fn plain_with(extra: usize, value: &[u8]) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for ts in [100, 300, 200]
            .into_iter()
            .chain(std::iter::repeat_n(150, extra))
        {
            b.append(ts, Some(b"k"), Some(value), &[]).unwrap();
        }
        b.build().unwrap()
    }

    fn plain(extra: usize) -> Vec<u8> {
        plain_with(extra, b"a value")
    }

    fn compress(codec: Compression, records: &[u8]) -> Vec<u8> {
        match codec {
            Compression::None => records.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(records).unwrap();
                e.finish().unwrap()
            }
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(records).unwrap(),
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(records).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(records, 1).unwrap(),
        }
    }

    /// `batch` with its records section replaced by `records` compressed with `codec`: the
    /// length, attributes and CRC set to match, as a producer would write it.
    fn with_records(batch: &[u8], codec: Compression, records: &[u8]) -> Vec<u8> {
        let mut out = batch[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&compress(codec, records));
        let length = i32::try_from(out.len() - 12).unwrap();
        out[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        let codec_bits: i16 = match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        out[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&codec_bits.to_be_bytes());
        reseal(&mut out);
        out
    }

    fn reseal(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn compressed_records_are_checked_as_plain_ones_are() {
        let batch = plain(0);
        for codec in CODECS {
            let good = with_records(&batch, codec, &batch[HEADER_BYTES..]);
            let header = validate_for_append(&good, 1 << 20).unwrap();
            assert_eq!(header.max_timestamp, 300, "{codec:?}");
        }
    }

    /// Issue #15 item 3: an understated `maxTimestamp` inside a compressed batch made
    /// `offset_for_timestamp` skip it; it is refused like a plain batch's.
    #[test]
    fn an_understated_max_timestamp_is_refused_in_every_codec() {
        let mut batch = plain(0);
        batch[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8]
            .copy_from_slice(&200i64.to_be_bytes());
        for codec in CODECS {
            let bad = with_records(&batch, codec, &batch[HEADER_BYTES..]);
            assert!(
                matches!(
                    validate_for_append(&bad, 1 << 20),
                    Err(BatchError::MaxTimestampMismatch {
                        declared: 200,
                        computed: 300
                    })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn missing_extra_and_garbled_records_are_refused() {
        let batch = plain(0);
        let records = &batch[HEADER_BYTES..];
        for codec in CODECS {
            let short = with_records(&batch, codec, &records[..records.len() - 3]);
            assert!(matches!(
                validate_for_append(&short, 1 << 20),
                Err(BatchError::Record { index: 2, .. })
            ));
            let mut longer = records.to_vec();
            longer.extend_from_slice(&records[..5]);
            let long = with_records(&batch, codec, &longer);
            assert!(matches!(
                validate_for_append(&long, 1 << 20),
                Err(BatchError::TrailingBytes(_))
            ));
            let mut garbled = with_records(&batch, codec, records);
            let last = garbled.len() - 2;
            garbled[HEADER_BYTES + 1..last].fill(0x5a);
            reseal(&mut garbled);
            assert!(validate_for_append(&garbled, 1 << 20).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn xerial_framed_snappy_is_read() {
        let batch = plain(0);
        let records = &batch[HEADER_BYTES..];
        let (first, second) = records.split_at(records.len() / 2);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for block in [first, second] {
            let block = snap::raw::Encoder::new().compress_vec(block).unwrap();
            framed.extend_from_slice(&u32::try_from(block.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let mut out = batch[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&framed);
        let length = i32::try_from(out.len() - 12).unwrap();
        out[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        out[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&2i16.to_be_bytes());
        reseal(&mut out);
        assert_eq!(
            validate_for_append(&out, 1 << 20).unwrap().max_timestamp,
            300
        );
    }

    /// A record whose length prefix claims far more than the stream holds (1 GiB here) is
    /// reported truncated; its body is read as it arrives, so the claim allocates nothing.
    #[test]
    fn a_forged_record_length_is_truncated_not_allocated() {
        let batch = plain(0);
        // Zig-zag varint of 2^30, then three bytes.
        let forged = [0x80, 0x80, 0x80, 0x80, 0x08, 1, 2, 3];
        for codec in CODECS {
            let bad = with_records(&batch, codec, &forged);
            assert!(
                matches!(
                    validate_for_append(&bad, 1 << 20),
                    Err(BatchError::Record {
                        index: 0,
                        source: RecordError::Truncated
                    })
                ),
                "{codec:?}"
            );
        }
    }

    /// A small batch that decompresses past the bound is refused before it is all read. (Snappy
    /// cannot compress 64 to 1; its declared length is checked before anything is allocated.)
    #[test]
    fn a_decompression_bomb_is_refused() {
        let batch = plain_with(300, &[0u8; 1000]);
        let records = &batch[HEADER_BYTES..];
        let max_batch_bytes = 4096;
        assert!(records.len() > max_batch_bytes * MAX_DECOMPRESSION_RATIO);
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let bomb = with_records(&batch, codec, records);
            assert!(
                bomb.len() < max_batch_bytes,
                "{codec:?}: {} bytes",
                bomb.len()
            );
            assert!(
                matches!(
                    validate_for_append(&bomb, max_batch_bytes),
                    Err(BatchError::DecompressedTooLarge { .. })
                ),
                "{codec:?}"
            );
        }
        // A raw snappy block declaring 1 GiB (varint 0x80 0x80 0x80 0x80 0x04).
        let mut forged = batch[..HEADER_BYTES].to_vec();
        forged.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x04, 0x00]);
        let length = i32::try_from(forged.len() - 12).unwrap();
        forged[field::BATCH_LENGTH..field::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        forged[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&2i16.to_be_bytes());
        reseal(&mut forged);
        assert!(matches!(
            validate_for_append(&forged, max_batch_bytes),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }
}
