//! Fuzz-target functions (feature `fuzzing`): each takes arbitrary bytes, must never panic
//! except on a violated property, and checks what a user relies on. `fuzz/` runs them under
//! libFuzzer; `tests/tests/fuzz_corpus.rs` runs them over the committed corpus in CI.

#![allow(
    clippy::missing_panics_doc,
    clippy::panic,
    reason = "fuzz targets panic exactly when a property fails"
)]

use crate::batch::{self, BatchHeader};
use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::disk::{Disk, OpenMode};
use crate::index::{OffsetIndex, SegmentBounds, TimeIndex};
use crate::partition::{PartitionLog, ReadLimit};
use crate::recovery::OpenOptions;
use crate::{segment, watermark};
use rill_sim::SimDisk;
use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

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

/// Checkpoint and watermark parsing: never panics; what parses round-trips.
pub fn checkpoint_parse(data: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::parse(data) {
        assert_eq!(&checkpoint.encode()[..], data);
        assert!(checkpoint.recovery_point >= 0 && checkpoint.log_start_offset >= 0);
    }
    if let Some(slot) = watermark::current(data) {
        assert!(slot.durable_offset >= 0);
    }
}

/// Recovery over arbitrary segment bytes: never panics, and a log that opens holds a valid
/// prefix of the file: whole batches from its start, contiguous offsets, consistent indexes.
/// Returns the bytes kept, or `None` if the log did not open.
pub fn recovery(data: &[u8]) -> Option<usize> {
    let dir = Path::new("/fuzz/t-0");
    let disk = Arc::new(SimDisk::new(0));
    disk.create_dir_all(dir).ok()?;
    let path = dir.join(segment::file_name(0, segment::FileKind::Log));
    let file = disk.open(&path, OpenMode::CreateNew).ok()?;
    disk.write_at(file, 0, &[IoSlice::new(data)]).ok()?;
    disk.fdatasync(file).ok()?;
    disk.close(file);
    // Segments a little larger than libFuzzer's inputs: preallocating the default 1 GiB (or
    // even 1 MiB) of simulated disk per run would be most of the run's time.
    let config = LogConfig {
        segment_bytes: 1 << 16,
        max_batch_bytes: 1 << 16,
        ..LogConfig::default()
    };
    let as_dyn: Arc<dyn Disk> = disk.clone();
    // No checkpoint: everything is above the recovery point, so damage is a torn tail.
    let (log, report) = PartitionLog::open(as_dyn, dir, config, OpenOptions::default()).ok()?;
    assert!(log.verify().is_ok(), "recovered log fails verification");
    let kept = log.size_bytes() as usize;
    assert!(kept <= data.len());
    assert_eq!(
        report.bytes_truncated + report.zero_tail_bytes,
        (data.len() - kept) as u64
    );
    let mut offset = log.offsets().log_start;
    let mut at = 0usize;
    // Bounded: every read returns at least one batch.
    while offset < log.offsets().log_end {
        let Ok(read) = log.read(offset, 1 << 20, ReadLimit::Written) else {
            panic!("recovered data is unreadable at offset {offset}");
        };
        assert_eq!(
            &read.bytes[..],
            &data[at..at + read.bytes.len()],
            "recovered bytes differ from the file's prefix"
        );
        at += read.bytes.len();
        offset = read.next_offset;
    }
    assert_eq!(at, kept);
    Some(kept)
}
