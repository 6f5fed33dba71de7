//! Unit tests of rolls through a prepared segment (module `roll`) on the simulated disk.

use super::*;
use crate::batch::BatchBuilder;
use crate::recovery::OpenOptions;
use bytes::BytesMut;
use rill_sim::SimDisk;

/// The partition unit tests' settings, with whole-segment preallocation (so seals trim).
fn config() -> LogConfig {
    LogConfig {
        preallocate: Preallocate::Fallocate,
        ..super::tests::config()
    }
}

fn open(disk: &Arc<SimDisk>) -> PartitionLog {
    open_with(disk, config())
}

fn open_with(disk: &Arc<SimDisk>, config: LogConfig) -> PartitionLog {
    let shared: Arc<dyn Disk> = Arc::clone(disk) as Arc<dyn Disk>;
    PartitionLog::open(shared, Path::new("/p/t-0"), config, OpenOptions::default())
        .unwrap()
        .0
}

fn batch() -> BytesMut {
    let mut b = BatchBuilder::new();
    b.append(0, None, Some(&[7u8; 300]), &[]).unwrap();
    BytesMut::from(&b.build().unwrap()[..])
}

fn append(log: &mut PartitionLog) -> AppendInfo {
    let valid = ValidBatch::validate(batch(), 1024).unwrap();
    log.append_valid(valid, 0).unwrap()
}

/// Appends until the active segment is half full, so the next file is asked for.
fn fill_half(log: &mut PartitionLog) {
    while log.active().size_bytes * 2 < log.config.segment_bytes {
        append(log);
    }
}

fn run_one_job(log: &mut PartitionLog) {
    let job = log.take_roll_job().expect("a roll job is queued");
    let disk = Arc::clone(&log.disk);
    log.complete_roll_job(job.run(disk.as_ref())).unwrap();
}

#[test]
fn a_prepared_roll_syncs_nothing_and_durability_waits_for_its_jobs() {
    let disk = Arc::new(SimDisk::new(3));
    let mut log = open(&disk);
    fill_half(&mut log);
    assert!(log.has_roll_work(), "half full: the next file is asked for");
    run_one_job(&mut log);
    assert!(log.prepared.is_some());
    assert!(
        disk.list_dir(Path::new("/p/t-0"))
            .unwrap()
            .contains(&PREPARED_FILE.to_owned())
    );
    log.flush().unwrap();

    let old_base = log.active().base_offset;
    let before = disk.stats();
    let mut rolled = None;
    // Bounded: a 2 KiB segment holds at most six of these batches.
    for _ in 0..8 {
        let info = append(&mut log);
        if log.active().base_offset != old_base {
            rolled = Some(info);
            break;
        }
    }
    let rolled = rolled.expect("the segment rolled");
    let after = disk.stats();
    assert_eq!(after.fsyncs, before.fsyncs, "the roll fdatasyncs nothing");
    assert_eq!(
        after.dir_syncs, before.dir_syncs,
        "the roll syncs no directory"
    );
    let new_base = rolled.base_offset;
    assert_eq!(log.active().base_offset, new_base);

    // The data is synced, but the new segment's name is not durable yet.
    let mut files = Vec::new();
    let ticket = log.begin_sync(&mut files).unwrap().unwrap();
    let synced = files
        .iter()
        .try_for_each(|&f| log.disk.fdatasync(f).map_err(|e| (f, e)));
    assert_eq!(log.complete_sync(ticket, synced).unwrap(), new_base);
    assert_eq!(log.offsets().durable, new_base);
    assert!(
        log.recovery_point() < new_base,
        "the recorded recovery point stays inside the unsealed segment"
    );

    run_one_job(&mut log); // the directory sync: the name is durable
    assert_eq!(log.offsets().durable, rolled.last_offset + 1);
    assert!(log.recovery_point() < new_base, "the seal is still pending");
    run_one_job(&mut log); // the seal
    assert_eq!(log.recovery_point(), rolled.last_offset + 1);
    let sealed = &log.segments[&old_base];
    assert_eq!(
        disk.file_len(sealed.log).unwrap(),
        sealed.size_bytes,
        "trimmed"
    );
    let names = disk.list_dir(Path::new("/p/t-0")).unwrap();
    assert!(names.contains(&segment::file_name(old_base, FileKind::OffsetIndex)));
    assert!(names.contains(&segment::file_name(old_base, FileKind::TimeIndex)));
    assert!(!names.contains(&PREPARED_FILE.to_owned()));
    log.verify().unwrap();
}

