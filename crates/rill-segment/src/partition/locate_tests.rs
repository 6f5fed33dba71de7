//! `locate` against a reference that reads every batch header, and what it reads.

use super::tests::config;
use super::*;
use crate::batch::{BatchBuilder, BatchHeader, HEADER_BYTES};
use crate::partition::{BatchRange, ReadLimit};
use crate::recovery::OpenOptions;
use bytes::BytesMut;
use rill_sim::SimDisk;

fn open(config: LogConfig) -> (Arc<SimDisk>, PartitionLog) {
    let sim = Arc::new(SimDisk::new(1));
    let disk: Arc<dyn Disk> = sim.clone();
    let log = PartitionLog::open(disk, Path::new("/p/t-0"), config, OpenOptions::default())
        .unwrap()
        .0;
    (sim, log)
}

fn batch(records: usize, value_bytes: usize) -> BytesMut {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.append(i as i64, None, Some(&vec![i as u8; value_bytes]), &[])
            .unwrap();
    }
    BytesMut::from(&b.build().unwrap()[..])
}

/// What `locate` returned before it read headers through a window and jumped by the index:
/// one header read per batch from the index floor.
fn reference(log: &PartitionLog, offset: i64, max_bytes: u64, limit: ReadLimit) -> BatchRange {
    let plan = log.plan_read(offset, max_bytes, limit).unwrap().unwrap();
    let header_at = |position: u64| {
        let mut buf = [0u8; HEADER_BYTES];
        disk::read_exact_at(log.disk().as_ref(), plan.file, position, &mut buf).unwrap();
        BatchHeader::parse(&buf).unwrap()
    };
    let mut position = plan.floor_position;
    let first = loop {
        let header = header_at(position);
        if header.next_offset() > offset {
            break header;
        }
        position += header.total_bytes();
    };
    let mut range = BatchRange {
        segment_base_offset: plan.segment_base_offset,
        file: plan.file,
        position,
        len: first.total_bytes(),
        first_offset: first.base_offset,
        next_offset: first.next_offset(),
    };
    while range.position + range.len < plan.readable {
        let header = header_at(range.position + range.len);
        if header.next_offset() > plan.end_offset || range.len + header.total_bytes() > max_bytes {
            break;
        }
        range.len += header.total_bytes();
        range.next_offset = header.next_offset();
    }
    range
}

#[test]
fn locate_agrees_with_a_header_by_header_walk_under_both_limits() {
    let (_sim, mut log) = open(config());
    // Batch sizes on both sides of the 100-byte index interval; the last ones not durable.
    for i in 0..160usize {
        let durability = if i < 120 {
            Durability::Durable
        } else {
            Durability::Written
        };
        log.append(batch(1 + i % 4, 7 + (i * 37) % 220), durability, 0)
            .unwrap();
    }
    for limit in [ReadLimit::Written, ReadLimit::Durable] {
        let end = log.read_end(limit);
        for offset in log.offsets().log_start..end {
            for max_bytes in [1, 150, 400, 900, 5000] {
                let located = log.locate(offset, max_bytes, limit).unwrap().unwrap();
                assert_eq!(
                    located,
                    reference(&log, offset, max_bytes, limit),
                    "offset {offset} max {max_bytes} {limit:?}"
                );
            }
        }
    }
}

#[test]
fn locating_many_small_batches_reads_a_few_windows_not_every_header() {
    let (sim, mut log) = open(LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 4096,
        max_index_entries: 1000,
        ..config()
    });
    for _ in 0..600 {
        log.append(batch(1, 40), Durability::Written, 0).unwrap();
    }
    let end = log.offsets().log_end;
    let before = sim.stats().reads;
    let range = log.locate(3, 1 << 20, ReadLimit::Written).unwrap().unwrap();
    let reads = sim.stats().reads - before;
    assert_eq!((range.first_offset, range.next_offset), (3, end));
    assert_eq!(range, reference(&log, 3, 1 << 20, ReadLimit::Written));
    // The first batch's window, the window at the last index entry, and at most one more.
    assert!(reads <= 3, "{reads} reads for 597 batches");
}
