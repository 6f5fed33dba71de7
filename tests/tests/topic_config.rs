#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Per-topic configuration (issue #16): stored with the topic, in effect on its partitions,
//! changed at run time, kept across reopens and crashes, checked with typed errors; the
//! log-append-time type and the clock limits on timestamps.

use rill::batch::{self, BatchError, BatchHeader};
use rill::{Config, Durability, Error, Log, LogConfig, TimestampType, TopicConfig, WallClock};
use rill_segment::disk::Disk;
use rill_sim::{CrashKind, SimDisk};
use rill_tests::make_batch;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A clock the test sets.
fn stepped_clock(start_ms: i64) -> (WallClock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start_ms));
    let read = Arc::clone(&now);
    (WallClock::from_fn(move || read.load(Ordering::SeqCst)), now)
}

fn config(dir: &Path) -> Config {
    let mut config = Config::new(dir);
    config.shards = 2;
    config.log = LogConfig {
        segment_bytes: 64 << 10,
        max_batch_bytes: 16 << 10,
        retention_ms: None,
        max_timestamp_ahead_ms: None,
        ..LogConfig::default()
    };
    config
}

/// Segment files in a partition directory.
fn segments(data_dir: &Path, partition_dir: &str) -> usize {
    std::fs::read_dir(data_dir.join(partition_dir))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

fn small_segments() -> TopicConfig {
    TopicConfig {
        segment_bytes: Some(4096),
        max_batch_bytes: Some(2048),
        retention_bytes: Some(Some(1 << 20)),
        ..TopicConfig::default()
    }
}

#[test]
fn a_topic_keeps_its_own_settings_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("small", 3, &small_segments())
        .unwrap();
    log.create_topic("plain", 1).unwrap();
    assert_eq!(log.topic_config("small").unwrap(), small_segments());
    assert_eq!(log.topic_config("plain").unwrap(), TopicConfig::default());
    let effective = log.topic_log_config("small").unwrap();
    assert_eq!(effective.segment_bytes, 4096);
    assert_eq!(effective.retention_bytes, Some(1 << 20));
    assert_eq!(log.partition("small", 2).unwrap().max_batch_bytes(), 2048);
    assert_eq!(
        log.partition("plain", 0).unwrap().max_batch_bytes(),
        16 << 10
    );

    // Small segments roll on the small topic only.
    let small = log.partition("small", 0).unwrap();
    let plain = log.partition("plain", 0).unwrap();
    for seed in 0..20 {
        small
            .append_with(make_batch(4, 100, 1_000, seed), Durability::Written)
            .wait()
            .unwrap();
        plain
            .append_with(make_batch(4, 100, 1_000, seed), Durability::Written)
            .wait()
            .unwrap();
    }
    assert!(
        segments(dir.path(), "small-0") > 1,
        "the topic's segment_bytes rolls"
    );
    assert_eq!(segments(dir.path(), "plain-0"), 1);
    log.close().unwrap();

    let (log, _) = Log::open(config(dir.path())).unwrap();
    assert_eq!(log.topic_config("small").unwrap(), small_segments());
    assert_eq!(log.partition("small", 1).unwrap().max_batch_bytes(), 2048);
    assert_eq!(log.topic_config("plain").unwrap(), TopicConfig::default());
    log.delete_topic("small").unwrap();
    assert!(matches!(
        log.topic_config("small"),
        Err(Error::UnknownTopic(_))
    ));
    log.close().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    assert!(log.topic_config("small").is_err());
    assert!(
        !dir.path().join("topic-configs/small.cfg").exists(),
        "a deleted topic's configuration is removed"
    );
    log.close().unwrap();
}

