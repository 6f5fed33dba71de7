#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Compaction (issue #16): the last record of each key stays at its offset, superseded
//! records and expired tombstones go, compressed batches keep their codec, keyless records are
//! refused, the cleaner works in passes under a small key map and in the background, appends go
//! on during a cleaning, a power cut at any step of a cleaning leaves a log with every key's
//! last record, and kafka-python (an independent reader) reads a compacted segment.

use bytes::BytesMut;
use rill::batch::{self, BatchBuilder, BatchHeader, Compression};
use rill::{
    CleanupPolicy, Config, Durability, Error, Log, LogConfig, Partition, TopicConfig, WallClock,
};
use rill_segment::disk::Disk;
use rill_sim::{CrashKind, SimDisk};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

const NOW_MS: i64 = 1_700_000_000_000;

fn config(dir: impl AsRef<Path>) -> Config {
    let mut config = Config::new(dir);
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: 2048,
        segment_ms: None,
        retention_ms: None,
        max_batch_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    config.wall_clock = WallClock::from_fn(|| NOW_MS);
    // Cleanings in these tests are asked for, except in the background test.
    config.cleaner_interval_ms = 3_600_000;
    config
}

fn compacted() -> TopicConfig {
    TopicConfig {
        cleanup_policy: Some(CleanupPolicy::Compact),
        ..TopicConfig::default()
    }
}

/// One batch of (key, value) records; `None` values are tombstones.
fn batch(records: &[(String, Option<String>)], timestamp_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for (key, value) in records {
        builder
            .append(
                timestamp_ms,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
                &[],
            )
            .unwrap();
    }
    BytesMut::from(&builder.build().unwrap()[..])
}

/// Every record of the partition: offset → (key, value).
fn records(p: &Partition) -> BTreeMap<i64, (String, Option<String>)> {
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    rill_tests::partition_records(p)
        .into_iter()
        .map(|(offset, key, value)| (offset, (text(key.unwrap()), value.map(text))))
        .collect()
}

/// The last record of each key, by key: (offset, value).
fn latest(
    all: &BTreeMap<i64, (String, Option<String>)>,
) -> BTreeMap<String, (i64, Option<String>)> {
    let mut latest = BTreeMap::new();
    for (offset, (key, value)) in all {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    latest
}

/// Appends `rounds` updates of keys `k0..k{keys}`, a batch of `per_batch` records at a time.
fn fill(p: &Partition, keys: usize, rounds: usize, per_batch: usize) {
    let mut pending = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            pending.push((format!("k{k}"), Some(format!("v{round}-{k}"))));
            if pending.len() == per_batch {
                p.append_with(batch(&pending, NOW_MS), Durability::Written)
                    .wait()
                    .unwrap();
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        p.append_with(batch(&pending, NOW_MS), Durability::Written)
            .wait()
            .unwrap();
    }
}

/// What compaction must leave: the last record of each key at its offset, and only records
/// that were appended at their offsets.
fn check_compacted(
    before: &BTreeMap<i64, (String, Option<String>)>,
    after: &BTreeMap<i64, (String, Option<String>)>,
) {
    for (key, (offset, value)) in latest(before) {
        assert_eq!(
            after.get(&offset),
            Some(&(key.clone(), value)),
            "the last record of {key} (offset {offset}) is gone"
        );
    }
    for (offset, record) in after {
        assert_eq!(
            before.get(offset),
            Some(record),
            "offset {offset} was not appended"
        );
    }
}

#[test]
fn the_last_record_of_each_key_stays_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("state", 1, &compacted()).unwrap();
    let p = log.partition("state", 0).unwrap();
    fill(&p, 10, 30, 3);
    p.flush().wait().unwrap();
    let before = records(&p);
    let report = p
        .compact_now()
        .unwrap()
        .expect("sealed segments were dirty");
    assert!(report.records_removed > 0);
    assert!(report.bytes_after < report.bytes_before);
    assert!(report.segments_after <= report.segments_before);
    let after = records(&p);
    check_compacted(&before, &after);
    assert!(after.len() < before.len() / 2, "superseded records went");
    // Reads at offsets whose records went are answered with the next batch.
    let (first_gap, _) = before.iter().find(|(o, _)| !after.contains_key(o)).unwrap();
    let read = p.read(*first_gap, 1).wait().unwrap();
    assert!(read.batches().count() == 1 && read.next_offset > *first_gap);
    // A second cleaning with nothing dirty does nothing.
    assert!(p.compact_now().unwrap().is_none());
    // Appends go on; a clean reopen and an unclean one keep the compacted log.
    fill(&p, 10, 1, 5);
    let expected = records(&p);
    log.close().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    assert_eq!(records(&log.partition("state", 0).unwrap()), expected);
    std::mem::forget(log);
    let (log, report) = Log::open(config(dir.path())).unwrap();
    assert!(!report.partitions[0].report.clean_load);
    let p = log.partition("state", 0).unwrap();
    assert_eq!(records(&p), expected);
    log.close().unwrap();
    // The files pass a full verification.
    let (partition_log, _) = rill_segment::PartitionLog::open(
        Arc::new(rill_segment::disk::StdDisk::new()),
        &dir.path().join("state-0"),
        LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..config(dir.path()).log
        },
        rill_segment::OpenOptions::default(),
    )
    .unwrap();
    partition_log.verify().unwrap();
}

