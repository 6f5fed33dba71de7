#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! What the log holds does not grow with what it retains, and what it lets go of is never
//! read through: on both drivers, with far more segment files than descriptors and registered
//! slots, every read returns the bytes of its own file while handles are closed, reopened and
//! evicted from the ring under appends; retention deletes segments while readers read them.

use rill::{Config, DriverChoice, DriverKind, Durability, Error, Log, LogConfig};
use rill_tests::{as_stored, make_batch, split_batches};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];
const PARTITIONS: u32 = 12;
const MAX_OPEN_FILES: usize = 16;

/// Acknowledged batches of each partition: base offset → bytes as stored.
type Acked = Mutex<Vec<BTreeMap<i64, Vec<u8>>>>;

fn config(dir: &std::path::Path, driver: DriverChoice) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 2;
    config.queue_depth = 64;
    config.max_open_files = MAX_OPEN_FILES;
    // Far fewer slots than hot files: the ring's table evicts by use.
    config.uring.ring.registered_files = 4;
    config.log = LogConfig {
        segment_bytes: 16 * 1024,
        max_batch_bytes: 4 * 1024,
        ..LogConfig::default()
    };
    config
}

/// A small deterministic generator (xorshift), so that the test needs no seed plumbing.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A random acknowledged batch of a random partition, if there is one yet.
fn pick(acked: &Acked, rng: &mut u64) -> Option<(u32, i64, Vec<u8>)> {
    let p = (next(rng) % u64::from(PARTITIONS)) as u32;
    let acked = acked.lock().unwrap();
    let batches = &acked[p as usize];
    if batches.is_empty() {
        return None;
    }
    let nth = (next(rng) % batches.len() as u64) as usize;
    let (base, bytes) = batches.iter().nth(nth)?;
    Some((p, *base, bytes.clone()))
}

/// Checks a read that started at the acknowledged batch `base`: it begins with that batch,
/// byte for byte, and every later batch that is acknowledged matches too.
fn check_read(acked: &Acked, p: u32, base: i64, expected: &[u8], bytes: &[u8]) {
    let batches = split_batches(bytes);
    assert_eq!(
        batches.first().map(|(b, _)| *b),
        Some(base),
        "partition {p}"
    );
    assert_eq!(batches[0].1, expected, "partition {p} batch {base}");
    let acked = acked.lock().unwrap();
    for (b, got) in &batches[1..] {
        if let Some(want) = acked[p as usize].get(b) {
            assert_eq!(got, want, "partition {p} batch {b}");
        }
    }
}

fn append_all(log: &Log, writer: u64, acked: &Acked) {
    let mut pending = Vec::new();
    for i in 0..400u64 {
        let p = ((writer * 7 + i) % u64::from(PARTITIONS)) as u32;
        let part = log.partition("t", p).unwrap();
        let batch = make_batch(
            1 + (i % 4) as usize,
            (i * 37 % 900) as usize,
            1_700_000_000_000 + i as i64,
            writer << 32 | i,
        );
        let durability = if i % 4 == 0 {
            Durability::Durable
        } else {
            Durability::Written
        };
        let sent = batch.to_vec();
        pending.push((p, sent, part.append_with(batch, durability)));
        if pending.len() >= 8 || i == 399 {
            for (p, sent, fut) in pending.drain(..) {
                let base = fut.wait().unwrap().base_offset;
                let stored = as_stored(&sent, base);
                acked.lock().unwrap()[p as usize].insert(base, stored);
            }
        }
    }
}

/// Two writer threads run [`append_all`]; returns when both are done.
fn append_from_two_writers(log: &Log, acked: &Acked) {
    std::thread::scope(|scope| {
        for w in 0..2u64 {
            scope.spawn(move || append_all(log, w, acked));
        }
    });
}

