#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! The whole engine on the simulated disk (issue #15): `Log::open_on` runs the shards, their
//! queues, the disk driver, roll jobs, recovery and topic management on a `SimDisk`, and the
//! power is cut after a random number of mutating disk calls.
//!
//! A generated run creates and deletes topics, appends from two threads at once (written and
//! durable, across partitions and shards, rolling small segments), reads, flushes, truncates,
//! deletes below an offset and empties partitions to start again past their end; in half the runs retention by size runs every millisecond
//! beside them. Every operation either succeeds or fails only because the power is cut (or,
//! with retention, because it moved the log start past the offset given). Then the log is
//! closed (which must return), the disk loses what a power cut loses (unsynced writes lost,
//! torn or zero-filled; directory entries not synced lost), and the log is opened again. It
//! must open, and:
//!
//! * every batch acknowledged durable, or covered by a completed flush, is present byte for
//!   byte at its offset (unless a truncation or deletion removed it, or retention could have:
//!   at least `RETENTION_BYTES` were appended after it);
//! * each partition is a contiguous run of batches that were appended to it, acknowledged ones
//!   at their acknowledged offsets: nothing invented, duplicated or zero-filled;
//! * a topic whose creation completed is there, one whose deletion completed is not; an
//!   interrupted creation or deletion may go either way;
//! * appends continue at the recovered end, and after a clean close and another power cut
//!   nothing is missing (but what retention deleted from the front meanwhile).
//!
//! Cases: 16 by default (CI), `PROPTEST_CASES` for a deep run.

use proptest::prelude::*;
use rill::{Config, Durability, Log, LogConfig, Partition};
use rill_segment::batch::BatchHeader;
use rill_segment::disk::Disk;
use rill_sim::{CrashKind, SimDisk};
use rill_tests::{as_stored, make_batch};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

const TOPICS: u8 = 3;
const PARTITIONS: u32 = 2;
const SEGMENT_BYTES: u64 = 1024;
const MAX_BATCH_BYTES: usize = 1024;
/// In the runs with retention: small enough that it deletes segments in most runs (and then
/// only the batches with less than this appended after them must survive).
const RETENTION_BYTES: u64 = SEGMENT_BYTES;