#[test]
fn tombstones_go_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(NOW_MS));
    let clock = Arc::clone(&now);
    let mut config = config(dir.path());
    config.wall_clock = WallClock::from_fn(move || clock.load(Ordering::SeqCst));
    let (log, _) = Log::open(config).unwrap();
    let topic = TopicConfig {
        delete_retention_ms: Some(60_000),
        ..compacted()
    };
    log.create_topic_with("t", 1, &topic).unwrap();
    let p = log.partition("t", 0).unwrap();
    fill(&p, 4, 10, 2);
    p.append_with(batch(&[("k1".into(), None)], NOW_MS), Durability::Written)
        .wait()
        .unwrap();
    fill(&p, 1, 30, 1); // keys k0 only: rolls the tombstone into a sealed segment
    p.compact_now().unwrap();
    let tombstone = |all: &BTreeMap<i64, (String, Option<String>)>| {
        all.values()
            .filter(|(k, v)| k == "k1" && v.is_none())
            .count()
    };
    let after = records(&p);
    assert_eq!(tombstone(&after), 1, "a young tombstone stays");
    assert!(
        after.values().all(|(k, v)| k != "k1" || v.is_none()),
        "k1's values went"
    );
    now.fetch_add(120_000, Ordering::SeqCst);
    fill(&p, 1, 30, 1);
    p.compact_now().unwrap();
    let later = records(&p);
    assert!(
        later.values().all(|(k, _)| k != "k1"),
        "an old tombstone goes"
    );
    log.close().unwrap();
}

#[test]
fn compressed_batches_keep_their_codec_and_keyless_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("t", 1, &compacted()).unwrap();
    let p = log.partition("t", 0).unwrap();
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for round in 0..12 {
        let codec = codecs[round % codecs.len()];
        let records: Vec<_> = (0..4)
            .map(|k| {
                (
                    format!("k{k}"),
                    Some(format!("v{round}-{k}-{}", "x".repeat(40))),
                )
            })
            .collect();
        let plain = batch(&records, NOW_MS);
        p.append_with(
            rill_tests::compress_batch(&plain, codec),
            Durability::Written,
        )
        .wait()
        .unwrap();
    }
    fill(&p, 1, 20, 1);
    let before = records(&p);
    p.compact_now().unwrap().unwrap();
    let after = records(&p);
    check_compacted(&before, &after);
    let read = p.read(0, 1 << 20).wait().unwrap();
    for b in read.batches() {
        let header = BatchHeader::parse(b).unwrap();
        if header.records_count > 0 && header.base_offset < 48 {
            assert_ne!(header.attributes.compression(), Some(Compression::None));
        }
    }
    let mut keyless = BatchBuilder::new();
    keyless.append(NOW_MS, None, Some(b"v"), &[]).unwrap();
    let keyless = BytesMut::from(&keyless.build().unwrap()[..]);
    assert!(matches!(
        p.append_with(keyless, Durability::Written).wait(),
        Err(Error::InvalidBatch(batch::BatchError::MissingKey))
    ));
    log.close().unwrap();
}

#[test]
fn a_small_key_map_cleans_in_passes_and_appends_go_on_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Room for 150 keys: a 2 KiB segment holds fewer, the dirty part (200 keys) more.
    config.cleaner.key_map_bytes = 150 * rill_segment::compaction::KEY_MAP_ENTRY_BYTES;
    let (log, _) = Log::open(config).unwrap();
    log.create_topic_with("t", 1, &compacted()).unwrap();
    let p = log.partition("t", 0).unwrap();
    fill(&p, 200, 2, 4);
    let before = records(&p);
    let appender = {
        let p = p.clone();
        std::thread::spawn(move || fill(&p, 3, 50, 1))
    };
    let mut passes = 0;
    let mut clean_point = 0;
    // Bounded: each pass moves the clean point, at most once per segment.
    while let Some(report) = p.compact_now().unwrap() {
        assert!(report.clean_point > clean_point, "a pass made no progress");
        clean_point = report.clean_point;
        passes += 1;
        assert!(passes < 1_000);
    }
    appender.join().unwrap();
    assert!(passes > 1, "the small map took {passes} pass(es)");
    let after = records(&p);
    // The records appended during the cleaning are there too.
    let mut all = before.clone();
    for (offset, record) in &after {
        all.entry(*offset).or_insert_with(|| record.clone());
    }
    check_compacted(&all, &after);
    log.close().unwrap();
}

