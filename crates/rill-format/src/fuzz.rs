//! Fuzz-target functions of the decoders (feature `fuzzing`): each takes arbitrary bytes, must
//! never panic except on a violated property, and checks what a user relies on. `fuzz/` runs
//! them under libFuzzer; `tests/tests/fuzz_corpus.rs` runs them over the committed corpus in CI.
//! (Recovery over arbitrary segment bytes is `rill_segment::fuzz::recovery`.)

#![allow(
    clippy::missing_panics_doc,
    clippy::panic,
    reason = "fuzz targets panic exactly when a property fails"
)]

use crate::batch::{self, BatchHeader};
use crate::checkpoint::Checkpoint;
use crate::index::{OffsetIndex, SegmentBounds, TimeIndex};
use crate::producer_snapshot::ProducerSnapshot;
use crate::topic_config::TopicConfigRecord;
use crate::watermark;

/// Validation of a producer's batch: never panics; an accepted batch decodes fully, passes the
/// stored-batch check, and stays valid when the engine rewrites its offset and leader epoch.
pub fn batch_validate(data: &[u8]) {
    let Ok(header) = batch::validate_for_append(data, 1 << 20) else {
        // Whatever is wrong, the lighter stored-batch check must not panic either.
        let _ = batch::check_stored(data, 0);
        return;
    };
    assert_eq!(header.total_bytes(), data.len() as u64);
    let records = batch::records(data);
    assert!(records.is_ok(), "a validated batch has whole records");
    for record in records.into_iter().flatten() {
        assert!(
            matches!(record, Ok(_) | Err(batch::RecordError::Compressed(_))),
            "a validated batch's records decode: {record:?}"
        );
        for header in record.iter().flat_map(batch::Record::headers) {
            assert!(header.is_ok(), "headers of a validated record decode");
        }
    }
    let mut stored = data.to_vec();
    batch::set_base_offset(&mut stored, 1_000_000);
    batch::set_partition_leader_epoch(&mut stored, 42);
    assert!(
        batch::check_stored(&stored, 1_000_000).is_ok(),
        "offset and epoch are outside the CRC"
    );
    assert!(batch::validate_for_append(&stored, 1 << 20).is_ok());
}

/// Record decoding over arbitrary bytes as the records of an uncompressed batch: never panics,
/// never reads past the input, stops at the first error.
pub fn record_decode(data: &[u8]) {
    let Some((&count, records)) = data.split_first() else {
        return;
    };
    let mut header_bytes = [0u8; batch::HEADER_BYTES];
    header_bytes[batch::field::RECORDS_COUNT + 3] = count;
    let Ok(header) = BatchHeader::parse(&header_bytes) else {
        return;
    };
    let mut decoded = 0;
    for record in batch::RecordIter::new(&header, records) {
        let Ok(record) = record else { break };
        decoded += 1;
        assert!(record.key.is_none_or(|k| k.len() <= records.len()));
        for h in record.headers() {
            let _ = h;
        }
    }
    assert!(decoded <= usize::from(count));
}

/// Index loading: never panics; an accepted index round-trips and its lookups stay inside the
/// segment.
pub fn index_load(data: &[u8]) {
    let Some((bounds_bytes, rest)) = data.split_at_checked(6) else {
        return;
    };
    let bounds = SegmentBounds {
        base_offset: i64::from(u16::from_be_bytes([bounds_bytes[0], bounds_bytes[1]])),
        next_offset: i64::from(u16::from_be_bytes([bounds_bytes[0], bounds_bytes[1]]))
            + i64::from(u16::from_be_bytes([bounds_bytes[2], bounds_bytes[3]])),
        size_bytes: u64::from(u16::from_be_bytes([bounds_bytes[4], bounds_bytes[5]])) * 16,
    };
    if let Ok(index) = OffsetIndex::parse(rest, bounds, 4096) {
        assert_eq!(index.encode(), rest);
        for probe in [
            bounds.base_offset,
            bounds.next_offset - 1,
            bounds.next_offset + 5,
        ] {
            let (offset, position) = index.lookup(probe);
            assert!(offset >= bounds.base_offset && offset <= probe.max(bounds.base_offset));
            assert!(u64::from(position) < bounds.size_bytes.max(1));
        }
    }
    if let Ok(index) = TimeIndex::parse(rest, bounds, 4096) {
        assert_eq!(index.encode(), rest);
        let offset = index.lookup(i64::MAX);
        assert!(
            offset >= bounds.base_offset && offset < bounds.next_offset.max(bounds.base_offset + 1)
        );
    }
}

/// Checkpoint, watermark, topic-config and producer-snapshot parsing: never panics; what parses round-trips.
pub fn checkpoint_parse(data: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::parse(data) {
        assert_eq!(&checkpoint.encode()[..], data);
        assert!(checkpoint.recovery_point >= 0 && checkpoint.log_start_offset >= 0);
    }
    if let Some(slot) = watermark::current(data) {
        assert!(slot.durable_offset >= 0);
    }
    if let Ok(next_id) = crate::producer_ids::parse(data) {
        assert_eq!(&crate::producer_ids::encode(next_id)[..], data);
    }
    if let Ok(snapshot) = ProducerSnapshot::parse(data) {
        assert_eq!(
            snapshot.encode(),
            data,
            "a producer snapshot re-encodes to its bytes"
        );
    }
    if let Ok(record) = TopicConfigRecord::parse(data) {
        let encoded = record.encode();
        assert!(
            encoded.as_deref() == Ok(data),
            "a topic config parsed re-encodes to its bytes"
        );
    }
}