#[test]
fn a_roll_job_out_holds_off_changes_to_the_files() {
    let disk = Arc::new(SimDisk::new(4));
    let mut log = open(&disk);
    fill_half(&mut log);
    let job = log.take_roll_job().unwrap();
    assert!(log.take_roll_job().is_none(), "one job out at a time");
    assert!(matches!(log.truncate_to(0, 0), Err(LogError::SyncInFlight)));
    assert!(matches!(
        log.delete_before(1, 0),
        Err(LogError::SyncInFlight)
    ));
    log.complete_roll_job(job.run(disk.as_ref())).unwrap();
    log.truncate_to(1, 0).unwrap();
}

/// Appends until the active segment rolls; returns the old segment's base.
fn append_until_roll(log: &mut PartitionLog) -> i64 {
    let old_base = log.active().base_offset;
    // Bounded: a 2 KiB segment holds at most six of these batches.
    for _ in 0..8 {
        append(log);
        if log.active().base_offset != old_base {
            return old_base;
        }
    }
    panic!("no roll after a segment's worth of appends");
}

#[test]
fn without_a_prepared_file_the_roll_creates_one_and_leaves_the_seal_to_a_job() {
    let disk = Arc::new(SimDisk::new(5));
    let mut log = open(&disk);
    let before = disk.stats();
    let old_base = append_until_roll(&mut log);
    let after = disk.stats();
    assert_eq!(
        after.fsyncs, before.fsyncs,
        "no segment fdatasync'd on the roll"
    );
    assert!(
        after.dir_syncs > before.dir_syncs,
        "the new name is durable"
    );
    assert_eq!(log.roll_stats().unprepared_rolls, 1);
    assert_eq!(log.pending_seals, vec![old_base]);
    assert!(log.pending_names.is_empty());
    assert!(log.recovery_point() < log.active().base_offset);
    log.run_roll_jobs().unwrap();
    assert!(log.pending_seals.is_empty());
    assert!(disk.stats().fsyncs > after.fsyncs, "the seal job synced it");
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), log.offsets().log_end);
    drop(log);
    open(&disk).verify().unwrap();
}

#[test]
fn a_roll_during_the_preparation_goes_on_and_the_late_file_serves_the_next_roll() {
    let disk = Arc::new(SimDisk::new(8));
    let mut log = open(&disk);
    fill_half(&mut log);
    let prepare = log.take_roll_job().expect("the preparation");
    append_until_roll(&mut log);
    assert_eq!(
        log.roll_stats().unprepared_rolls,
        1,
        "the file was not ready"
    );
    log.complete_roll_job(prepare.run(disk.as_ref())).unwrap();
    log.run_roll_jobs().unwrap();
    append_until_roll(&mut log);
    let stats = log.roll_stats();
    assert_eq!((stats.prepared_rolls, stats.unprepared_rolls), (1, 1));
    log.close().unwrap();
    open(&disk).verify().unwrap();
}

#[test]
fn seals_lagging_at_the_bound_make_the_roll_seal_at_once() {
    let disk = Arc::new(SimDisk::new(9));
    let mut log = open(&disk);
    // No job runs: every roll is unprepared and leaves its seal pending.
    for _ in 0..MAX_PENDING_SEALS {
        append_until_roll(&mut log);
    }
    assert_eq!(log.pending_seals.len(), MAX_PENDING_SEALS);
    let before = disk.stats();
    append_until_roll(&mut log);
    assert_eq!(log.roll_stats().synchronous_rolls, 1);
    assert!(
        disk.stats().fsyncs > before.fsyncs,
        "this roll sealed its segment itself"
    );
    assert_eq!(
        log.pending_seals.len(),
        MAX_PENDING_SEALS,
        "no new seal queued"
    );
    log.close().unwrap();
    open(&disk).verify().unwrap();
}

