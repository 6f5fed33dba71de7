//! Unit tests of the partition log on the simulated disk.

use super::*;
use crate::batch::{self, BatchBuilder, BatchError};
use crate::partition::ReadLimit;
use crate::recovery::OpenOptions;
use bytes::BytesMut;
use rill_sim::SimDisk;

pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: None,
        index_interval_bytes: 100,
        max_index_entries: 100,
        max_batch_bytes: 1024,
        retention_bytes: None,
        retention_ms: None,
        checkpoint_interval_ms: 0,
        ..LogConfig::default()
    }
}

fn open_with(config: LogConfig) -> PartitionLog {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(1));
    PartitionLog::open(disk, Path::new("/p/t-0"), config, OpenOptions::default())
        .unwrap()
        .0
}

fn batch(records: usize, value_bytes: usize, timestamp: i64) -> BytesMut {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.append(
            timestamp + i as i64,
            None,
            Some(&vec![i as u8; value_bytes]),
            &[],
        )
        .unwrap();
    }
    BytesMut::from(&b.build().unwrap()[..])
}

#[test]
fn offsets_are_assigned_contiguously_and_crc_is_untouched() {
    let mut log = open_with(config());
    log.set_leader_epoch(Some(7));
    let a = log.append(batch(3, 10, 0), Durability::Written, 0).unwrap();
    let b = log.append(batch(2, 10, 0), Durability::Durable, 0).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    let read = log.read(3, 1 << 20, ReadLimit::Durable).unwrap();
    let header = batch::check_stored(&read.bytes, 3).unwrap();
    assert_eq!(header.partition_leader_epoch, 7);
    assert_eq!(read.next_offset, 5);
    assert_eq!(
        log.offsets(),
        Offsets {
            log_start: 0,
            log_end: 5,
            durable: 5
        }
    );
}

