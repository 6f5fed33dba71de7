#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Model-based property tests of the partition log on the simulated disk (DESIGN §8).
//!
//! A generated sequence of operations (appends alone, or several then a sync with one more
//! written while it runs; durable or not), flushes, reads, timestamp lookups, truncation, deletion, retention, injected fsync and
//! write failures, process and power crashes, crashes in the middle of recovery, clean
//! restarts) runs against the log and against a model: the list of batches issued and the
//! offset below which they were acknowledged durable. After every crash and reopen:
//!
//! * every batch acknowledged durable is present, byte for byte, at its offset;
//! * the log is a prefix of what was issued: nothing invented, duplicated or zero-filled;
//! * offsets are contiguous and appends continue at the recovered end;
//! * every index entry points at its batch and agrees with a scan, files hold exactly their
//!   batches (`PartitionLog::verify`);
//! * the checkpoint never leads the durable data;
//! * a second recovery changes nothing;
//! * after a clean shutdown nothing issued is missing.
//!
//! Cases: 48 by default (CI), `PROPTEST_CASES=20000` for a deep run. A failing case is saved
//! by proptest under `proptest-regressions/` and replays from its seed.

use bytes::BytesMut;
use proptest::prelude::*;
use rill_segment::checkpoint;
use rill_segment::partition::ReadLimit;
use rill_segment::partition::ValidBatch;
use rill_segment::{Durability, LogConfig, LogError, PartitionLog, Preallocate};
use rill_sim::{CrashKind, FaultConfig, SimDisk};
use rill_tests::{as_stored, make_batch, open, read_all, sim_dir, small_config, split_batches};
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
        durable: bool,
    },
    Round {
        batches: usize,
        durable: bool,
    },
    Flush,
    Read {
        at: u16,
        max_bytes: u16,
    },
    Timestamp {
        at: u16,
    },
    Truncate {
        at: u16,
    },
    DeleteBefore {
        at: u16,
    },
    Retention {
        age_ms: u16,
    },
    Checkpoint,
    /// Runs up to this many queued roll jobs (an executor's work between appends).
    RollJobs {
        jobs: u8,
    },
    FailNextFsync,
    FailNextWrite,
    Crash {
        power: bool,
    },
    CrashDuringRecovery {
        after_ops: u8,
    },
    CleanRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..300, any::<bool>()).prop_map(|(records, value_bytes, durable)| Op::Append { records, value_bytes, durable }),
        3 => (2usize..6, any::<bool>()).prop_map(|(batches, durable)| Op::Round { batches, durable }),
        1 => Just(Op::Flush),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Timestamp { at }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteBefore { at }),
        1 => any::<u16>().prop_map(|age_ms| Op::Retention { age_ms }),
        1 => Just(Op::Checkpoint),
        2 => (1u8..4).prop_map(|jobs| Op::RollJobs { jobs }),
        1 => Just(Op::FailNextFsync),
        1 => Just(Op::FailNextWrite),
        2 => any::<bool>().prop_map(|power| Op::Crash { power }),
        1 => any::<u8>().prop_map(|after_ops| Op::CrashDuringRecovery { after_ops: after_ops % 40 }),
        1 => Just(Op::CleanRestart),
    ]
}

/// What the log should hold.
#[derive(Debug, Default)]
struct Model {
    /// Every batch issued and not truncated, in offset order: (base offset, stored bytes).
    issued: Vec<(i64, Vec<u8>)>,
    /// Batches ending at or below this offset were acknowledged durable.
    acked_durable: i64,
    /// The log start offset as last set (and its lowest value that may have survived).
    log_start: i64,
    log_start_durable: i64,
    failed: bool,
    next_seed: u64,
    clock_ms: i64,
}

impl Model {
    fn end(&self) -> i64 {
        let last = self
            .issued
            .last()
            .map_or(self.log_start, |(base, b)| base + records(b));
        // A log start beyond every batch means the log restarts empty there.
        last.max(self.log_start)
    }

    fn visible(&self) -> Vec<(i64, Vec<u8>)> {
        self.issued
            .iter()
            .filter(|(base, b)| base + records(b) > self.log_start)
            .cloned()
            .collect()
    }

    fn batch(&mut self, records: usize, value_bytes: usize) -> bytes::BytesMut {
        self.next_seed += 1;
        self.clock_ms += 7;
        make_batch(records, value_bytes, self.clock_ms, self.next_seed)
    }

    fn pick(&self, at: u16) -> i64 {
        let (start, end) = (self.log_start, self.end());
        start + i64::from(at) % (end - start + 1)
    }
}

