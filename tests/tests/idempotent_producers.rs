#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Idempotent producers (issue #16): producer ids never handed out twice, a retried batch
//! stored once and answered with the original's offsets, gaps and fenced epochs refused, the
//! state kept across clean and unclean restarts (snapshots with rolls and at close, rebuilt
//! from the log after a crash), truncation and retention.
//!
//! The property test runs producers against a partition on the simulated disk, retrying
//! batches (acknowledged ones, and ones whose append the power cut interrupted), bumping
//! epochs, and cutting the power at random points with a reopen after each cut. It checks that
//! no batch is ever stored twice, that every acknowledged batch stays at its offset, and that a
//! retry is answered with the offsets it was first given. Cases: 16 by default (CI),
//! `PROPTEST_CASES` for a deep run.

use bytes::BytesMut;
use proptest::prelude::*;
use rill::batch::{BatchBuilder, BatchHeader};
use rill::{Config, Durability, Error, Log, LogConfig, Partition};
use rill_segment::disk::Disk;
use rill_sim::{CrashKind, SimDisk};
use std::collections::BTreeMap;
use std::sync::Arc;

fn batch(producer_id: i64, epoch: i16, sequence: i32, records: usize, seed: u64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    builder.producer(producer_id, epoch, sequence);
    for i in 0..records {
        let value = format!("p{producer_id}e{epoch}s{}:{seed}", sequence + i as i32);
        builder
            .append(1_000 + i as i64, Some(b"k"), Some(value.as_bytes()), &[])
            .unwrap();
    }
    BytesMut::from(&builder.build().unwrap()[..])
}

fn config(dir: impl AsRef<std::path::Path>) -> Config {
    let mut config = Config::new(dir);
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: 1024,
        segment_ms: None,
        retention_ms: None,
        max_batch_bytes: 1024,
        index_interval_bytes: 128,
        max_timestamp_ahead_ms: None,
        ..LogConfig::default()
    };
    config
}

/// Every batch of a partition: (base offset, producer id, epoch, base sequence).
fn stored(p: &Partition) -> Vec<(i64, i64, i16, i32)> {
    let end = p.offsets().log_end;
    let mut offset = p.offsets().log_start;
    let mut out = Vec::new();
    // Bounded: each read returns at least one batch.
    while offset < end {
        let read = p.read(offset, 1 << 16).wait().unwrap();
        for b in read.batches() {
            let h = BatchHeader::parse(b).unwrap();
            out.push((
                h.base_offset,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
            ));
        }
        offset = read.next_offset;
    }
    out
}

#[test]
fn a_retry_is_answered_with_the_original_offsets_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic("t", 1).unwrap();
    let producer = log.init_producer_id().unwrap();
    assert_eq!(producer.epoch, 0);
    let p = log.partition("t", 0).unwrap();
    let mut acked = Vec::new();
    let mut seq = 0;
    // Enough batches to roll several 1 KiB segments (each roll snapshots the state).
    for i in 0..40 {
        let b = batch(producer.id, 0, seq, 3, i);
        let info = p.append_with(b, Durability::Durable).wait().unwrap();
        assert!(!info.duplicate);
        acked.push((seq, info.base_offset));
        seq += 3;
    }
    let retry = |p: &Partition, (seq, offset): (i32, i64), seed| {
        let info = p
            .append_with(batch(producer.id, 0, seq, 3, seed), Durability::Durable)
            .wait()
            .unwrap();
        assert!(info.duplicate, "sequence {seq} stored twice");
        assert_eq!(info.base_offset, offset);
        assert_eq!(info.last_offset, offset + 2);
    };
    retry(&p, acked[39], 39);
    retry(&p, acked[35], 35);
    // Older than the five remembered: out of order, as in Kafka.
    assert!(matches!(
        p.append_with(
            batch(producer.id, 0, acked[30].0, 3, 30),
            Durability::Durable
        )
        .wait(),
        Err(Error::OutOfOrderSequence { .. })
    ));
    // A gap.
    match p
        .append_with(batch(producer.id, 0, seq + 1, 1, 99), Durability::Durable)
        .wait()
    {
        Err(Error::OutOfOrderSequence {
            expected, found, ..
        }) => assert_eq!((expected, found), (seq, seq + 1)),
        other => panic!("{other:?}"),
    }
    log.close().unwrap();

    // After a clean restart (the close's snapshot) and after a crash (the roll's snapshot and
    // the log after it), the same retry is still a duplicate.
    let (log, _) = Log::open(config(dir.path())).unwrap();
    let p = log.partition("t", 0).unwrap();
    retry(&p, acked[39], 39);
    let next = log.init_producer_id().unwrap();
    assert!(next.id > producer.id, "ids are never handed out twice");
    drop(p);
    std::mem::forget(log); // no clean close: the next open recovers
    let (log, report) = Log::open(config(dir.path())).unwrap();
    assert!(!report.partitions[0].report.clean_load);
    let p = log.partition("t", 0).unwrap();
    retry(&p, acked[38], 38);
    // A new epoch starts at 0 and fences the old one.
    p.append_with(batch(producer.id, 1, 0, 1, 7), Durability::Durable)
        .wait()
        .unwrap();
    assert!(matches!(
        p.append_with(batch(producer.id, 0, seq, 1, 8), Durability::Durable)
            .wait(),
        Err(Error::ProducerFenced {
            current_epoch: 1,
            ..
        })
    ));
    let third = log.init_producer_id().unwrap();
    assert!(third.id > next.id);
    let batches = stored(&p);
    assert_eq!(batches.len(), 41, "40 batches and the new epoch's first");
    log.close().unwrap();
}