#[derive(Debug, Clone)]
enum Step {
    /// Appends from two threads at once: (topic, partition, records, durable) per append.
    Burst(Vec<(u8, u8, u8, bool)>),
    Read {
        topic: u8,
        partition: u8,
        at: u16,
    },
    Flush {
        topic: u8,
        partition: u8,
    },
    Truncate {
        topic: u8,
        partition: u8,
        back: u8,
    },
    DeleteBefore {
        topic: u8,
        partition: u8,
        ahead: u8,
    },
    /// `truncate_fully_and_start_at` this far from the end (below it, or past it).
    StartAt {
        topic: u8,
        partition: u8,
        shift: i8,
    },
    Create {
        topic: u8,
    },
    Delete {
        topic: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let topic = 0..TOPICS;
    let part = 0..PARTITIONS as u8;
    prop_oneof![
        6 => prop::collection::vec((0..TOPICS, 0..PARTITIONS as u8, 1..6u8, any::<bool>()), 1..12)
            .prop_map(Step::Burst),
        2 => (topic.clone(), part.clone(), any::<u16>())
            .prop_map(|(topic, partition, at)| Step::Read { topic, partition, at }),
        1 => (topic.clone(), part.clone())
            .prop_map(|(topic, partition)| Step::Flush { topic, partition }),
        1 => (topic.clone(), part.clone(), 0..6u8)
            .prop_map(|(topic, partition, back)| Step::Truncate { topic, partition, back }),
        1 => (topic.clone(), part.clone(), 0..20u8)
            .prop_map(|(topic, partition, ahead)| Step::DeleteBefore { topic, partition, ahead }),
        1 => (topic.clone(), part, -20..20i8)
            .prop_map(|(topic, partition, shift)| Step::StartAt { topic, partition, shift }),
        2 => topic.clone().prop_map(|topic| Step::Create { topic }),
        1 => topic.prop_map(|topic| Step::Delete { topic }),
    ]
}

/// What the test knows of one partition.
#[derive(Debug, Default)]
struct PartModel {
    /// Acknowledged batches by base offset: (bytes as stored, next offset, acknowledged durable).
    acked: BTreeMap<i64, (Vec<u8>, i64, bool)>,
    /// Bytes appended to the partition before each acknowledged batch was (by base offset).
    issued_before: BTreeMap<i64, u64>,
    /// Bytes of every batch appended to the partition (acknowledged or not, truncated or not).
    issued_bytes: u64,
    /// Whether retention by size runs on the log.
    retention: bool,
    /// Every batch appended (acknowledged or not), without its base offset.
    issued: HashSet<Vec<u8>>,
    /// A completed flush made everything below this durable.
    flushed: i64,
    /// Batches below this may have been deleted.
    may_drop_below: i64,
    /// Batches holding an offset at or above this may have been truncated (an interrupted
    /// truncation: batches go whole).
    may_drop_from: i64,
}

impl PartModel {
    fn new(retention: bool) -> Self {
        Self {
            may_drop_from: i64::MAX,
            retention,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicState {
    Absent,
    Present,
    /// A creation or deletion was interrupted by the power cut.
    Unknown,
}

struct Run {
    disk: Arc<SimDisk>,
    log: Log,
    topics: Vec<TopicState>,
    parts: Mutex<BTreeMap<(u8, u32), PartModel>>,
    next_seed: u64,
    retention: bool,
}

fn name(topic: u8) -> String {
    format!("t{topic}")
}

fn config(retention: bool) -> Config {
    let mut config = Config::new("/data");
    config.shards = 2;
    // Retention runs often, so it races appends, syncs and rolls.
    config.maintenance_interval_ms = 1;
    config.log = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        segment_ms: None,
        retention_bytes: retention.then_some(RETENTION_BYTES),
        // The batches' timestamps are from 1970: time retention would delete every sealed
        // segment.
        retention_ms: None,
        index_interval_bytes: 256,
        max_batch_bytes: MAX_BATCH_BYTES,
        checkpoint_interval_ms: 0,
        watermark_interval_ms: 0,
        ..LogConfig::default()
    };
    config
}

impl Run {
    /// A failed operation is acceptable only once the power is cut, or, with retention on, when
    /// retention moved the log start past the offset the operation was given.
    fn expect_cut(&self, what: &str, e: &rill::Error) {
        let overtaken = self.retention && matches!(e, rill::Error::OffsetOutOfRange { .. });
        assert!(
            self.disk.power_is_cut() || overtaken,
            "{what} failed with the power on: {e}"
        );
    }

    fn partition(&self, topic: u8, partition: u8) -> Option<Partition> {
        if self.topics[topic as usize] != TopicState::Present {
            return None;
        }
        self.log.partition(&name(topic), u32::from(partition)).ok()
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Burst(appends) => self.burst(appends),
            Step::Read {
                topic,
                partition,
                at,
            } => self.read(*topic, *partition, *at),
            Step::Flush { topic, partition } => {
                let Some(p) = self.partition(*topic, *partition) else {
                    return;
                };
                match p.flush().wait() {
                    Ok(offsets) => {
                        let mut parts = self.parts.lock().unwrap();
                        let model = parts.get_mut(&(*topic, u32::from(*partition))).unwrap();
                        model.flushed = model.flushed.max(offsets.durable);
                    }
                    Err(e) => self.expect_cut("flush", &e),
                }
            }
            Step::Truncate {
                topic,
                partition,
                back,
            } => self.truncate(*topic, *partition, *back),
            Step::DeleteBefore {
                topic,
                partition,
                ahead,
            } => self.delete_before(*topic, *partition, *ahead),
            Step::StartAt {
                topic,
                partition,
                shift,
            } => self.start_at(*topic, *partition, *shift),
            Step::Create { topic } => self.create(*topic),
            Step::Delete { topic } => self.delete(*topic),
        }
    }

    fn burst(&mut self, appends: &[(u8, u8, u8, bool)]) {
        let seed = self.next_seed;
        self.next_seed += appends.len() as u64;
        let run: &Run = self;
        std::thread::scope(|scope| {
            for half in 0..2 {
                scope.spawn(move || {
                    for (i, &(topic, partition, records, durable)) in
                        appends.iter().enumerate().skip(half).step_by(2)
                    {
                        run.append(topic, partition, records, durable, seed + i as u64);
                    }
                });
            }
        });
    }

    fn append(&self, topic: u8, partition: u8, records: u8, durable: bool, seed: u64) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let batch = make_batch(
            usize::from(records),
            40,
            1_000 + (seed % 1_000_000) as i64,
            seed,
        );
        let key = (topic, u32::from(partition));
        let issued_before = {
            let mut parts = self.parts.lock().unwrap();
            let model = parts.get_mut(&key).unwrap();
            model.issued.insert(batch[8..].to_vec());
            model.issued_bytes += batch.len() as u64;
            model.issued_bytes - batch.len() as u64
        };
        let durability = if durable {
            Durability::Durable
        } else {
            Durability::Written
        };
        match p.append_with(batch.clone(), durability).wait() {
            Ok(info) => {
                let stored = as_stored(&batch, info.base_offset);
                let mut parts = self.parts.lock().unwrap();
                let model = parts.get_mut(&key).unwrap();
                let next = info.last_offset + 1;
                model.issued_before.insert(info.base_offset, issued_before);
                let old = model
                    .acked
                    .insert(info.base_offset, (stored, next, durable));
                assert!(
                    old.is_none(),
                    "offset {} acknowledged twice",
                    info.base_offset
                );
            }
            Err(e) => self.expect_cut("append", &e),
        }
    }