#[test]
fn the_cleaner_thread_cleans_when_the_dirty_ratio_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.cleaner_interval_ms = 5;
    let (log, _) = Log::open(config).unwrap();
    log.create_topic_with("t", 1, &compacted()).unwrap();
    log.create_topic("plain", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    let plain = log.partition("plain", 0).unwrap();
    fill(&p, 5, 40, 5);
    fill(&plain, 5, 40, 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Observes the clean point the cleaner moves (bounded by the deadline).
    while p.compaction_state().2 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleaner never ran"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        plain.compaction_state().2,
        0,
        "a delete-policy topic is not compacted"
    );
    log.close().unwrap();
}

/// A power cut after every count of disk operations of a cleaning and its install: the reopened
/// log holds every key's last record at its offset and only records that were appended.
#[test]
fn a_power_cut_anywhere_in_a_cleaning_keeps_every_key() {
    let base = || {
        let mut config = config("/data");
        config.cleaner_interval_ms = 3_600_000;
        config
    };
    let mut cut = 0;
    // Bounded: each count cuts one operation later, until a cleaning completes.
    loop {
        assert!(cut < 5_000);
        let disk = Arc::new(SimDisk::new(cut));
        let as_disk: Arc<dyn Disk> = disk.clone();
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        log.create_topic_with("t", 1, &compacted()).unwrap();
        let p = log.partition("t", 0).unwrap();
        fill(&p, 8, 12, 3);
        p.flush().wait().unwrap();
        let before = records(&p);
        disk.power_cut_after(cut);
        let done = p.compact_now().is_ok();
        let finished = done && !disk.power_is_cut();
        let _ = log.close();
        drop(p);
        drop(log);
        disk.crash(CrashKind::Power);
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        let after = records(&log.partition("t", 0).unwrap());
        check_compacted(&before, &after);
        log.close().unwrap();
        if finished {
            assert!(
                after.len() < before.len(),
                "the completed cleaning removed nothing"
            );
            break;
        }
        cut += 1;
    }
    assert!(cut > 10, "the cleaning took only {cut} disk operations");
}

/// kafka-python, a Kafka implementation nobody on this project wrote, reads a compacted
/// segment: the offsets and keys it finds are the ones rill serves.
#[test]
fn kafka_python_reads_a_compacted_segment() {
    let python_has_kafka = std::process::Command::new("python3")
        .args(["-c", "import kafka"])
        .status()
        .is_ok_and(|s| s.success());
    if !python_has_kafka {
        assert!(
            std::env::var_os("RILL_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "kafka-python is not installed; run scripts/setup.sh"
        );
        eprintln!("SKIP: kafka-python is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("t", 1, &compacted()).unwrap();
    let p = log.partition("t", 0).unwrap();
    fill(&p, 6, 20, 3);
    p.compact_now().unwrap().unwrap();
    let expected = records(&p);
    log.close().unwrap();
    let script = r#"
import json, os, sys
from kafka.record.default_records import DefaultRecordBatch
out = []
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.endswith(".log"):
        continue
    data = open(os.path.join(d, name), "rb").read()
    pos = 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big")
        if length == 0:
            break
        batch = DefaultRecordBatch(data[pos:pos + 12 + length])
        assert batch.validate_crc(), "crc"
        for r in batch:
            out.append([r.offset, r.key.decode(), None if r.value is None else r.value.decode()])
        pos += 12 + length
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("t-0"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: Vec<(i64, String, Option<String>)> = serde_json::from_slice(&output.stdout).unwrap();
    let found: BTreeMap<i64, (String, Option<String>)> =
        found.into_iter().map(|(o, k, v)| (o, (k, v))).collect();
    assert_eq!(found, expected);
}

/// The zero-copy send path serves a compacted partition as reads do: from any offset, whole
/// batches whose offsets run on without a gap, byte for byte what a read returns.
#[test]
fn sends_of_a_compacted_partition_match_its_reads() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("t", 1, &compacted()).unwrap();
    let p = log.partition("t", 0).unwrap();
    fill(&p, 10, 30, 3);
    p.compact_now().unwrap().unwrap();
    let end = p.offsets().log_end;
    let (mut receiver, sender) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut offset = 0;
    // Bounded: each send moves past at least one batch.
    while offset < end {
        let read = p.read(offset, 4096).wait().unwrap();
        let expected: Vec<u8> = read.batches().flatten().copied().collect();
        let info = p
            .send(offset, 4096, &sender, rill::SendHeader::from(Vec::new()))
            .wait()
            .unwrap();
        assert_eq!(info.batch_bytes, expected.len() as u64, "at {offset}");
        assert_eq!(info.next_offset, read.next_offset);
        let mut got = vec![0u8; expected.len()];
        receiver.read_exact(&mut got).unwrap();
        assert!(
            got == expected,
            "the send at {offset} differs from the read"
        );
        offset = info.next_offset;
    }
    log.close().unwrap();
}