#[test]
fn an_altered_setting_applies_at_once_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic("t", 2).unwrap();
    let p = log.partition("t", 1).unwrap();
    let big = make_batch(20, 200, 1_000, 1);
    assert!(big.len() > 2048 && big.len() < 16 << 10);
    p.append_with(big.clone(), Durability::Written)
        .wait()
        .unwrap();

    let mut altered = log.topic_config("t").unwrap();
    altered.set("max.message.bytes", "2048").unwrap();
    altered.set("segment.bytes", "4096").unwrap();
    log.alter_topic_config("t", &altered).unwrap();
    assert_eq!(p.max_batch_bytes(), 2048);
    match p.append_with(big.clone(), Durability::Written).wait() {
        Err(Error::InvalidBatch(BatchError::TooLarge { max_bytes, .. })) => {
            assert_eq!(max_bytes, 2048);
        }
        other => panic!("a batch over the altered limit was not refused: {other:?}"),
    }
    // The smaller segment size rolls at the next append past it.
    let before = segments(dir.path(), "t-1");
    p.append_with(make_batch(2, 100, 1_000, 2), Durability::Durable)
        .wait()
        .unwrap();
    assert!(segments(dir.path(), "t-1") > before);
    log.close().unwrap();

    let (log, _) = Log::open(config(dir.path())).unwrap();
    assert_eq!(log.topic_config("t").unwrap(), altered);
    assert_eq!(log.partition("t", 0).unwrap().max_batch_bytes(), 2048);
    // Unset: back to the log's defaults (the default batch limit needs the default segment
    // size too: the pair is checked together).
    let mut back = altered.clone();
    back.unset("max.message.bytes").unwrap();
    assert!(matches!(
        log.alter_topic_config("t", &back),
        Err(Error::InvalidTopicConfig { .. })
    ));
    back.unset("segment.bytes").unwrap();
    log.alter_topic_config("t", &back).unwrap();
    let p = log.partition("t", 1).unwrap();
    p.append_with(big, Durability::Written).wait().unwrap();
    log.close().unwrap();
}

#[test]
fn bad_settings_are_refused_by_name_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    let too_large = TopicConfig {
        max_batch_bytes: Some(1 << 20),
        ..TopicConfig::default()
    };
    match log.create_topic_with("t", 1, &too_large) {
        Err(Error::InvalidTopicConfig { key, .. }) => assert_eq!(key, "max.message.bytes"),
        other => panic!("{other:?}"),
    }
    assert!(log.topics().is_empty());
    assert!(!dir.path().join("t-0").exists());
    assert!(!dir.path().join("topic-configs/t.cfg").exists());

    log.create_topic("t", 1).unwrap();
    let negative = TopicConfig {
        retention_ms: Some(Some(-2)),
        ..TopicConfig::default()
    };
    assert!(matches!(
        log.alter_topic_config("t", &negative),
        Err(Error::InvalidTopicConfig { ref key, .. }) if key == "retention.ms"
    ));
    assert_eq!(log.topic_config("t").unwrap(), TopicConfig::default());
    assert!(matches!(
        log.alter_topic_config("nope", &TopicConfig::default()),
        Err(Error::UnknownTopic(_))
    ));
    let mut unknown = TopicConfig::default();
    assert!(matches!(
        unknown.set("cleanup.policy.bogus", "x"),
        Err(Error::InvalidTopicConfig { .. })
    ));
    log.close().unwrap();
}