    fn read(&self, topic: u8, partition: u8, at: u16) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let offsets = p.offsets();
        if offsets.log_end <= offsets.log_start {
            return;
        }
        let span = offsets.log_end - offsets.log_start;
        let offset = offsets.log_start + i64::from(at) % span;
        match p.read(offset, 4096).wait() {
            Ok(read) => {
                let parts = self.parts.lock().unwrap();
                let model = &parts[&(topic, u32::from(partition))];
                for batch in read.batches() {
                    let base = i64::from_be_bytes(batch[..8].try_into().unwrap());
                    if let Some((stored, _, _)) = model.acked.get(&base) {
                        assert!(stored[..] == *batch, "read at {base} differs");
                    }
                }
            }
            Err(e) => self.expect_cut("read", &e),
        }
    }

    fn truncate(&self, topic: u8, partition: u8, back: u8) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let offsets = p.offsets();
        let to = (offsets.log_end - i64::from(back)).max(offsets.log_start);
        let result = p.truncate_to(to).wait();
        let mut parts = self.parts.lock().unwrap();
        let model = parts.get_mut(&(topic, u32::from(partition))).unwrap();
        match result {
            Ok(end) => {
                // Batches at or past the new end are gone; later appends reuse their offsets.
                model.acked.retain(|&base, _| base < end);
                model.flushed = model.flushed.min(end);
            }
            Err(e) => {
                drop(parts);
                self.expect_cut("truncate", &e);
                let mut parts = self.parts.lock().unwrap();
                let model = parts.get_mut(&(topic, u32::from(partition))).unwrap();
                model.may_drop_from = model.may_drop_from.min(to);
            }
        }
    }

    fn delete_before(&self, topic: u8, partition: u8, ahead: u8) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let offsets = p.offsets();
        let to = (offsets.log_start + i64::from(ahead)).min(offsets.log_end);
        let result = p.delete_before(to).wait();
        let mut parts = self.parts.lock().unwrap();
        let model = parts.get_mut(&(topic, u32::from(partition))).unwrap();
        let bound = match &result {
            Ok(start) => *start,
            Err(_) => to,
        };
        model.may_drop_below = model.may_drop_below.max(bound);
        drop(parts);
        if let Err(e) = result {
            self.expect_cut("delete_before", &e);
        }
    }

    fn start_at(&self, topic: u8, partition: u8, shift: i8) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let end = p.offsets().log_end;
        let to = (end + i64::from(shift)).max(0);
        let result = p.truncate_fully_and_start_at(to).wait();
        let mut parts = self.parts.lock().unwrap();
        let model = parts.get_mut(&(topic, u32::from(partition))).unwrap();
        // Interrupted, every batch may be gone (the old log or none survives); done, every
        // one is, and later appends start at `to`.
        model.may_drop_below = model.may_drop_below.max(to).max(end);
        match result {
            Ok(start) => {
                assert_eq!(start, to);
                model.acked.clear();
            }
            Err(e) => {
                drop(parts);
                self.expect_cut("truncate_fully_and_start_at", &e);
            }
        }
    }

    fn create(&mut self, topic: u8) {
        if self.topics[topic as usize] != TopicState::Absent {
            return;
        }
        match self.log.create_topic(&name(topic), PARTITIONS) {
            Ok(()) => {
                self.topics[topic as usize] = TopicState::Present;
                let mut parts = self.parts.lock().unwrap();
                for index in 0..PARTITIONS {
                    parts.insert((topic, index), PartModel::new(self.retention));
                }
            }
            Err(e) => {
                self.expect_cut("create_topic", &e);
                self.topics[topic as usize] = TopicState::Unknown;
            }
        }
    }

    fn delete(&mut self, topic: u8) {
        if self.topics[topic as usize] != TopicState::Present {
            return;
        }
        let result = self.log.delete_topic(&name(topic));
        self.parts.lock().unwrap().retain(|&(t, _), _| t != topic);
        match result {
            Ok(()) => self.topics[topic as usize] = TopicState::Absent,
            Err(e) => {
                self.expect_cut("delete_topic", &e);
                self.topics[topic as usize] = TopicState::Unknown;
            }
        }
    }
}