#[test]
fn invalid_batches_get_typed_errors_and_change_nothing() {
    let mut log = open_with(config());
    log.append(batch(1, 10, 0), Durability::Durable, 0).unwrap();
    let size = log.size_bytes();
    let mut bad = batch(2, 10, 0);
    bad[40] ^= 1;
    assert!(matches!(
        log.append(bad, Durability::Written, 0),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    assert!(matches!(
        log.append(batch(20, 100, 0), Durability::Written, 0),
        Err(LogError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    assert!(matches!(
        log.append(BytesMut::from(&[0u8; 10][..]), Durability::Written, 0),
        Err(LogError::InvalidBatch(BatchError::ShorterThanHeader { .. }))
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.offsets().log_end, 1);
    log.verify().unwrap();
}

#[test]
fn rolls_on_size() {
    let mut log = open_with(config());
    for _ in 0..20 {
        log.append(batch(2, 100, 0), Durability::Written, 0)
            .unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 2);
    for segment in log.segments.values() {
        assert!(segment.size_bytes <= 2048);
    }
    log.verify().unwrap();
}

#[test]
fn rolls_on_age() {
    let mut log = open_with(LogConfig {
        segment_ms: Some(1000),
        ..config()
    });
    log.append(batch(1, 10, 0), Durability::Written, 0).unwrap();
    log.append(batch(1, 10, 0), Durability::Written, 999)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    log.append(batch(1, 10, 0), Durability::Written, 1000)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn rolls_when_the_index_is_full() {
    let mut log = open_with(LogConfig {
        max_index_entries: 2,
        index_interval_bytes: 1,
        ..config()
    });
    for _ in 0..6 {
        log.append(batch(1, 10, 0), Durability::Written, 0).unwrap();
    }
    assert!(log.segment_base_offsets().len() >= 2);
    for segment in log.segments.values() {
        assert!(log.indexes_of(segment).unwrap().offset.entries().len() <= 2);
    }
    log.verify().unwrap();
}

#[test]
fn reads_return_whole_batches_within_one_segment() {
    let mut log = open_with(config());
    let mut sizes = Vec::new();
    for i in 0..30 {
        let info = log
            .append(batch(1 + i % 3, 50, i as i64 * 10), Durability::Written, 0)
            .unwrap();
        sizes.push(info);
    }
    // At least one batch even when it exceeds max_bytes.
    let one = log.read(0, 1, ReadLimit::Written).unwrap();
    assert_eq!(one.bytes.len() as u64, sizes[0].batch_bytes);
    // An offset inside a batch returns that whole batch.
    let mid = log
        .read(sizes[1].base_offset + 1, 1, ReadLimit::Written)
        .unwrap();
    assert_eq!(
        batch::BatchHeader::parse(&mid.bytes).unwrap().base_offset,
        sizes[1].base_offset
    );
    // Never more than max_bytes when more than one batch, never across a segment boundary.
    let read = log.read(0, 1 << 20, ReadLimit::Written).unwrap();
    let second_segment = log.segment_base_offsets()[1];
    assert_eq!(read.next_offset, second_segment);
    let capped = log.read(0, 300, ReadLimit::Written).unwrap();
    assert!(capped.bytes.len() <= 300);
    // The end of the log and beyond.
    let end = log.offsets().log_end;
    assert!(
        log.read(end, 100, ReadLimit::Written)
            .unwrap()
            .bytes
            .is_empty()
    );
    assert!(matches!(
        log.read(end + 1, 100, ReadLimit::Written),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, ReadLimit::Written),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn lookups_agree_with_a_linear_scan() {
    let mut log = open_with(config());
    let mut batches = Vec::new();
    for i in 0..60i64 {
        // Timestamps go up and down, so the time index matters.
        let ts = 1000 + (i * 37) % 500;
        let info = log
            .append(batch(1 + (i as usize % 4), 30, ts), Durability::Written, 0)
            .unwrap();
        batches.push(info);
    }
    for info in &batches {
        for offset in info.base_offset..=info.last_offset {
            let range = log.locate(offset, 0, ReadLimit::Written).unwrap().unwrap();
            assert_eq!(range.first_offset, info.base_offset, "offset {offset}");
        }
    }
    for target in (900..1600).step_by(7) {
        let expected = batches.iter().find(|b| b.max_timestamp >= target).map(|b| {
            // Records of a batch have timestamps ts, ts+1, ...: the first reaching target.
            let first_ts = b.max_timestamp - (b.last_offset - b.base_offset);
            b.base_offset + (target - first_ts).max(0)
        });
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            expected,
            "timestamp {target}"
        );
    }
}

fn valid(b: BytesMut) -> ValidBatch {
    ValidBatch::validate(b, 1024).unwrap()
}

/// Issue #15 item 5: durability never runs ahead of what was written, in release builds too:
/// a sync whose target passed the written offset (only a bug elsewhere can do that) fail-stops
/// the partition and acknowledges nothing.
#[test]
fn a_sync_claiming_more_than_was_written_fail_stops() {
    let mut log = open_with(config());
    let mut files = Vec::new();
    log.append_valid(valid(batch(3, 1, 0)), 0).unwrap();
    let ticket = log.begin_sync(&mut files).unwrap().unwrap();
    assert_eq!(ticket.target_offset, 3);
    // The bug: the written offset moves back under an in-flight sync.
    log.written_offset = 1;
    assert!(matches!(
        log.complete_sync(ticket, Ok(())),
        Err(LogError::Failed(_))
    ));
    assert_eq!(log.offsets().durable, 0, "nothing acknowledged durable");
    assert!(log.failure().is_some());
}

#[test]
fn syncs_pipeline_one_at_a_time_and_belong_to_their_log() {
    let mut log = open_with(config());
    let mut other = open_with(config());
    let mut files = Vec::new();
    let a = log.append_valid(valid(batch(1, 1, 0)), 0).unwrap();
    // Visible at once, not yet durable.
    assert_eq!((log.offsets().log_end, log.offsets().durable), (1, 0));
    let ticket = log.begin_sync(&mut files).unwrap().unwrap();
    assert_eq!(ticket.target_offset, a.last_offset + 1);
    assert!(!files.is_empty());
    assert!(matches!(
        log.begin_sync(&mut files),
        Err(LogError::SyncInFlight)
    ));
    assert!(matches!(log.truncate_to(0, 0), Err(LogError::SyncInFlight)));
    // Appends go on while the sync is in flight; it does not cover them.
    log.append_valid(valid(batch(1, 1, 0)), 0).unwrap();
    other.append_valid(valid(batch(1, 1, 0)), 0).unwrap();
    let foreign = other.begin_sync(&mut Vec::new()).unwrap().unwrap();
    assert!(matches!(
        log.complete_sync(foreign, Ok(())),
        Err(LogError::ForeignSync)
    ));
    for &file in &files {
        log.disk().fdatasync(file).unwrap();
    }
    assert_eq!(log.complete_sync(ticket, Ok(())).unwrap(), 1);
    assert_eq!((log.offsets().log_end, log.offsets().durable), (2, 1));
    assert!(log.has_unsynced());
    // The next sync covers the append made during the first.
    assert_eq!(log.flush().unwrap(), 2);
    assert!(!log.has_unsynced());
    assert_eq!(log.begin_sync(&mut files).unwrap(), None);
}

#[test]
fn a_failed_sync_fail_stops_and_acknowledges_nothing_more() {
    let mut log = open_with(config());
    let mut files = Vec::new();
    log.append_valid(valid(batch(1, 1, 0)), 0).unwrap();
    let ticket = log.begin_sync(&mut files).unwrap().unwrap();
    let e = std::io::Error::from_raw_os_error(libc_eio());
    assert!(matches!(
        log.complete_sync(ticket, Err((files[0], e))),
        Err(LogError::Failed(_))
    ));
    assert_eq!(log.offsets().durable, 0);
    assert!(matches!(
        log.append_valid(valid(batch(1, 1, 0)), 0),
        Err(LogError::Failed(_))
    ));
    assert!(matches!(
        log.begin_sync(&mut files),
        Err(LogError::Failed(_))
    ));
}

fn libc_eio() -> i32 {
    5
}

#[test]
fn the_unsynced_bound_asks_for_a_sync_first() {
    let mut log = open_with(LogConfig {
        max_unsynced_bytes: 300,
        ..config()
    });
    let mut appended = 0;
    // Bounded: each pass appends or stops.
    while !log.must_sync_before(batch(1, 100, 0).len()) {
        log.append_valid(valid(batch(1, 100, 0)), 0).unwrap();
        appended += 1;
        assert!(appended < 10);
    }
    assert!(log.wants_sync());
    let before = log.offsets();
    assert!(matches!(
        log.append_valid(valid(batch(1, 100, 0)), 0),
        Err(LogError::SyncRequired)
    ));
    assert_eq!(log.offsets(), before, "a refused append changes nothing");
    log.flush().unwrap();
    log.append_valid(valid(batch(1, 100, 0)), 0).unwrap();
}

#[test]
fn retention_by_size_deletes_only_whole_sealed_segments() {
    let mut log = open_with(LogConfig {
        retention_bytes: Some(3000),
        ..config()
    });
    for _ in 0..40 {
        log.append(batch(2, 100, 0), Durability::Written, 0)
            .unwrap();
    }
    let before = log.segment_base_offsets();
    let outcome = log.apply_retention(0).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(log.size_bytes() >= 3000);
    assert_eq!(log.offsets().log_start, log.segment_base_offsets()[0]);
    assert_eq!(
        log.segment_base_offsets(),
        before[outcome.segments_deleted..].to_vec()
    );
    assert!(matches!(
        log.read(0, 10, ReadLimit::Written),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.verify().unwrap();
}

#[test]
fn delete_before_and_truncate_keep_the_log_consistent() {
    let mut log = open_with(config());
    for _ in 0..30 {
        log.append(batch(3, 60, 0), Durability::Durable, 0).unwrap();
    }
    log.delete_before(40, 0).unwrap();
    assert_eq!(log.offsets().log_start, 40);
    assert!(log.segment_base_offsets()[0] <= 40);
    // 40 is inside the batch [39, 41]: reading it returns that batch.
    assert_eq!(log.read(40, 1, ReadLimit::Written).unwrap().next_offset, 42);
    assert!(matches!(
        log.delete_before(1000, 0),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Truncating inside a batch drops the whole batch.
    assert_eq!(log.truncate_to(61, 0).unwrap(), 60);
    assert_eq!(
        log.offsets(),
        Offsets {
            log_start: 40,
            log_end: 60,
            durable: 60
        }
    );
    assert!(log.last_checkpoint().recovery_point <= 60);
    log.verify().unwrap();
    let next = log.append(batch(1, 1, 0), Durability::Durable, 0).unwrap();
    assert_eq!(next.base_offset, 60);
}

/// Reads a plan's window the way a caller does, growing it as `walk` asks.
fn walk_plan(log: &PartitionLog, plan: &ReadPlan) -> Walked {
    let mut want = plan.first_window(log.index_interval_bytes());
    // Bounded: each pass grows the window or returns.
    for _ in 0..64 {
        let mut window = vec![0u8; want as usize];
        disk::read_exact_at(
            log.disk().as_ref(),
            plan.file,
            plan.floor_position,
            &mut window,
        )
        .unwrap();
        match walk(plan, &window) {
            Walked::NeedMore { window_bytes } => {
                assert!(window_bytes > want, "{window_bytes} after {want}");
                want = window_bytes;
            }
            done => return done,
        }
    }
    panic!("the window never settled");
}

#[test]
fn a_walked_window_finds_what_locate_finds() {
    let mut log = open_with(config());
    for i in 0..120usize {
        log.append(
            batch(1 + i % 4, 7 + (i * 31) % 200, 0),
            Durability::Written,
            0,
        )
        .unwrap();
    }
    let end = log.offsets().log_end;
    for offset in 0..end {
        for max_bytes in [1, 150, 400, 5000] {
            let located = log
                .locate(offset, max_bytes, ReadLimit::Written)
                .unwrap()
                .unwrap();
            let plan = log
                .plan_read(offset, max_bytes, ReadLimit::Written)
                .unwrap()
                .unwrap();
            let Walked::Found { range, skip } = walk_plan(&log, &plan) else {
                panic!("offset {offset}: no range");
            };
            assert_eq!(range, located, "offset {offset} max {max_bytes}");
            assert_eq!(plan.floor_position + skip, range.position);
        }
    }
    assert_eq!(log.plan_read(end, 1, ReadLimit::Written).unwrap(), None);
    assert!(log.plan_read(end + 1, 1, ReadLimit::Written).is_err());
}

#[test]
fn a_window_that_disagrees_with_the_plan_is_a_mismatch() {
    let mut log = open_with(config());
    for _ in 0..10 {
        log.append(batch(2, 50, 0), Durability::Written, 0).unwrap();
    }
    let mut plan = log.plan_read(5, 1000, ReadLimit::Written).unwrap().unwrap();
    plan.floor_offset += 1;
    assert_eq!(walk_plan(&log, &plan), Walked::Mismatch);
}

/// A checkpoint write that fails keeps its errno in the partition's failure, so the log says
/// "No space left on device" rather than an uncategorized error (issue #15, item 8).
#[test]
fn a_failed_checkpoint_write_keeps_its_errno() {
    let sim = Arc::new(SimDisk::new(4));
    let disk: Arc<dyn Disk> = sim.clone();
    let mut log = PartitionLog::open(disk, Path::new("/p/t-0"), config(), OpenOptions::default())
        .unwrap()
        .0;
    for _ in 0..3 {
        log.append(batch(2, 10, 0), Durability::Durable, 0).unwrap();
    }
    sim.set_faults(rill_sim::FaultConfig {
        write_enospc_ppm: 1_000_000,
        ..rill_sim::FaultConfig::default()
    });
    let Err(LogError::Failed(reason)) = log.delete_before(2, 0) else {
        panic!("the checkpoint write must fail the partition");
    };
    assert_eq!(reason.op, "write checkpoint");
    assert_eq!(
        reason.os_error,
        Some(rustix::io::Errno::NOSPC.raw_os_error())
    );
    assert_eq!(log.failure().map(|f| f.os_error), Some(reason.os_error));
}

/// Issue #15, item 3: a batch timestamped far in the future would keep its segment from time
/// retention forever; beyond `max_timestamp_ahead_ms` it is refused, and nothing is written.
#[test]
fn a_batch_timestamped_too_far_ahead_is_refused() {
    let now = 1_700_000_000_000;
    let hour = 3_600_000;
    let mut log = open_with(LogConfig {
        max_timestamp_ahead_ms: Some(hour),
        ..config()
    });
    log.append(batch(1, 10, now + hour / 2), Durability::Written, now)
        .unwrap();
    let end = log.offsets().log_end;
    let refused = log.append(batch(1, 10, now + 2 * hour), Durability::Written, now);
    assert!(matches!(
        refused,
        Err(LogError::InvalidBatch(BatchError::TimestampAhead { allowed_ahead_ms, .. }))
            if allowed_ahead_ms == hour
    ));
    assert_eq!(log.offsets().log_end, end, "nothing written");
    assert!(log.failure().is_none());
    let mut unbounded = open_with(LogConfig {
        max_timestamp_ahead_ms: None,
        ..config()
    });
    unbounded
        .append(batch(1, 10, now + 2 * hour), Durability::Written, now)
        .unwrap();
}