#[test]
fn the_next_segment_is_allocated_to_what_the_active_one_is_on_course_to_hold() {
    let disk = Arc::new(SimDisk::new(10));
    let config = LogConfig {
        preallocate: Preallocate::Ahead { step_bytes: 256 },
        ..config()
    };
    let segment_bytes = config.segment_bytes;
    let mut log = open_with(&disk, config);
    fill_half(&mut log);
    run_one_job(&mut log);
    append_until_roll(&mut log);
    assert_eq!(log.roll_stats().prepared_rolls, 1);
    let active = log.active();
    assert_eq!(
        active.file_len, segment_bytes,
        "half full when asked: a whole segment"
    );
    assert_eq!(disk.file_len(active.log).unwrap(), segment_bytes);
}

#[test]
fn close_finishes_roll_work_and_removes_the_prepared_file() {
    let disk = Arc::new(SimDisk::new(6));
    let mut log = open(&disk);
    fill_half(&mut log);
    run_one_job(&mut log);
    let old_base = log.active().base_offset;
    while log.active().base_offset == old_base {
        append(&mut log);
    }
    assert!(log.has_roll_work());
    log.close().unwrap();
    let names = disk.list_dir(Path::new("/p/t-0")).unwrap();
    assert!(!names.contains(&PREPARED_FILE.to_owned()));
    let reopened = open(&disk);
    reopened.verify().unwrap();
}

#[test]
fn a_failed_preparation_costs_only_an_unprepared_roll() {
    let disk = Arc::new(SimDisk::new(7));
    let config = LogConfig {
        preallocate: Preallocate::Zeroed,
        ..config()
    };
    let mut log = open_with(&disk, config);
    fill_half(&mut log);
    disk.fail_next_fsyncs(1);
    run_one_job(&mut log);
    assert!(log.failure().is_none(), "the partition goes on");
    assert_eq!(log.roll_stats().failed_prepares, 1);
    let old_base = log.active().base_offset;
    while log.active().base_offset == old_base {
        append(&mut log);
        if log.active().base_offset == old_base {
            assert!(!log.has_roll_work(), "not retried before the roll");
        }
    }
    let stats = log.roll_stats();
    let rolls = (
        stats.prepared_rolls,
        stats.unprepared_rolls,
        stats.synchronous_rolls,
    );
    assert_eq!(rolls, (0, 1, 0));
    assert!(
        log.has_roll_work(),
        "the old segment's seal is left to a job"
    );
    run_one_job(&mut log);
    assert!(
        log.has_roll_work(),
        "the producer snapshot follows the seal"
    );
    run_one_job(&mut log);
    assert!(
        !log.has_roll_work(),
        "the seal and the producer snapshot were the only jobs"
    );
    fill_half(&mut log);
    assert!(log.has_roll_work(), "the next segment asks again");
    log.flush().unwrap();
    log.verify().unwrap();
}

/// A prepared file left by a crash stays through the reopen (removing a preallocated segment
/// is the next preparation's work, off the open path), and the log rolls past it as usual.
#[test]
fn a_prepared_file_left_by_a_crash_is_replaced_by_the_next_preparation() {
    let disk = Arc::new(SimDisk::new(9));
    let mut log = open(&disk);
    fill_half(&mut log);
    run_one_job(&mut log);
    assert!(log.prepared.is_some());
    log.flush().unwrap();
    let end = log.offsets().log_end;
    disk.crash(rill_sim::CrashKind::Process);
    drop(log);

    let mut log = open(&disk);
    let names = disk.list_dir(Path::new("/p/t-0")).unwrap();
    assert!(names.contains(&PREPARED_FILE.to_owned()), "left for later");
    assert!(log.prepared.is_none(), "not taken for a prepared segment");
    assert_eq!(log.offsets().log_end, end);
    let old_base = log.active().base_offset;
    // Bounded: a 2 KiB segment holds at most six of these batches.
    for _ in 0..16 {
        if log.active().base_offset != old_base {
            break;
        }
        append(&mut log);
        if let Some(job) = log.take_roll_job() {
            let shared = Arc::clone(&log.disk);
            log.complete_roll_job(job.run(shared.as_ref())).unwrap();
        }
    }
    assert_ne!(log.active().base_offset, old_base, "the log rolled");
    assert_eq!(log.roll_stats().failed_prepares, 0);
    log.run_roll_jobs().unwrap();
    log.verify().unwrap();
    let written = log.offsets().log_end;
    log.close().unwrap();
    let reopened = open(&disk);
    assert_eq!(reopened.offsets().log_end, written);
    reopened.verify().unwrap();
}