/// Reads a whole partition: (base offset, batch bytes), checking that batches follow each other
/// without a gap. Retention may delete segments from the front meanwhile: the read then starts
/// again from the new log start (a bounded number of times: each restart means a segment went).
fn read_all(p: &Partition) -> Vec<(i64, Vec<u8>)> {
    for _ in 0..1_000 {
        if let Some(batches) = try_read_all(p) {
            return batches;
        }
    }
    panic!("retention kept overtaking the read");
}

fn try_read_all(p: &Partition) -> Option<Vec<(i64, Vec<u8>)>> {
    let offsets = p.offsets();
    let mut offset = offsets.log_start;
    let mut expected: Option<i64> = None;
    let mut batches = Vec::new();
    // Bounded: each read returns at least one batch, so the offset advances.
    while offset < offsets.log_end {
        let read = match p.read(offset, 1 << 16).wait() {
            Ok(read) => read,
            Err(rill::Error::OffsetOutOfRange { log_start, .. }) if log_start > offset => {
                return None;
            }
            Err(e) => panic!("reading at {offset}: {e}"),
        };
        for batch in read.batches() {
            let header = BatchHeader::parse(batch).unwrap();
            let base = header.base_offset;
            if let Some(expected) = expected {
                assert_eq!(base, expected, "a gap or overlap before offset {base}");
            }
            expected = Some(header.next_offset());
            batches.push((base, batch.to_vec()));
        }
        assert!(read.next_offset > offset, "a read did not advance");
        offset = read.next_offset;
    }
    Some(batches)
}

/// Whether retention may have deleted the batch at `base`: it deletes a segment only while the
/// log keeps at least `RETENTION_BYTES` after it, so a batch with fewer bytes after it than that
/// stays. What lies after it is bounded by what was appended after it was (plus one batch the
/// other thread may have been placing at the same time), truncated batches included.
fn retention_may_drop(model: &PartModel, base: i64, len: usize) -> bool {
    if !model.retention {
        return false;
    }
    let before = model.issued_before.get(&base).copied().unwrap_or(0);
    let after = model.issued_bytes.saturating_sub(before + len as u64) + MAX_BATCH_BYTES as u64;
    after >= RETENTION_BYTES
}