/// A batch of no producer (`producer_id` -1), as `Partition::append_records` makes.
fn plain_batch(records: usize, seed: u64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for i in 0..records {
        let value = format!("plain {seed}:{i}");
        builder
            .append(1_000 + i as i64, None, Some(value.as_bytes()), &[])
            .unwrap();
    }
    BytesMut::from(&builder.build().unwrap()[..])
}

#[test]
fn after_a_crash_the_state_is_rebuilt_without_reading_segments_of_no_producer() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    // Several 1 KiB segments of plain batches, the last one left active.
    for i in 0..30 {
        p.append_with(plain_batch(3, i), Durability::Durable)
            .wait()
            .unwrap();
    }
    drop(p);
    std::mem::forget(log); // no clean close: the next open recovers
    let (log, report) = Log::open(config(dir.path())).unwrap();
    let recovered = &report.partitions[0].report;
    assert!(!recovered.clean_load);
    assert!(recovered.segments_scanned > 0, "{recovered:?}");
    assert_eq!(
        recovered.producer_headers_read, 0,
        "the rescanned segments hold no producer's batch: nothing to read again"
    );

    // A producer's batches in the active segment are still found after the next crash.
    let producer = log.init_producer_id().unwrap();
    let p = log.partition("t", 0).unwrap();
    let first = p
        .append_with(batch(producer.id, 0, 0, 2, 1), Durability::Durable)
        .wait()
        .unwrap();
    p.append_with(plain_batch(2, 99), Durability::Durable)
        .wait()
        .unwrap();
    drop(p);
    std::mem::forget(log);
    let (log, report) = Log::open(config(dir.path())).unwrap();
    assert!(!report.partitions[0].report.clean_load);
    let p = log.partition("t", 0).unwrap();
    let retry = p
        .append_with(batch(producer.id, 0, 0, 2, 1), Durability::Durable)
        .wait()
        .unwrap();
    assert!(retry.duplicate, "the producer's batch was stored twice");
    assert_eq!(retry.base_offset, first.base_offset);
    log.close().unwrap();
}

#[test]
fn truncation_and_retention_keep_the_state_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic("t", 1).unwrap();
    let pid = log.init_producer_id().unwrap().id;
    let p = log.partition("t", 0).unwrap();
    let mut offsets = Vec::new();
    for i in 0..30 {
        let info = p
            .append_with(batch(pid, 0, i, 1, 0), Durability::Durable)
            .wait()
            .unwrap();
        offsets.push(info.base_offset);
    }
    // Truncate the last ten: the producer continues from sequence 20, and sequence 25 is no
    // longer a duplicate but a gap.
    p.truncate_to(offsets[20]).wait().unwrap();
    assert!(matches!(
        p.append_with(batch(pid, 0, 25, 1, 0), Durability::Durable)
            .wait(),
        Err(Error::OutOfOrderSequence { expected: 20, .. })
    ));
    let info = p
        .append_with(batch(pid, 0, 20, 1, 1), Durability::Durable)
        .wait()
        .unwrap();
    assert!(!info.duplicate);
    assert_eq!(info.base_offset, offsets[20]);
    // Deleting everything below the end forgets the producer's batches: it may start anywhere.
    let end = p.offsets().log_end;
    p.delete_before(end).wait().unwrap();
    let info = p
        .append_with(batch(pid, 0, 500, 1, 2), Durability::Durable)
        .wait()
        .unwrap();
    assert!(!info.duplicate);
    log.close().unwrap();
}