fn records(batch: &[u8]) -> i64 {
    i64::from(
        rill_segment::batch::BatchHeader::parse(batch)
            .unwrap()
            .records_count,
    )
}

fn config(preallocate: Preallocate) -> LogConfig {
    LogConfig {
        retention_bytes: Some(6000),
        retention_ms: Some(2000),
        preallocate,
        ..small_config()
    }
}

/// With a torn-tail window (`max(max_unsynced_bytes, max_batch_bytes)` = 2 KiB) smaller than a
/// segment, so that recovery's "valid data beyond the window" rule is exercised across rolls.
fn small_window_config(preallocate: Preallocate) -> LogConfig {
    LogConfig {
        max_unsynced_bytes: 1024,
        ..config(preallocate)
    }
}

fn preallocation() -> impl Strategy<Value = Preallocate> {
    prop_oneof![
        Just(Preallocate::None),
        Just(Preallocate::Fallocate),
        Just(Preallocate::Zeroed),
        Just(Preallocate::Ahead { step_bytes: 700 })
    ]
}

struct Harness {
    config: LogConfig,
    disk: Arc<SimDisk>,
    log: Option<PartitionLog>,
    model: Model,
}

impl Harness {
    fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().unwrap()
    }

    /// Reopens after a crash (the disk already crashed) and checks the recovery invariants.
    fn recover(&mut self) {
        let log = self.open_retrying();
        let recovered = read_all(&log).unwrap();
        let m = &mut self.model;
        // The log start survives at least as far as it was made durable.
        let start = log.offsets().log_start;
        assert!(
            start >= m.log_start_durable && start <= m.log_start.max(m.log_start_durable),
            "log start {start} outside [{}, {}]",
            m.log_start_durable,
            m.log_start
        );
        m.log_start = start;
        let visible = m.visible();
        assert!(
            recovered.len() <= visible.len(),
            "recovered more batches than were issued"
        );
        assert_eq!(
            recovered,
            visible[..recovered.len()],
            "recovered log is not a prefix of what was issued"
        );
        let end = log.offsets().log_end;
        assert!(
            end >= m.acked_durable.max(start),
            "acknowledged durable data lost: recovered end {end} < acknowledged {}",
            m.acked_durable
        );
        log.verify().unwrap();
        let ckpt = checkpoint::read(self.disk.as_ref(), &sim_dir())
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            ckpt.recovery_point <= log.offsets().durable,
            "checkpoint leads the durable data"
        );
        assert!(!ckpt.clean_shutdown, "the clean flag is cleared at open");
        let watermark = rill_segment::watermark::read(self.disk.as_ref(), &sim_dir()).unwrap();
        assert!(
            watermark.is_some_and(|w| w.durable_offset <= log.offsets().durable),
            "watermark leads the durable data"
        );
        m.issued.retain(|(base, b)| base + records(b) <= end);
        m.acked_durable = end;
        m.log_start_durable = start;
        m.failed = false;
        self.log = Some(log);
    }

    fn open_retrying(&mut self) -> PartitionLog {
        // An injected fsync failure may hit recovery itself; reopening is what an operator does.
        for _ in 0..3 {
            match open(&self.disk, &self.config, false) {
                Ok((log, report)) => {
                    if std::env::var_os("RILL_TRACE").is_some() {
                        eprintln!(
                            "recovered: {report:?} segments {:?}",
                            log.segment_base_offsets()
                        );
                    }
                    return log;
                }
                Err(LogError::Io { .. }) => self.disk.crash(CrashKind::Process),
                Err(e) => panic!("open failed: {e}"),
            }
        }
        panic!("open kept failing");
    }

    fn note_failure<T: std::fmt::Debug>(&mut self, result: &Result<T, LogError>) -> bool {
        match result {
            Err(LogError::Failed(_)) => {
                self.model.failed = true;
                true
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => false,
        }
    }

    fn apply(&mut self, op: &Op) {
        if std::env::var_os("RILL_TRACE").is_some() {
            eprintln!(
                "{op:?} model start={} end={} acked={} failed={} log {:?}",
                self.model.log_start,
                self.model.end(),
                self.model.acked_durable,
                self.model.failed,
                self.log
                    .as_ref()
                    .map(|l| (l.segment_base_offsets(), l.offsets()))
            );
        }
        if self.model.failed
            && !matches!(
                op,
                Op::Crash { .. } | Op::CrashDuringRecovery { .. } | Op::CleanRestart
            )
        {
            let batch = self.model.batch(1, 10);
            assert!(matches!(
                self.log().append(batch, Durability::Written, 0),
                Err(LogError::Failed(_))
            ));
            return;
        }
        match *op {
            Op::Append {
                records,
                value_bytes,
                durable,
            } => {
                let batch = self.model.batch(records, value_bytes);
                let durability = if durable {
                    Durability::Durable
                } else {
                    Durability::Written
                };
                let expected_base = self.model.end();
                let result = self.log().append(batch.clone(), durability, 0);
                // A failed append may still have reached the disk: it stays "issued".
                self.model
                    .issued
                    .push((expected_base, as_stored(&batch, expected_base)));
                if !self.note_failure(&result) {
                    let info = result.unwrap();
                    assert_eq!(info.base_offset, expected_base);
                    if durable {
                        self.model.acked_durable = self.model.end();
                    }
                }
            }
            Op::Round { batches, durable } => self.round(batches, durable),
            Op::Flush => {
                let result = self.log().flush();
                if !self.note_failure(&result) {
                    self.model.acked_durable = self.model.end();
                }
            }
            Op::Read { at, max_bytes } => {
                let offset = self.model.pick(at);
                let read = self
                    .log()
                    .read(offset, u64::from(max_bytes), ReadLimit::Written)
                    .unwrap();
                let got = split_batches(&read.bytes);
                if offset == self.model.end() {
                    assert!(got.is_empty());
                } else {
                    let visible = self.model.visible();
                    let first = visible
                        .iter()
                        .position(|(b, bytes)| b + records(bytes) > offset)
                        .unwrap();
                    assert!(
                        !got.is_empty(),
                        "a read below the end returns at least one batch"
                    );
                    assert_eq!(got, visible[first..first + got.len()]);
                    let bytes: usize = got.iter().map(|(_, b)| b.len()).sum();
                    assert!(got.len() == 1 || bytes <= usize::from(max_bytes));
                }
            }
            Op::Timestamp { at } => {
                let visible = self.model.visible();
                let target = i64::from(at % 600) + self.model.clock_ms - 500;
                let expected = linear_timestamp_scan(&visible, target, self.model.log_start);
                assert_eq!(self.log().offset_for_timestamp(target).unwrap(), expected);
            }
            Op::Truncate { at } => {
                let offset = self.model.pick(at);
                let end = self.log().truncate_to(offset, 0);
                if self.note_failure(&end) {
                    // A failed truncation may or may not have cut the log: acknowledged data
                    // from the cut on is no longer promised.
                    let model = &mut self.model;
                    if let Some((base, _)) = model
                        .issued
                        .iter()
                        .find(|(b, bytes)| b + records(bytes) > offset)
                    {
                        model.acked_durable = model.acked_durable.min(*base);
                    }
                    return;
                }
                let end = end.unwrap();
                let model = &mut self.model;
                if offset < model.end() {
                    let containing = model
                        .issued
                        .iter()
                        .find(|(b, bytes)| b + records(bytes) > offset)
                        .unwrap()
                        .0;
                    assert_eq!(end, containing);
                }
                model.issued.retain(|(b, _)| *b < end);
                model.acked_durable = model.acked_durable.min(end);
                model.log_start = model.log_start.min(end);
                model.log_start_durable = model.log_start_durable.min(end);
            }
            Op::DeleteBefore { at } => {
                let offset = self.model.pick(at);
                let result = self.log().delete_before(offset, 0);
                if !self.note_failure(&result) && offset > self.model.log_start {
                    self.model.log_start = offset;
                    self.model.log_start_durable = offset;
                }
                if self.model.failed {
                    self.model.log_start = self.model.log_start.max(offset);
                }
            }
            Op::Retention { age_ms } => {
                let now = self.model.clock_ms + i64::from(age_ms % 4000);
                let before = self.log().offsets().log_start;
                let result = self.log().apply_retention(now);
                if self.note_failure(&result) {
                    return;
                }
                let start = self.log().offsets().log_start;
                assert!(start >= before && start <= self.model.end());
                self.model.log_start = start;
                self.model.log_start_durable = start;
            }
            Op::Checkpoint => {
                let result = self.log().maybe_checkpoint(0);
                self.note_failure(&result);
            }
            Op::RollJobs { jobs } => {
                let log = self.log();
                let disk = Arc::clone(log.disk());
                let mut result = Ok(());
                for _ in 0..jobs {
                    let Some(job) = log.take_roll_job() else {
                        break;
                    };
                    result = log.complete_roll_job(job.run(disk.as_ref()));
                    if result.is_err() {
                        break;
                    }
                }
                self.note_failure(&result);
            }
            Op::FailNextFsync => self.disk.fail_next_fsyncs(1),
            Op::FailNextWrite => self.disk.set_faults(FaultConfig {
                write_eio_ppm: 1_000_000,
                ..FaultConfig::default()
            }),
            Op::Crash { power } => {
                self.disk.set_faults(FaultConfig::default());
                self.log = None;
                self.disk.crash(if power {
                    CrashKind::Power
                } else {
                    CrashKind::Process
                });
                self.recover();
            }
            Op::CrashDuringRecovery { after_ops } => {
                self.disk.set_faults(FaultConfig::default());
                self.disk.fail_next_fsyncs(0);
                self.log = None;
                self.disk.crash(CrashKind::Power);
                self.disk.power_cut_after(u64::from(after_ops));
                let _ = open(&self.disk, &self.config, false);
                self.disk.crash(CrashKind::Power);
                self.recover();
            }
            Op::CleanRestart => {
                self.disk.set_faults(FaultConfig::default());
                let was_failed = self.model.failed;
                let closed = self.log().close();
                self.log = None;
                if was_failed || closed.is_err() {
                    self.disk.crash(CrashKind::Process);
                    self.recover();
                    return;
                }
                self.disk.fail_next_fsyncs(0);
                self.disk.crash(CrashKind::Power);
                let (log, report) = open(&self.disk, &self.config, false).unwrap();
                assert!(report.clean_load, "a clean shutdown loads without a scan");
                self.model.acked_durable = self.model.end();
                assert_eq!(
                    read_all(&log).unwrap(),
                    self.model.visible(),
                    "a clean shutdown keeps everything"
                );
                log.verify().unwrap();
                self.model.log_start_durable = self.model.log_start;
                self.log = Some(log);
            }
        }
        // Clear one-shot write faults after the operation they were meant for.
        if matches!(op, Op::Append { .. } | Op::Round { .. }) {
            self.disk.set_faults(FaultConfig::default());
        }
        // A partition may also fail after acknowledging a round (its checkpoint write failed).
        if self.log.as_ref().is_some_and(|log| log.failure().is_some()) {
            self.model.failed = true;
        }
        if !self.model.failed {
            let offsets = self.log().offsets();
            assert_eq!(offsets.log_end, self.model.end());
            assert_eq!(offsets.log_start, self.model.log_start);
            assert!(offsets.durable >= self.model.acked_durable.min(offsets.log_end));
        }
    }

    /// The shard's path: several batches written, then (if durable) a sync begun, one more
    /// batch written while it is in flight, and its fdatasyncs run; only what was written before
    /// the sync began is acknowledged durable.
    fn round(&mut self, batches: usize, durable: bool) {
        let mut written = Vec::new();
        let mut acked = None;
        let result = {
            let log = self.log.as_mut().unwrap();
            let mut result = Ok(());
            let mut write = |log: &mut PartitionLog, batch: BytesMut| {
                let expected = log.offsets().log_end;
                let valid = ValidBatch::validate(batch.clone(), log.config().max_batch_bytes)
                    .expect("the model makes valid batches");
                if log.must_sync_before(valid.len()) {
                    return Ok(false);
                }
                // A failed write may still have reached the disk: it counts as issued.
                written.push((expected, as_stored(&batch, expected)));
                log.append_valid(valid, 0).map(|_| true)
            };
            for _ in 0..batches {
                let batch = self.model.batch(2, 40);
                match write(log, batch) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if durable && result.is_ok() {
                let mut files = Vec::new();
                result = match log.begin_sync(&mut files) {
                    Ok(Some(ticket)) => {
                        let covered = log.offsets().log_end;
                        let watermark = log.begin_watermark(0);
                        let extra = self.model.batch(1, 20);
                        let during = write(log, extra).map(|_| ());
                        let disk = Arc::clone(log.disk());
                        let synced = files
                            .iter()
                            .try_for_each(|&f| disk.fdatasync(f).map_err(|e| (f, e)));
                        let completed = log.complete_sync(ticket, synced);
                        if let Ok(durable) = completed {
                            // Roll jobs not yet run may keep it below what was covered.
                            assert!(durable <= covered);
                            acked = Some(durable);
                        }
                        let completed = completed.map(|_| ());
                        // The watermark slot is synced after the acknowledgement (it records
                        // what was already durable), as the shard does.
                        let recorded = match watermark {
                            Ok(Some((file, ticket))) => {
                                let result = disk.fdatasync(file);
                                log.complete_watermark(ticket, result)
                            }
                            Ok(None) => Ok(()),
                            Err(e) => Err(e),
                        };
                        completed.and(during).and(recorded)
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            result
        };
        for (base, bytes) in written {
            assert_eq!(base, self.model.end());
            self.model.issued.push((base, bytes));
        }
        self.note_failure(&result);
        if let Some(covered) = acked {
            self.model.acked_durable = self.model.acked_durable.max(covered);
        }
    }
}

/// The first record at or after `target`: first batch whose max timestamp reaches it, then the
/// first record in it that does.
fn linear_timestamp_scan(batches: &[(i64, Vec<u8>)], target: i64, log_start: i64) -> Option<i64> {
    for (_, bytes) in batches {
        let header = rill_segment::batch::BatchHeader::parse(bytes).unwrap();
        if header.max_timestamp < target {
            continue;
        }
        for record in rill_segment::batch::records(bytes).unwrap() {
            let record = record.unwrap();
            if record.timestamp >= target && record.offset >= log_start {
                return Some(record.offset);
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rill_tests::proptest_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn recovery_preserves_every_acknowledged_batch(
        seed in any::<u64>(),
        preallocate in preallocation(),
        small_window in any::<bool>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let config = if small_window {
            small_window_config(preallocate)
        } else {
            config(preallocate)
        };
        let disk = Arc::new(SimDisk::new(seed));
        let (log, _) = open(&disk, &config, false).unwrap();
        let mut harness = Harness { config, disk, log: Some(log), model: Model::default() };
        for op in &ops {
            harness.apply(op);
        }
        // Liveness: without faults, a final crash and recovery keeps everything acknowledged,
        // and the log accepts appends again.
        harness.apply(&Op::Crash { power: true });
        harness.apply(&Op::Append { records: 2, value_bytes: 10, durable: true });
        harness.apply(&Op::Crash { power: true });
    }
}

fn run(seed: u64, ops: &[Op]) {
    run_with(seed, ops, Preallocate::None);
}

fn run_with(seed: u64, ops: &[Op], preallocate: Preallocate) {
    let config = config(preallocate);
    let disk = Arc::new(SimDisk::new(seed));
    let (log, _) = open(&disk, &config, false).unwrap();
    let mut harness = Harness {
        config,
        disk,
        log: Some(log),
        model: Model::default(),
    };
    for op in ops {
        harness.apply(op);
    }
    harness.apply(&Op::Crash { power: true });
}

/// Found by the property test: a deletion after restarts and retention.
#[test]
fn regression_delete_before_after_retention_and_restarts() {
    use Op::*;
    run(
        9_565_952_914_086_320_343,
        &[
            Append {
                records: 2,
                value_bytes: 52,
                durable: true,
            },
            Append {
                records: 4,
                value_bytes: 0,
                durable: false,
            },
            Retention { age_ms: 0 },
            FailNextFsync,
            Crash { power: false },
            FailNextFsync,
            CleanRestart,
            Append {
                records: 2,
                value_bytes: 49,
                durable: false,
            },
            Retention { age_ms: 0 },
            Append {
                records: 3,
                value_bytes: 0,
                durable: false,
            },
            Append {
                records: 4,
                value_bytes: 0,
                durable: false,
            },
            Crash { power: false },
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            Append {
                records: 4,
                value_bytes: 0,
                durable: false,
            },
            Append {
                records: 2,
                value_bytes: 0,
                durable: false,
            },
            DeleteBefore { at: 27180 },
            DeleteBefore { at: 6234 },
        ],
    );
}

/// Found by the property test: an fsync failure during truncation, then a power loss.
#[test]
fn regression_failed_truncation_then_power_loss() {
    use Op::*;
    run(
        5_103_955_050_387_334_083,
        &[
            CrashDuringRecovery { after_ops: 5 },
            Append {
                records: 4,
                value_bytes: 94,
                durable: false,
            },
            Crash { power: false },
            Append {
                records: 2,
                value_bytes: 88,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 143,
                durable: false,
            },
            DeleteBefore { at: 0 },
            CleanRestart,
            Append {
                records: 1,
                value_bytes: 0,
                durable: true,
            },
            Append {
                records: 3,
                value_bytes: 111,
                durable: false,
            },
            Crash { power: false },
            Crash { power: true },
            Append {
                records: 3,
                value_bytes: 93,
                durable: false,
            },
            DeleteBefore { at: 0 },
            Round {
                batches: 3,
                durable: false,
            },
            Crash { power: false },
            Append {
                records: 1,
                value_bytes: 63,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 181,
                durable: false,
            },
            Append {
                records: 4,
                value_bytes: 111,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            Retention { age_ms: 13987 },
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 0,
                durable: true,
            },
            FailNextFsync,
            Truncate { at: 0 },
        ],
    );
}

/// A sticky fault on durable data: a flipped bit or an unreadable sector.
#[derive(Debug, Clone)]
enum Damage {
    Flip { file: u16, byte: u32, bit: u8 },
    BadSector { file: u16, byte: u32 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), 0u8..8).prop_map(|(file, byte, bit)| Damage::Flip {
            file,
            byte,
            bit
        }),
        (any::<u16>(), any::<u32>()).prop_map(|(file, byte)| Damage::BadSector { file, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rill_tests::proptest_cases(48), ..ProptestConfig::default() })]

    /// The "detectable" faults of the fault model (bit rot and latent sector errors on durable
    /// data) cannot always be repaired, but they must never turn into wrong data: every read of
    /// an acknowledged batch returns its exact bytes or a corruption error, whether the log was
    /// open when the damage happened or reopened after it. (The one field the format leaves
    /// unprotected, `partitionLeaderEpoch`, is excluded; see `check_reads`.)
    #[test]
    fn damaged_durable_data_is_never_served(
        seed in any::<u64>(),
        batches in 5usize..40,
        damage in prop::collection::vec(damage(), 1..4),
        clean in any::<bool>(),
    ) {
        let config = small_config();
        let disk = Arc::new(SimDisk::new(seed));
        let (mut log, _) = open(&disk, &config, false).unwrap();
        let mut acked = Vec::new();
        for i in 0..batches {
            let batch = make_batch(1 + i % 4, 30 + (i * 37) % 200, i as i64, seed ^ i as u64);
            let info = log.append(batch.clone(), Durability::Durable, 0).unwrap();
            acked.push((info.base_offset, as_stored(&batch, info.base_offset)));
        }
        let files = disk.paths();
        let mut metadata_damaged = false;
        for d in &damage {
            let (file, byte) = match *d {
                Damage::Flip { file, byte, .. } | Damage::BadSector { file, byte } => (file, byte),
            };
            let path = &files[usize::from(file) % files.len()];
            metadata_damaged |= path.extension().is_some_and(|e| e == "checkpoint" || e == "watermark");
            let len = disk.contents(path).map_or(0, |c| c.len());
            if len == 0 {
                continue;
            }
            let at = u64::from(byte) % len as u64;
            match *d {
                Damage::Flip { bit, .. } => disk.flip_bit(path, at, bit).unwrap(),
                Damage::BadSector { .. } => disk.add_bad_sector(path, at).unwrap(),
            }
        }
        check_reads(&log, &acked);
        if clean {
            let _ = log.close();
        }
        drop(log);
        disk.crash(CrashKind::Power);
        match open(&disk, &config, false) {
            Ok((log, _)) => {
                // Damage is reported or read-checked, never truncated away: only the last
                // durable round (one batch here) is ambiguous after a crash.
                // (Unless the damage also hit the checkpoint and the watermark that tell what
                // was durable: then only the first guarantee holds.)
                let before_last = acked[acked.len() - 1].0;
                prop_assert!(metadata_damaged || log.offsets().log_end >= before_last, "acknowledged data truncated: end {} < {before_last}", log.offsets().log_end);
                check_reads(&log, &acked);
            }
            Err(LogError::Corrupt(_) | LogError::Io { .. }) => {
                // Refused, naming the damage. An explicit repair keeps a prefix of what was
                // acknowledged, byte for byte.
                if let Ok((log, report)) = open(&disk, &config, true) {
                    prop_assert!(report.repaired.is_some() || report.indexes_rebuilt > 0 || report.bytes_truncated == 0);
                    check_reads(&log, &acked);
                }
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

/// Every batch of `acked` still in the log reads back exactly, or fails with corruption.
fn check_reads(log: &PartitionLog, acked: &[(i64, Vec<u8>)]) {
    let offsets = log.offsets();
    for (base, bytes) in acked {
        if *base < offsets.log_start || *base >= offsets.log_end {
            continue;
        }
        match log.read(*base, 1, ReadLimit::Written) {
            Ok(read) => {
                // Kafka's v2 CRC starts at `attributes`: `baseOffset`, `batchLength` and `magic`
                // are checked by structure, but a flipped bit in `partitionLeaderEpoch` (bytes
                // 12..16) cannot be detected from the batch alone (docs/FORMAT.md §1.3).
                let mut got = split_batches(&read.bytes).swap_remove(0).1;
                let mut want = bytes.clone();
                got[12..16].fill(0);
                want[12..16].fill(0);
                assert_eq!(got, want, "wrong bytes served for offset {base}");
            }
            Err(LogError::Corrupt(_)) => {}
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

/// Found by the property test after appends moved to the caller's thread.
#[test]
fn regression_pipelined_rounds_then_clean_restart() {
    use Op::*;
    run_with(
        9_236_522_119_502_367_424,
        &[
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            Round {
                batches: 3,
                durable: true,
            },
            Append {
                records: 4,
                value_bytes: 103,
                durable: false,
            },
            Round {
                batches: 5,
                durable: false,
            },
            Append {
                records: 3,
                value_bytes: 162,
                durable: true,
            },
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 0,
                durable: false,
            },
            FailNextWrite,
            Append {
                records: 2,
                value_bytes: 69,
                durable: false,
            },
            CrashDuringRecovery { after_ops: 13 },
            Append {
                records: 5,
                value_bytes: 241,
                durable: false,
            },
            CleanRestart,
            Round {
                batches: 5,
                durable: true,
            },
            Append {
                records: 5,
                value_bytes: 238,
                durable: true,
            },
            Append {
                records: 5,
                value_bytes: 295,
                durable: false,
            },
            FailNextFsync,
            Append {
                records: 3,
                value_bytes: 242,
                durable: true,
            },
            CleanRestart,
        ],
        Preallocate::Fallocate,
    );
}

/// Found by the property test after appends moved to the caller's thread: a sealed segment's
/// last changes unsynced while the watermark moved past it.
#[test]
fn regression_sealed_segment_unsynced_then_crashes() {
    use Op::*;
    run_with(
        4_217_846_038_643_439_007,
        &[
            DeleteBefore { at: 40799 },
            Append {
                records: 3,
                value_bytes: 153,
                durable: false,
            },
            Round {
                batches: 5,
                durable: true,
            },
            CleanRestart,
            DeleteBefore { at: 9949 },
            Append {
                records: 3,
                value_bytes: 209,
                durable: true,
            },
            Round {
                batches: 4,
                durable: false,
            },
            CleanRestart,
            Retention { age_ms: 3878 },
            Retention { age_ms: 23624 },
            FailNextFsync,
            Append {
                records: 5,
                value_bytes: 250,
                durable: false,
            },
            FailNextWrite,
            Retention { age_ms: 54784 },
            FailNextWrite,
            CrashDuringRecovery { after_ops: 12 },
            Append {
                records: 3,
                value_bytes: 253,
                durable: false,
            },
            Read {
                at: 28392,
                max_bytes: 40369,
            },
            Crash { power: false },
            Append {
                records: 2,
                value_bytes: 1,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 211,
                durable: true,
            },
            DeleteBefore { at: 44722 },
            Append {
                records: 4,
                value_bytes: 144,
                durable: false,
            },
            FailNextFsync,
            Append {
                records: 2,
                value_bytes: 169,
                durable: false,
            },
            Crash { power: false },
            Append {
                records: 4,
                value_bytes: 160,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 282,
                durable: true,
            },
            Timestamp { at: 61701 },
            CrashDuringRecovery { after_ops: 18 },
            Checkpoint,
            Append {
                records: 3,
                value_bytes: 35,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 206,
                durable: true,
            },
            Checkpoint,
            Read {
                at: 5380,
                max_bytes: 52591,
            },
            Checkpoint,
            Checkpoint,
            Truncate { at: 58569 },
            Read {
                at: 48827,
                max_bytes: 11089,
            },
            Round {
                batches: 4,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 22,
                durable: true,
            },
            Read {
                at: 12021,
                max_bytes: 30463,
            },
            Append {
                records: 1,
                value_bytes: 253,
                durable: true,
            },
            Round {
                batches: 5,
                durable: true,
            },
            Append {
                records: 1,
                value_bytes: 60,
                durable: false,
            },
            Crash { power: true },
            Retention { age_ms: 35398 },
            Append {
                records: 4,
                value_bytes: 73,
                durable: false,
            },
            CrashDuringRecovery { after_ops: 22 },
            Truncate { at: 40086 },
            Retention { age_ms: 45492 },
            FailNextFsync,
        ],
        Preallocate::Zeroed,
    );
}

/// Found by the property test when rolls moved off the appender (prepared segments): the
/// recovery point recorded before a roll sits exactly at the new segment's base while the
/// sealed segment's trim is still pending, so recovery must rescan the sealed segment.
#[test]
fn regression_recovery_point_at_roll_boundary_seal_pending() {
    use Op::*;
    run_with(
        3_930_775_069_205_977_864,
        &[
            Crash { power: true },
            Append {
                records: 4,
                value_bytes: 56,
                durable: true,
            },
            Append {
                records: 4,
                value_bytes: 131,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 40,
                durable: true,
            },
            Append {
                records: 5,
                value_bytes: 190,
                durable: false,
            },
            CleanRestart,
            Append {
                records: 2,
                value_bytes: 7,
                durable: true,
            },
            Append {
                records: 2,
                value_bytes: 218,
                durable: true,
            },
            FailNextWrite,
            Append {
                records: 5,
                value_bytes: 192,
                durable: true,
            },
            Round {
                batches: 5,
                durable: false,
            },
            Round {
                batches: 2,
                durable: false,
            },
            RollJobs { jobs: 2 },
            Flush,
            FailNextWrite,
            Checkpoint,
            Append {
                records: 3,
                value_bytes: 91,
                durable: false,
            },
            Checkpoint,
            Crash { power: true },
            DeleteBefore { at: 24314 },
            Append {
                records: 5,
                value_bytes: 46,
                durable: true,
            },
            DeleteBefore { at: 55437 },
            Append {
                records: 2,
                value_bytes: 256,
                durable: false,
            },
            FailNextWrite,
            RollJobs { jobs: 2 },
            FailNextWrite,
            Round {
                batches: 4,
                durable: false,
            },
            CrashDuringRecovery { after_ops: 14 },
            RollJobs { jobs: 3 },
            FailNextFsync,
            Round {
                batches: 2,
                durable: false,
            },
            Append {
                records: 3,
                value_bytes: 269,
                durable: true,
            },
            Round {
                batches: 4,
                durable: false,
            },
            Checkpoint,
            Append {
                records: 1,
                value_bytes: 131,
                durable: true,
            },
            Append {
                records: 1,
                value_bytes: 270,
                durable: true,
            },
            Round {
                batches: 4,
                durable: false,
            },
            Flush,
            DeleteBefore { at: 52537 },
            Round {
                batches: 5,
                durable: false,
            },
            Append {
                records: 1,
                value_bytes: 234,
                durable: true,
            },
            Truncate { at: 41335 },
            Checkpoint,
            Append {
                records: 2,
                value_bytes: 271,
                durable: true,
            },
            Crash { power: true },
            Append {
                records: 3,
                value_bytes: 242,
                durable: true,
            },
            Read {
                at: 49740,
                max_bytes: 63798,
            },
            Append {
                records: 5,
                value_bytes: 248,
                durable: true,
            },
            Read {
                at: 1307,
                max_bytes: 31624,
            },
            Retention { age_ms: 32084 },
            Retention { age_ms: 1358 },
            Crash { power: true },
            Append {
                records: 5,
                value_bytes: 65,
                durable: false,
            },
            Timestamp { at: 8067 },
        ],
        Preallocate::Fallocate,
    );
}

/// Found by the property test when rolls moved off the appender: a sealed segment's
/// preallocated zeros, not yet trimmed, lie before acknowledged data in the next segment; they
/// are not a torn tail.
#[test]
fn regression_untrimmed_sealed_segment_before_acked_data() {
    use Op::*;
    run_with(
        8_209_603_282_694_687_475,
        &[
            FailNextFsync,
            Append {
                records: 3,
                value_bytes: 105,
                durable: false,
            },
            Round {
                batches: 2,
                durable: true,
            },
            CrashDuringRecovery { after_ops: 11 },
            Append {
                records: 5,
                value_bytes: 86,
                durable: true,
            },
            Append {
                records: 4,
                value_bytes: 244,
                durable: false,
            },
            Round {
                batches: 4,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 233,
                durable: true,
            },
            Append {
                records: 4,
                value_bytes: 284,
                durable: false,
            },
            DeleteBefore { at: 18253 },
            CrashDuringRecovery { after_ops: 17 },
            Round {
                batches: 2,
                durable: false,
            },
            Append {
                records: 5,
                value_bytes: 292,
                durable: true,
            },
            Append {
                records: 5,
                value_bytes: 36,
                durable: false,
            },
            Round {
                batches: 3,
                durable: false,
            },
            RollJobs { jobs: 1 },
            Round {
                batches: 2,
                durable: true,
            },
            Read {
                at: 7581,
                max_bytes: 57594,
            },
            FailNextWrite,
        ],
        Preallocate::Fallocate,
    );
}