#[test]
fn descriptor_and_registered_file_eviction_under_load_keeps_every_byte_in_its_file() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
        log.create_topic("t", PARTITIONS).unwrap();
        let acked: Acked = Mutex::new(vec![BTreeMap::new(); PARTITIONS as usize]);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2u64)
                .map(|r| {
                    let (log, acked, stop) = (log.clone(), &acked, &stop);
                    scope.spawn(move || {
                        let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (r + 1);
                        let mut reads = 0u64;
                        // Bounded by the writers: they stop the readers when done.
                        while !stop.load(Ordering::Relaxed) || reads == 0 {
                            let Some((p, base, expected)) = pick(acked, &mut rng) else {
                                std::thread::yield_now();
                                continue;
                            };
                            let part = log.partition("t", p).unwrap();
                            let read = part.read(base, 32 * 1024).wait().unwrap();
                            check_read(acked, p, base, &expected, read.bytes());
                            reads += 1;
                        }
                    })
                })
                .collect();
            append_from_two_writers(&log, &acked);
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                r.join().unwrap();
            }
        });
        let files = log.file_stats();
        assert!(files.descriptors <= MAX_OPEN_FILES, "{driver:?}: {files:?}");
        assert!(files.handles > MAX_OPEN_FILES, "{driver:?}: {files:?}");
        assert!(
            files.evictions > 0 && files.reopens > 0,
            "{driver:?}: {files:?}"
        );
        if log.driver() == DriverKind::Uring {
            let stats = log.driver_stats();
            assert!(stats.registered_file_evictions > 0, "{stats:?}");
        }
        log.close().unwrap();
        drop(log);

        // Reopened with the same bounds, every acknowledged batch reads back whole.
        let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
        let acked = acked.into_inner().unwrap();
        for (p, batches) in acked.iter().enumerate() {
            let part = log.partition("t", p as u32).unwrap();
            for (base, expected) in batches {
                let read = part.read(*base, 1).wait().unwrap();
                assert_eq!(&split_batches(read.bytes())[0].1, expected);
            }
        }
        assert!(log.file_stats().descriptors <= MAX_OPEN_FILES);
    }
}

#[test]
fn retention_racing_readers_never_serves_bytes_of_a_deleted_segment() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), driver);
        config.log.segment_bytes = 8 * 1024;
        let (log, _) = Log::open(config).unwrap();
        log.create_topic("t", PARTITIONS).unwrap();
        let acked: Acked = Mutex::new(vec![BTreeMap::new(); PARTITIONS as usize]);
        let stop = AtomicBool::new(false);
        let (served, gone) = std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2u64)
                .map(|r| {
                    let (log, acked, stop) = (log.clone(), &acked, &stop);
                    scope.spawn(move || {
                        let mut rng = 0x2545_F491_4F6C_DD1D ^ (r + 1);
                        let (mut served, mut gone) = (0u64, 0u64);
                        while !stop.load(Ordering::Relaxed) || served == 0 {
                            let Some((p, base, expected)) = pick(acked, &mut rng) else {
                                std::thread::yield_now();
                                continue;
                            };
                            let part = log.partition("t", p).unwrap();
                            match part.read(base, 32 * 1024).wait() {
                                Ok(read) => {
                                    check_read(acked, p, base, &expected, read.bytes());
                                    served += 1;
                                }
                                Err(Error::OffsetOutOfRange { log_start, .. }) => {
                                    assert!(log_start > base, "{base} refused at {log_start}");
                                    gone += 1;
                                }
                                Err(e) => panic!("partition {p} offset {base}: {e}"),
                            }
                        }
                        (served, gone)
                    })
                })
                .collect();
            // Retention keeps about the last 60 records of each partition.
            let retention = {
                let (log, stop) = (log.clone(), &stop);
                scope.spawn(move || {
                    let mut rounds = 0u64;
                    while !stop.load(Ordering::Relaxed) || rounds == 0 {
                        for p in 0..PARTITIONS {
                            let part = log.partition("t", p).unwrap();
                            let end = part.offsets().log_end;
                            part.delete_before((end - 60).max(0)).wait().unwrap();
                        }
                        rounds += 1;
                    }
                })
            };
            append_from_two_writers(&log, &acked);
            stop.store(true, Ordering::Relaxed);
            retention.join().unwrap();
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .fold((0, 0), |(s, g), (rs, rg)| (s + rs, g + rg))
        });
        assert!(served > 0, "{driver:?}: {served} served, {gone} gone");
        let direct: u64 = (0..PARTITIONS)
            .map(|p| log.partition("t", p).unwrap().direct_reads())
            .sum();
        assert!(
            direct > 0,
            "{driver:?}: no read was served on its caller's thread"
        );
        // Retention ran after the last append: the oldest batches of every partition are gone,
        // and a read below the start is refused, never served from a deleted file.
        for p in 0..PARTITIONS {
            let part = log.partition("t", p).unwrap();
            let start = part.offsets().log_start;
            assert!(start > 0, "{driver:?}: partition {p} kept everything");
            assert!(matches!(
                part.read(start - 1, 1).wait(),
                Err(Error::OffsetOutOfRange { .. })
            ));
        }
        assert!(log.file_stats().descriptors <= MAX_OPEN_FILES);
    }
}