#[test]
fn batches_without_a_sequence_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    assert!(matches!(
        p.append_with(batch(5, 0, -1, 1, 0), Durability::Written)
            .wait(),
        Err(Error::InvalidBatch(
            rill::batch::BatchError::InvalidSequence { .. }
        ))
    ));
    // Batches of no producer are never checked: the same bytes twice are two batches.
    for _ in 0..2 {
        let info = p
            .append_with(batch(-1, -1, -1, 1, 0), Durability::Written)
            .wait()
            .unwrap();
        assert!(!info.duplicate);
    }
    log.close().unwrap();
}

#[derive(Debug, Clone)]
enum Step {
    /// Producer sends its next batch of `records` records (first retrying a batch whose append
    /// was interrupted).
    Send { producer: usize, records: u8 },
    /// Producer resends one of its last acknowledged batches (`back` from the newest).
    Retry { producer: usize, back: u8 },
    /// Producer starts a new epoch.
    Bump { producer: usize },
    /// Cut the power after this many more disk operations (applies from the next step).
    ArmCut { ops: u16 },
    /// Close (the power may be cut), lose what a power cut loses, and reopen.
    Restart,
}

const PRODUCERS: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..PRODUCERS, 1..4u8).prop_map(|(producer, records)| Step::Send { producer, records }),
        3 => (0..PRODUCERS, 0..6u8).prop_map(|(producer, back)| Step::Retry { producer, back }),
        1 => (0..PRODUCERS).prop_map(|producer| Step::Bump { producer }),
        1 => (0..300u16).prop_map(|ops| Step::ArmCut { ops }),
        1 => Just(Step::Restart),
    ]
}

/// What a producer has sent.
#[derive(Debug)]
struct ProducerModel {
    id: i64,
    epoch: i16,
    next_sequence: i32,
    /// Acknowledged batches of the current epoch, oldest first: (sequence, records, offset).
    acked: Vec<(i32, u8, i64)>,
    /// A batch whose append failed (the power was cut): it must be sent again, as is, before
    /// anything else; stored at most once either way.
    in_doubt: Option<(i32, u8)>,
}

struct Run {
    disk: Arc<SimDisk>,
    log: Option<Log>,
    producers: Vec<ProducerModel>,
    /// Every acknowledged batch: offset → (producer, epoch, sequence).
    acked: BTreeMap<i64, (i64, i16, i32)>,
    seed: u64,
}

impl Run {
    fn partition(&self) -> Partition {
        self.log.as_ref().unwrap().partition("t", 0).unwrap()
    }

    fn append(&mut self, producer: usize, sequence: i32, records: u8) -> Result<i64, Error> {
        let model = &self.producers[producer];
        self.seed += 1;
        let b = batch(model.id, model.epoch, sequence, records.into(), self.seed);
        let info = self
            .partition()
            .append_with(b, Durability::Durable)
            .wait()?;
        Ok(info.base_offset)
    }

    /// Sends the in-doubt batch if there is one; whether the producer may go on.
    fn settle(&mut self, producer: usize) -> bool {
        let Some((sequence, records)) = self.producers[producer].in_doubt else {
            return true;
        };
        match self.append(producer, sequence, records) {
            Ok(offset) => {
                self.acknowledge(producer, sequence, records, offset);
                self.producers[producer].in_doubt = None;
                true
            }
            Err(e) => {
                assert!(
                    self.disk.power_is_cut(),
                    "retry failed with the power on: {e}"
                );
                false
            }
        }
    }

