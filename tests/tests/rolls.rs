#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Segment rolls off the appender's path, through the shard and its roll-job thread, on both
//! drivers: once the active segment is half full the next file is prepared ahead (it appears as
//! `next-segment.prepared`), the roll is a rename, durable appends across rolls are answered
//! (their acknowledgement waits for the rename's directory sync), every sealed segment gets its
//! index files, and the log reopens with every acknowledged batch.

use rill::{Config, DriverChoice, Durability, Log, LogConfig, Preallocate, Record};
use std::path::Path;
use std::time::{Duration, Instant};

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];
const SEGMENT_BYTES: u64 = 64 * 1024;
const PREPARED: &str = rill_segment::partition::PREPARED_FILE;

fn config(dir: &Path, driver: DriverChoice, preallocate: Preallocate) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        max_batch_bytes: 16 * 1024,
        preallocate,
        ..LogConfig::default()
    };
    config
}

/// Bytes of batches in the active segment, followed from the appends' sizes and the rolls.
#[derive(Default)]
struct Active {
    rolls: u64,
    bytes: u64,
}

impl Active {
    /// Counts an append of `batch_bytes`; returns whether the active segment is now half full
    /// (so its next file has been asked for).
    fn appended(&mut self, part: &rill::Partition, batch_bytes: u64) -> bool {
        let stats = part.roll_stats();
        let rolls = stats.prepared_rolls + stats.synchronous_rolls;
        if rolls != self.rolls {
            self.rolls = rolls;
            self.bytes = 0;
        }
        self.bytes += batch_bytes;
        self.bytes * 2 >= SEGMENT_BYTES
    }
}

/// Waits (bounded) for the roll-job thread to prepare the next file: an event of the shard's
/// helper, observed in the directory.
fn wait_for_prepared(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join(PREPARED).exists() {
        assert!(
            Instant::now() < deadline,
            "the next segment was never prepared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Appends 3000-byte records to `part` (in `part_dir`) until `rolls` rolls went through
/// prepared files, waiting for the next file to be prepared whenever the active segment is half
/// full. A durable append is checked to be covered by the durable offset when answered. Returns
/// the appends' base offsets. Bounded: at most 400 appends (about 21 fill a segment).
fn append_through_rolls(
    part: &rill::Partition,
    part_dir: &Path,
    rolls: u64,
    durability: Durability,
) -> Vec<i64> {
    let value = vec![7u8; 3000];
    let mut bases = Vec::new();
    let mut active = Active::default();
    for i in 0..400 {
        if part.roll_stats().prepared_rolls >= rolls {
            break;
        }
        let info = part
            .append_records_with(&[Record::value(i, &value)], durability)
            .wait()
            .unwrap();
        if durability == Durability::Durable {
            assert!(part.offsets().durable > info.last_offset);
        }
        bases.push(info.base_offset);
        if active.appended(part, info.batch_bytes) {
            wait_for_prepared(part_dir);
        }
    }
    bases
}

#[test]
fn durable_appends_roll_through_prepared_segments() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, Preallocate::None)).unwrap();
        log.create_topic("t", 1).unwrap();
        let part = log.partition("t", 0).unwrap();
        let part_dir = dir.path().join("t-0");
        let acked = append_through_rolls(&part, &part_dir, 5, Durability::Durable);
        let stats = part.roll_stats();
        assert_eq!(stats.prepared_rolls, 5, "{driver:?}: {stats:?}");
        assert_eq!(stats.synchronous_rolls, 0, "{driver:?}: {stats:?}");
        log.close().unwrap();

        let names: Vec<String> = std::fs::read_dir(&part_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let with_extension = |ext: &str| {
            names
                .iter()
                .filter(|n| Path::new(n).extension().is_some_and(|e| e == ext))
                .count()
        };
        let (logs, indexes) = (with_extension("log"), with_extension("index"));
        assert_eq!(logs, 6, "{driver:?}: {names:?}");
        assert_eq!(
            indexes, 6,
            "{driver:?}: every segment has its index: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n == PREPARED),
            "{driver:?}: {names:?}"
        );

        let (log, report) = Log::open(config(dir.path(), driver, Preallocate::None)).unwrap();
        assert!(report.partitions.iter().all(|p| p.report.clean_load));
        let part = log.partition("t", 0).unwrap();
        for &offset in &acked {
            let read = part.read(offset, 1).wait().unwrap();
            let first = read.batches().next().unwrap();
            assert_eq!(
                rill::batch::check_stored(first, offset)
                    .unwrap()
                    .base_offset,
                offset
            );
        }
        log.close().unwrap();
    }
}

#[test]
fn preallocated_segments_are_trimmed_by_their_seal() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver, Preallocate::Fallocate)).unwrap();
        log.create_topic("t", 1).unwrap();
        let part = log.partition("t", 0).unwrap();
        let part_dir = dir.path().join("t-0");
        append_through_rolls(&part, &part_dir, 2, Durability::Written);
        assert!(part.roll_stats().prepared_rolls >= 2, "{driver:?}");
        // A flush waits for the rename's directory sync; close runs what is left.
        part.flush().wait().unwrap();
        log.close().unwrap();
        let mut logs: Vec<_> = std::fs::read_dir(&part_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for sealed in &logs[..logs.len() - 1] {
            let len = std::fs::metadata(sealed).unwrap().len();
            assert!(
                len < SEGMENT_BYTES,
                "{driver:?}: {} not trimmed",
                sealed.display()
            );
        }
    }
}