/// Checks the reopened log against the model.
fn check(log: &Log, topics: &[TopicState], parts: &BTreeMap<(u8, u32), PartModel>) {
    let present: BTreeMap<String, u32> = log
        .topics()
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    for (i, state) in topics.iter().enumerate() {
        let topic = name(i as u8);
        match state {
            TopicState::Present => assert_eq!(
                present.get(&topic),
                Some(&PARTITIONS),
                "topic {topic} was lost"
            ),
            TopicState::Absent => assert!(!present.contains_key(&topic), "topic {topic} came back"),
            TopicState::Unknown => {}
        }
    }
    for (&(topic, index), model) in parts {
        if topics[topic as usize] != TopicState::Present {
            continue;
        }
        let p = log.partition(&name(topic), index).unwrap();
        let batches = read_all(&p);
        let found: BTreeMap<i64, &Vec<u8>> = batches.iter().map(|(o, b)| (*o, b)).collect();
        for (base, bytes) in &batches {
            match model.acked.get(base) {
                Some((stored, _, _)) if *base < model.may_drop_from => {
                    assert!(stored == bytes, "t{topic}-{index}: batch at {base} differs");
                }
                _ => assert!(
                    model.issued.contains(&bytes[8..]),
                    "t{topic}-{index}: batch at {base} was never appended"
                ),
            }
        }
        let log_start = p.offsets().log_start;
        for (base, (stored, next, durable)) in &model.acked {
            // An interrupted truncation to `t` may remove the whole batch holding `t`.
            let must_keep = (*durable || *next <= model.flushed)
                && *base >= model.may_drop_below
                && *next <= model.may_drop_from
                && !retention_may_drop(model, *base, stored.len());
            if must_keep {
                assert!(
                    *base >= log_start,
                    "t{topic}-{index}: log start {log_start} passed acknowledged batch {base}"
                );
                assert!(
                    found.get(base).copied() == Some(stored),
                    "t{topic}-{index}: acknowledged batch at {base} lost or changed \
                     (log start {log_start}, {} batches)",
                    batches.len()
                );
            }
        }
    }
}

fn run_case(seed: u64, cut_after: Option<u64>, retention: bool, steps: &[Step]) {
    let config = || config(retention);
    let disk = Arc::new(SimDisk::new(seed));
    let as_disk: Arc<dyn Disk> = disk.clone();
    let (log, _) = Log::open_on(config(), Arc::clone(&as_disk)).unwrap();
    if let Some(ops) = cut_after {
        disk.power_cut_after(ops);
    }
    let mut run = Run {
        disk: Arc::clone(&disk),
        log,
        topics: vec![TopicState::Absent; TOPICS as usize],
        parts: Mutex::new(BTreeMap::new()),
        next_seed: seed << 20,
        retention,
    };
    for step in steps {
        run.apply(step);
    }
    let closed = run.log.close();
    if !disk.power_is_cut() {
        closed.unwrap();
    }
    drop(run.log);
    disk.crash(CrashKind::Power);

    let (log, _) = Log::open_on(config(), Arc::clone(&as_disk)).unwrap();
    let parts = run.parts.into_inner().unwrap();
    check(&log, &run.topics, &parts);

    // Appends continue at the recovered end; a clean close keeps everything.
    let mut after = Vec::new();
    for info in log.topics() {
        for p in log.partitions(&info.name).unwrap() {
            let end = p.offsets().log_end;
            let batch = make_batch(2, 40, 5_000, seed ^ 0xabc);
            let appended = p.append_with(batch, Durability::Written).wait().unwrap();
            assert_eq!(
                appended.base_offset, end,
                "appends did not continue at the end"
            );
            after.push((info.name.clone(), p.index(), read_all(&p)));
        }
    }
    log.close().unwrap();
    drop(log);
    disk.crash(CrashKind::Power);
    let (log, _) = Log::open_on(config(), as_disk).unwrap();
    for (topic, index, before) in after {
        let p = log.partition(&topic, index).unwrap();
        let now = read_all(&p);
        // Retention may have deleted whole segments from the front meanwhile; nothing else goes.
        let kept = if retention {
            before.ends_with(&now) && !now.is_empty()
        } else {
            now == before
        };
        assert!(kept, "{topic}-{index} lost data across a clean close");
    }
    log.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: rill_tests::proptest_cases(16), ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_data_survives_a_power_cut_anywhere(
        seed in any::<u64>(),
        // Early cuts land inside most runs; late ones let long runs roll, retain and delete.
        cut_after in prop::option::weighted(0.85, prop_oneof![0..500u64, 500..4_000u64]),
        retention in any::<bool>(),
        steps in prop::collection::vec(step(), 1..24),
    ) {
        // Creations first in most runs, so appends have somewhere to go.
        let mut all = vec![Step::Create { topic: 0 }, Step::Create { topic: 1 }];
        all.extend(steps);
        run_case(seed, cut_after, retention, &all);
    }
}