    fn acknowledge(&mut self, producer: usize, sequence: i32, records: u8, offset: i64) {
        let model = &mut self.producers[producer];
        let key = (model.id, model.epoch, sequence);
        if let Some(before) = self.acked.get(&offset) {
            assert_eq!(*before, key, "offset {offset} acknowledged for two batches");
        }
        if let Some((_, _, first)) = model.acked.iter().find(|(s, _, _)| *s == sequence) {
            assert_eq!(*first, offset, "a retry answered with other offsets");
        } else {
            model.acked.push((sequence, records, offset));
            if model.acked.len() > 5 {
                model.acked.remove(0);
            }
        }
        self.acked.insert(offset, key);
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Send { producer, records } => {
                if !self.settle(producer) {
                    return;
                }
                let sequence = self.producers[producer].next_sequence;
                self.producers[producer].next_sequence += i32::from(records);
                match self.append(producer, sequence, records) {
                    Ok(offset) => self.acknowledge(producer, sequence, records, offset),
                    Err(e) => {
                        assert!(
                            self.disk.power_is_cut(),
                            "append failed with the power on: {e}"
                        );
                        self.producers[producer].in_doubt = Some((sequence, records));
                    }
                }
            }
            Step::Retry { producer, back } => {
                if !self.settle(producer) {
                    return;
                }
                let acked = &self.producers[producer].acked;
                let Some(&(sequence, records, _)) = acked
                    .iter()
                    .rev()
                    .nth(usize::from(back) % acked.len().max(1))
                else {
                    return;
                };
                match self.append(producer, sequence, records) {
                    Ok(offset) => self.acknowledge(producer, sequence, records, offset),
                    Err(e) => assert!(self.disk.power_is_cut(), "retry failed: {e}"),
                }
            }
            Step::Bump { producer } => {
                if self.producers[producer].in_doubt.is_none() {
                    let model = &mut self.producers[producer];
                    model.epoch += 1;
                    model.next_sequence = 0;
                    model.acked.clear();
                }
            }
            Step::ArmCut { ops } => {
                if !self.disk.power_is_cut() {
                    self.disk.power_cut_after(u64::from(ops));
                }
            }
            Step::Restart => self.restart(),
        }
    }

    fn restart(&mut self) {
        if let Some(log) = self.log.take() {
            let _ = log.close();
        }
        self.disk.crash(CrashKind::Power);
        let as_disk: Arc<dyn Disk> = self.disk.clone();
        let (log, _) = Log::open_on(config("/data"), as_disk).unwrap();
        self.log = Some(log);
        self.check();
    }

    /// No batch stored twice; every acknowledged batch at its offset.
    fn check(&self) {
        let batches = stored(&self.partition());
        let mut seen = BTreeMap::new();
        for &(offset, pid, epoch, sequence) in &batches {
            if pid >= 0 {
                let before = seen.insert((pid, epoch, sequence), offset);
                assert!(
                    before.is_none(),
                    "producer {pid} epoch {epoch} sequence {sequence} stored at {before:?} and {offset}"
                );
            }
        }
        let at: BTreeMap<i64, (i64, i16, i32)> = batches
            .iter()
            .map(|&(o, pid, epoch, seq)| (o, (pid, epoch, seq)))
            .collect();
        for (offset, key) in &self.acked {
            assert_eq!(
                at.get(offset),
                Some(key),
                "acknowledged batch at {offset} lost"
            );
        }
    }
}

fn run_case(seed: u64, steps: &[Step]) {
    let disk = Arc::new(SimDisk::new(seed));
    let as_disk: Arc<dyn Disk> = disk.clone();
    let (log, _) = Log::open_on(config("/data"), as_disk).unwrap();
    log.create_topic("t", 1).unwrap();
    let producers = (0..PRODUCERS)
        .map(|_| ProducerModel {
            id: log.init_producer_id().unwrap().id,
            epoch: 0,
            next_sequence: 0,
            acked: Vec::new(),
            in_doubt: None,
        })
        .collect();
    let mut run = Run {
        disk,
        log: Some(log),
        producers,
        acked: BTreeMap::new(),
        seed: seed << 16,
    };
    for step in steps {
        run.apply(step);
    }
    run.restart();
    // Every producer settles its in-doubt batch with the power on: stored exactly once.
    for producer in 0..PRODUCERS {
        assert!(run.settle(producer), "settling after the last restart");
    }
    run.check();
    run.log.take().unwrap().close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rill_tests::proptest_cases(16), ..ProptestConfig::default() })]

    #[test]
    fn retries_across_power_cuts_are_stored_once(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        run_case(seed, &steps);
    }
}
