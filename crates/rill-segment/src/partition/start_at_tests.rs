//! Unit tests of `truncate_fully_and_start_at` on the simulated disk, a power cut at every step
//! of it included.

use super::*;
use crate::batch::BatchBuilder;
use crate::partition::ReadLimit;
use crate::recovery::OpenOptions;
use bytes::BytesMut;
use rill_sim::{CrashKind, SimDisk};

fn open(disk: &Arc<SimDisk>) -> Result<PartitionLog, LogError> {
    let shared: Arc<dyn Disk> = Arc::clone(disk) as Arc<dyn Disk>;
    let config = LogConfig {
        preallocate: Preallocate::Fallocate,
        ..super::tests::config()
    };
    PartitionLog::open(shared, Path::new("/p/t-0"), config, OpenOptions::default()).map(|o| o.0)
}

fn batch(value_bytes: usize) -> BytesMut {
    let mut b = BatchBuilder::new();
    b.append(5, None, Some(&vec![3u8; value_bytes]), &[])
        .unwrap();
    BytesMut::from(&b.build().unwrap()[..])
}

/// Appends durable batches over several segments (with their roll work done).
fn fill(log: &mut PartitionLog, batches: usize) {
    for _ in 0..batches {
        log.append(batch(200), Durability::Durable, 0).unwrap();
    }
    log.run_roll_jobs().unwrap();
    log.flush().unwrap();
}

#[test]
fn the_log_starts_again_empty_at_the_offset_beyond_its_end() {
    let disk = Arc::new(SimDisk::new(3));
    let mut log = open(&disk).unwrap();
    fill(&mut log, 20);
    assert!(log.segment_base_offsets().len() > 1);
    assert_eq!(log.truncate_fully_and_start_at(100, 7).unwrap(), 100);
    let empty = Offsets {
        log_start: 100,
        log_end: 100,
        durable: 100,
    };
    assert_eq!(log.offsets(), empty);
    assert_eq!(log.segment_base_offsets(), vec![100]);
    assert!(matches!(
        log.read(10, 1 << 20, ReadLimit::Written),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let next = log.append(batch(10), Durability::Durable, 0).unwrap();
    assert_eq!(next.base_offset, 100);
    log.verify().unwrap();
    log.close().unwrap();

    let reopened = open(&disk).unwrap();
    assert_eq!(reopened.offsets().log_start, 100);
    assert_eq!(reopened.offsets().log_end, 101);
    reopened.verify().unwrap();
}

#[test]
fn an_offset_inside_the_log_or_below_its_start_empties_it_there() {
    let disk = Arc::new(SimDisk::new(4));
    let mut log = open(&disk).unwrap();
    fill(&mut log, 20);
    log.delete_before(5, 0).unwrap();
    assert!(matches!(
        log.truncate_fully_and_start_at(-1, 0),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.truncate_fully_and_start_at(2, 0).unwrap(), 2);
    assert_eq!(log.offsets().log_start, 2);
    fill(&mut log, 20);
    assert_eq!(log.truncate_fully_and_start_at(12, 0).unwrap(), 12);
    assert_eq!(log.offsets().log_end, 12);
    assert_eq!(
        log.append(batch(10), Durability::Durable, 0)
            .unwrap()
            .base_offset,
        12
    );
    // At the end itself: only the start moves.
    assert_eq!(log.truncate_fully_and_start_at(13, 0).unwrap(), 13);
    log.verify().unwrap();
}

/// A power cut after each mutating disk call of the operation in turn, starting beyond the
/// end: the log reopens, and is either the log before (every durable batch there) or empty at
/// the new start. Nothing else.
#[test]
fn a_power_cut_at_any_step_leaves_the_old_log_or_the_new_start() {
    power_cuts(1000, |_| {});
}

/// The same below the log start (an emptied log started again lower).
#[test]
fn a_power_cut_at_any_step_of_a_start_below_the_start_is_safe_too() {
    power_cuts(3, |log| {
        let end = log.offsets().log_end;
        log.truncate_fully_and_start_at(end + 50, 0).unwrap();
    });
}

fn power_cuts(start_at: i64, prepare: impl Fn(&mut PartitionLog)) {
    let mut outcomes = (0, 0);
    // Bounded: the operation makes a few dozen mutating calls on these segments.
    for cut_after in 0..200 {
        let disk = Arc::new(SimDisk::new(cut_after));
        let mut log = open(&disk).unwrap();
        fill(&mut log, 20);
        prepare(&mut log);
        let before = log.offsets();
        disk.power_cut_after(cut_after);
        let result = log.truncate_fully_and_start_at(start_at, 0);
        let finished = !disk.power_is_cut();
        assert_eq!(
            finished,
            result.is_ok(),
            "cut after {cut_after}: {result:?}"
        );
        drop(log);
        disk.crash(CrashKind::Power);
        let log = open(&disk).unwrap_or_else(|e| panic!("cut after {cut_after}: {e}"));
        let after = log.offsets();
        if after.log_start == start_at {
            assert_eq!(after.log_end, start_at, "cut after {cut_after}");
            outcomes.1 += 1;
        } else {
            assert_eq!(after.log_start, before.log_start, "cut after {cut_after}");
            assert!(
                after.log_end >= before.durable,
                "cut after {cut_after}: {after:?}"
            );
            outcomes.0 += 1;
        }
        log.verify().unwrap();
        if finished {
            assert_eq!(after.log_start, start_at);
            break;
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}