#[test]
fn log_append_time_stamps_batches_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, now) = stepped_clock(1_700_000_000_000);
    let mut config = config(dir.path());
    config.wall_clock = clock;
    let (log, _) = Log::open(config).unwrap();
    let topic = TopicConfig {
        timestamp_type: Some(TimestampType::LogAppendTime),
        // Would refuse the producer's timestamps (from 1970) under CreateTime.
        max_timestamp_behind_ms: Some(Some(1000)),
        ..TopicConfig::default()
    };
    log.create_topic_with("audit", 1, &topic).unwrap();
    let p = log.partition("audit", 0).unwrap();
    let mut stamps = Vec::new();
    for seed in 0..3 {
        now.fetch_add(10_000, Ordering::SeqCst);
        stamps.push(now.load(Ordering::SeqCst));
        p.append_with(make_batch(3, 50, 5, seed), Durability::Durable)
            .wait()
            .unwrap();
    }
    let read = p.read(0, 1 << 20).wait().unwrap();
    let headers: Vec<BatchHeader> = read
        .batches()
        .map(|b| batch::check_stored(b, BatchHeader::parse(b).unwrap().base_offset).unwrap())
        .collect();
    assert_eq!(headers.len(), 3);
    for (header, stamp) in headers.iter().zip(&stamps) {
        assert!(header.attributes.is_log_append_time());
        assert_eq!(
            header.max_timestamp, *stamp,
            "maxTimestamp is the append time"
        );
    }
    // Lookups by time use the append times.
    assert_eq!(p.offset_for_timestamp(stamps[1]).wait().unwrap(), Some(3));
    assert_eq!(p.offset_for_timestamp(stamps[2] + 1).wait().unwrap(), None);
    // Back to CreateTime: the producer's timestamps are checked again.
    log.alter_topic_config(
        "audit",
        &TopicConfig {
            max_timestamp_behind_ms: Some(Some(1000)),
            ..TopicConfig::default()
        },
    )
    .unwrap();
    match p
        .append_with(make_batch(1, 10, 5, 9), Durability::Written)
        .wait()
    {
        Err(Error::InvalidBatch(BatchError::TimestampBehind {
            allowed_behind_ms, ..
        })) => assert_eq!(allowed_behind_ms, 1000),
        other => panic!("an old timestamp was not refused: {other:?}"),
    }
    let fresh = now.load(Ordering::SeqCst) - 500;
    p.append_with(make_batch(1, 10, fresh, 9), Durability::Written)
        .wait()
        .unwrap();
    log.close().unwrap();
}

#[test]
fn a_log_from_before_topic_configs_opens_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("old", 2, &small_segments()).unwrap();
    log.close().unwrap();
    // A data directory written before topic configurations existed has none.
    std::fs::remove_dir_all(dir.path().join("topic-configs")).unwrap();
    let (log, report) = Log::open(config(dir.path())).unwrap();
    assert_eq!(report.partitions.len(), 2);
    assert_eq!(log.topic_config("old").unwrap(), TopicConfig::default());
    assert!(dir.path().join("topic-configs/old.cfg").exists());
    log.close().unwrap();
}

#[test]
fn a_damaged_configuration_refuses_the_open_unless_repairing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("t", 1, &small_segments()).unwrap();
    log.close().unwrap();
    let path = dir.path().join("topic-configs/t.cfg");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    match Log::open(config(dir.path())) {
        Err(Error::DamagedTopicConfig { path: named, .. }) => assert_eq!(named, path),
        other => panic!("{other:?}"),
    }
    let mut repair = config(dir.path());
    repair.repair = true;
    let (log, _) = Log::open(repair).unwrap();
    assert_eq!(log.topic_config("t").unwrap(), TopicConfig::default());
    assert_eq!(log.topics()[0].partitions, 1);
    log.close().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.close().unwrap();
}

