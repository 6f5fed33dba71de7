#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Compaction under power cuts (issue #16), as a property: a compacted topic on the simulated
//! disk takes appends of keyed records (some tombstones, some compressed), cleanings, clock
//! steps past the tombstones' retention, and power cuts at random points with a reopen after
//! each. After every reopen, and at the end:
//!
//! * the batches follow each other without an offset gap, and every record present was
//!   appended at its offset (nothing invented, moved or duplicated);
//! * for every key, its last acknowledged record is present at its offset, unless a later
//!   record of that key is (an append the cut interrupted that still landed), or it or such a
//!   later tombstone may have expired;
//! * a cleaning that completed left no superseded record below its clean point.
//!
//! Cases: 16 by default (CI), `PROPTEST_CASES` for a deep run.

use bytes::BytesMut;
use proptest::prelude::*;
use rill::batch::{BatchBuilder, Compression};
use rill::{CleanupPolicy, Config, Durability, Log, LogConfig, Partition, TopicConfig, WallClock};
use rill_segment::disk::Disk;
use rill_sim::{CrashKind, SimDisk};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

const START_MS: i64 = 1_700_000_000_000;
const DELETE_RETENTION_MS: i64 = 10_000;
const KEYS: u8 = 12;

#[derive(Debug, Clone)]
enum Step {
    /// Appends one batch of (key, tombstone) records, compressed with codec `codec` (0: none).
    Append {
        records: Vec<(u8, bool)>,
        codec: u8,
    },
    Compact,
    /// Moves the clock past the tombstones' retention.
    Tick,
    ArmCut {
        ops: u16,
    },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (prop::collection::vec((0..KEYS, prop::bool::weighted(0.1)), 1..5), 0..5u8)
            .prop_map(|(records, codec)| Step::Append { records, codec }),
        2 => Just(Step::Compact),
        1 => Just(Step::Tick),
        1 => (0..200u16).prop_map(|ops| Step::ArmCut { ops }),
        1 => Just(Step::Restart),
    ]
}

type Records = BTreeMap<i64, (u8, Option<String>)>;

fn encode(records: &[(u8, Option<String>)], codec: u8, timestamp_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for (key, value) in records {
        builder
            .append(
                timestamp_ms,
                Some(format!("k{key}").as_bytes()),
                value.as_deref().map(str::as_bytes),
                &[],
            )
            .unwrap();
    }
    let plain = builder.build().unwrap();
    let codec = match codec {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    };
    rill_tests::compress_batch(&plain, codec)
}

fn config(clock: &Arc<AtomicI64>) -> Config {
    let mut config = Config::new("/data");
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: 1024,
        segment_ms: None,
        retention_ms: None,
        max_batch_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let clock = Arc::clone(clock);
    config.wall_clock = WallClock::from_fn(move || clock.load(Ordering::SeqCst));
    config.cleaner_interval_ms = 3_600_000;
    config
}

/// Every record of the partition (keys are `k<n>`).
fn read_records(p: &Partition) -> Records {
    rill_tests::partition_records(p)
        .into_iter()
        .map(|(offset, key, value)| {
            let key: u8 = std::str::from_utf8(&key.unwrap()[1..])
                .unwrap()
                .parse()
                .unwrap();
            let value = value.map(|v| String::from_utf8(v).unwrap());
            (offset, (key, value))
        })
        .collect()
}

struct Run {
    disk: Arc<SimDisk>,
    clock: Arc<AtomicI64>,
    log: Option<Log>,
    /// Every acknowledged record: offset → (key, value).
    acked: Records,
    /// Every value appended (acknowledged or not), with its key.
    issued: BTreeMap<String, u8>,
    /// When each acknowledged tombstone was appended (it may go once the clock passes this
    /// plus the retention).
    tombstone_ms: BTreeMap<i64, i64>,
    /// Tombstones whose append failed (the power was cut) after the key's last acknowledged
    /// record, with their append times: one may have landed, superseded that record, and
    /// expired since.
    unacked_tombstones: BTreeMap<u8, Vec<i64>>,
    next_value: u64,
}