/// Topic administration with the power cut after every count of disk operations: after the
/// reopen a topic is either absent or whole, and its configuration is the one before or the
/// one after the interrupted change, never a mix or a default where a setting was made.
#[test]
fn topic_admin_survives_a_power_cut_at_every_step() {
    let base = || {
        let mut config = Config::new("/data");
        config.shards = 2;
        config.log = LogConfig {
            segment_bytes: 64 << 10,
            max_batch_bytes: 16 << 10,
            retention_ms: None,
            ..LogConfig::default()
        };
        config
    };
    let first = small_segments();
    let second = TopicConfig {
        segment_bytes: Some(8192),
        timestamp_type: Some(TimestampType::LogAppendTime),
        ..TopicConfig::default()
    };
    let mut cut = 0;
    // Bounded: every cut count adds one operation before the cut, and a run that completes
    // every step ends the loop.
    loop {
        assert!(cut < 10_000, "the steps never completed");
        let disk = Arc::new(SimDisk::new(cut));
        let as_disk: Arc<dyn Disk> = disk.clone();
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        disk.power_cut_after(cut);
        // 0: nothing, 1: created with `first`, 2: altered to `second`, 3: deleted.
        let mut done = 0;
        if log.create_topic_with("t", 3, &first).is_ok() {
            done = 1;
            if log.alter_topic_config("t", &second).is_ok() {
                done = 2;
                if log.delete_topic("t").is_ok() {
                    done = 3;
                }
            }
        }
        let finished = !disk.power_is_cut();
        let _ = log.close();
        drop(log);
        disk.crash(CrashKind::Power);
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        let found = log.topic_config("t").ok();
        let partitions = log.partitions("t").map_or(0, |p| p.len());
        // Allowed outcomes: the state after the last completed step, or after the next one.
        let after = |step: u32| match step {
            0 | 3 => None,
            1 => Some(first.clone()),
            _ => Some(second.clone()),
        };
        let ok = found == after(done) || (done < 3 && found == after(done + 1));
        assert!(ok, "cut after {cut} ops: step {done} done, found {found:?}");
        if found.is_some() {
            assert_eq!(partitions, 3, "cut after {cut}: a partial topic");
            let effective = log.topic_log_config("t").unwrap();
            let p = log.partition("t", 2).unwrap();
            assert_eq!(p.log_config(), effective, "cut after {cut}");
        }
        log.close().unwrap();
        if finished {
            break;
        }
        cut += 1;
    }
    assert!(cut > 20, "the steps took only {cut} disk operations");
}

/// A topic only grows; the new partitions take appends at once and are there after a reopen,
/// and a power cut after any disk operation of the growth leaves the old count or the new one.
#[test]
fn create_partitions_grows_a_topic_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    log.create_topic_with("t", 2, &small_segments()).unwrap();
    assert!(matches!(
        log.create_partitions("t", 2),
        Err(Error::InvalidTopic { .. })
    ));
    log.create_partitions("t", 5).unwrap();
    assert_eq!(log.partitions("t").unwrap().len(), 5);
    let p = log.partition("t", 4).unwrap();
    assert_eq!(p.max_batch_bytes(), 2048, "the topic's settings");
    p.append_with(make_batch(2, 10, 1_000, 1), Durability::Durable)
        .wait()
        .unwrap();
    log.close().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    assert_eq!(log.topics()[0].partitions, 5);
    assert_eq!(log.partition("t", 4).unwrap().offsets().log_end, 2);
    log.close().unwrap();

    let base = || {
        let mut config = Config::new("/data");
        config.shards = 2;
        config.log.retention_ms = None;
        config
    };
    let mut cut = 0;
    // Bounded: each count cuts one operation later, until the growth completes.
    loop {
        assert!(cut < 10_000);
        let disk = Arc::new(SimDisk::new(cut));
        let as_disk: Arc<dyn Disk> = disk.clone();
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        log.create_topic("g", 2).unwrap();
        disk.power_cut_after(cut);
        let grown = log.create_partitions("g", 5).is_ok();
        let finished = grown && !disk.power_is_cut();
        let _ = log.close();
        drop(log);
        disk.crash(CrashKind::Power);
        let (log, _) = Log::open_on(base(), Arc::clone(&as_disk)).unwrap();
        let count = log.partitions("g").unwrap().len();
        assert!(
            count == 2 || count == 5,
            "cut after {cut}: {count} partitions"
        );
        if grown {
            assert_eq!(count, 5, "cut after {cut}: a completed growth was lost");
        }
        log.close().unwrap();
        if finished {
            break;
        }
        cut += 1;
    }
    assert!(cut > 5, "the growth took only {cut} disk operations");
}