impl Run {
    fn partition(&self) -> Partition {
        self.log.as_ref().unwrap().partition("t", 0).unwrap()
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Append { records, codec } => {
                let now = self.clock.load(Ordering::SeqCst);
                let records: Vec<(u8, Option<String>)> = records
                    .iter()
                    .map(|&(key, tombstone)| {
                        self.next_value += 1;
                        let value = (!tombstone).then(|| format!("v{}@{now}", self.next_value));
                        if let Some(v) = &value {
                            self.issued.insert(v.clone(), key);
                        }
                        (key, value)
                    })
                    .collect();
                let bytes = encode(&records, *codec, now);
                match self
                    .partition()
                    .append_with(bytes, Durability::Durable)
                    .wait()
                {
                    Ok(info) => {
                        for (i, record) in records.into_iter().enumerate() {
                            self.unacked_tombstones.remove(&record.0);
                            let offset = info.base_offset + i as i64;
                            if record.1.is_none() {
                                self.tombstone_ms.insert(offset, now);
                            }
                            self.acked.insert(offset, record);
                        }
                    }
                    Err(e) => {
                        assert!(self.disk.power_is_cut(), "append failed: {e}");
                        for (key, value) in &records {
                            if value.is_none() {
                                self.unacked_tombstones.entry(*key).or_default().push(now);
                            }
                        }
                    }
                }
            }
            Step::Compact => match self.partition().compact_now() {
                Ok(_) => {}
                Err(e) => assert!(self.disk.power_is_cut(), "compaction failed: {e}"),
            },
            Step::Tick => {
                self.clock
                    .fetch_add(2 * DELETE_RETENTION_MS, Ordering::SeqCst);
            }
            Step::ArmCut { ops } => {
                if !self.disk.power_is_cut() {
                    self.disk.power_cut_after(u64::from(*ops));
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
        let (log, _) = Log::open_on(config(&self.clock), as_disk).unwrap();
        self.log = Some(log);
        self.check();
    }

    fn check(&self) {
        let present = read_records(&self.partition());
        for (offset, (key, value)) in &present {
            match self.acked.get(offset) {
                Some(acked) => assert_eq!(acked, &(*key, value.clone()), "offset {offset} changed"),
                None => {
                    // An append the cut interrupted: its values are known, tombstones are not.
                    if let Some(value) = value {
                        assert_eq!(
                            self.issued.get(value),
                            Some(key),
                            "offset {offset} invented"
                        );
                    }
                }
            }
        }
        let mut last: BTreeMap<u8, (i64, Option<String>)> = BTreeMap::new();
        for (offset, (key, value)) in &self.acked {
            last.insert(*key, (*offset, value.clone()));
        }
        for (key, (offset, value)) in last {
            if present.get(&offset) == Some(&(key, value.clone())) {
                continue;
            }
            let superseded = present.iter().any(|(o, (k, _))| *k == key && *o > offset);
            let horizon = self.clock.load(Ordering::SeqCst) - DELETE_RETENTION_MS;
            let expired_tombstone = value.is_none()
                && self
                    .tombstone_ms
                    .get(&offset)
                    .is_some_and(|ms| *ms < horizon);
            let expired_unacked_tombstone = self
                .unacked_tombstones
                .get(&key)
                .is_some_and(|times| times.iter().any(|ms| *ms < horizon));
            assert!(
                superseded || expired_tombstone || expired_unacked_tombstone,
                "key k{key}: its last acknowledged record (offset {offset}) is gone"
            );
        }
    }
}

fn run_case(seed: u64, steps: &[Step]) {
    let clock = Arc::new(AtomicI64::new(START_MS));
    let disk = Arc::new(SimDisk::new(seed));
    let as_disk: Arc<dyn Disk> = disk.clone();
    let (log, _) = Log::open_on(config(&clock), as_disk).unwrap();
    let topic = TopicConfig {
        cleanup_policy: Some(CleanupPolicy::Compact),
        delete_retention_ms: Some(DELETE_RETENTION_MS),
        ..TopicConfig::default()
    };
    log.create_topic_with("t", 1, &topic).unwrap();
    let mut run = Run {
        disk,
        clock,
        log: Some(log),
        acked: BTreeMap::new(),
        issued: BTreeMap::new(),
        tombstone_ms: BTreeMap::new(),
        unacked_tombstones: BTreeMap::new(),
        next_value: seed << 20,
    };
    for step in steps {
        run.apply(step);
    }
    run.restart();
    // With the power on, a cleaning completes and leaves no superseded record below its
    // clean point.
    if let Some(report) = run.partition().compact_now().unwrap() {
        let present = read_records(&run.partition());
        let mut seen = BTreeMap::new();
        for (offset, (key, _)) in present.iter().rev() {
            if let Some(later) = seen.get(key)
                && *later < report.clean_point
            {
                panic!("k{key} at {offset} superseded by {later}, below the clean point");
            }
            seen.insert(*key, *offset);
        }
    }
    run.check();
    run.log.take().unwrap().close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rill_tests::proptest_cases(16), ..ProptestConfig::default() })]

    #[test]
    fn every_key_keeps_its_last_record_across_power_cuts(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        run_case(seed, &steps);
    }
}
