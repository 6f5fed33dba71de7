#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Backpressure a caller can see, on both drivers: a partition flooded with 100 times its
//! shard queue's capacity, from many threads, through every append API (waiting in line,
//! `try_append_with` with `QueueFull`, `reserve` permits, pipelined futures), answers every
//! append exactly once with contiguous offsets, keeps each thread's appends in order, and never
//! holds more batch bytes inside the library than `max_queued_bytes`.

use rill::{Config, DriverChoice, Durability, Error, Log, LogConfig, Pending};
use rill_tests::make_batch;
use std::sync::atomic::{AtomicUsize, Ordering};

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];
const QUEUE_DEPTH: usize = 8;
const QUEUE_BYTES: usize = 16 * 1024;
const THREADS: usize = 8;
const PER_THREAD: usize = QUEUE_DEPTH * 100 / THREADS;

fn config(dir: &std::path::Path, driver: DriverChoice) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 1;
    config.queue_depth = QUEUE_DEPTH;
    config.max_queued_bytes = QUEUE_BYTES;
    config.log = LogConfig {
        segment_bytes: 256 * 1024,
        max_batch_bytes: 4096,
        // Small, so appends often meet it and go through the queue.
        max_unsynced_bytes: 8 * 1024,
        ..LogConfig::default()
    };
    config
}

#[test]
fn a_flood_is_answered_exactly_once_within_the_queue_bounds() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
        log.create_topic("t", 1).unwrap();
        let p = log.partition("t", 0).unwrap();
        let queue_full = AtomicUsize::new(0);
        let per_thread: Vec<Vec<(i64, i64)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let p = p.clone();
                    let queue_full = &queue_full;
                    scope.spawn(move || {
                        let mut got = Vec::with_capacity(PER_THREAD);
                        let mut window: Vec<Pending<_>> = Vec::new();
                        for i in 0..PER_THREAD {
                            let batch = make_batch(4, 200, 1, (t * PER_THREAD + i) as u64);
                            let durability = if i % 3 == 0 {
                                Durability::Written
                            } else {
                                Durability::Durable
                            };
                            let info = match t % 4 {
                                // In line, up to four futures in flight.
                                0 => {
                                    window.push(p.append_with(batch, durability));
                                    if window.len() < 4 {
                                        continue;
                                    }
                                    for pending in window.drain(..) {
                                        let info = pending.wait().unwrap();
                                        got.push((info.base_offset, info.last_offset));
                                    }
                                    continue;
                                }
                                // Never waiting for room: QueueFull, then a permit.
                                1 => match p.try_append_with(batch.clone(), durability) {
                                    Ok(pending) => pending.wait().unwrap(),
                                    Err(Error::QueueFull) => {
                                        queue_full.fetch_add(1, Ordering::Relaxed);
                                        let permit = p.reserve(batch.len()).wait().unwrap();
                                        permit.append_with(batch, durability).wait().unwrap()
                                    }
                                    Err(e) => panic!("{e}"),
                                },
                                // Room first, then the batch.
                                2 => {
                                    let permit = p.reserve(batch.len()).wait().unwrap();
                                    permit.append_with(batch, durability).wait().unwrap()
                                }
                                _ => p.append_with(batch, durability).wait().unwrap(),
                            };
                            got.push((info.base_offset, info.last_offset));
                        }
                        for pending in window.drain(..) {
                            let info = pending.wait().unwrap();
                            got.push((info.base_offset, info.last_offset));
                        }
                        got
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        // Each thread's appends landed in the order it made them.
        for got in &per_thread {
            assert_eq!(got.len(), PER_THREAD);
            assert!(got.windows(2).all(|w| w[0].1 < w[1].0), "{driver:?}: order");
        }
        // Every append once: the offsets tile the log exactly.
        let mut all: Vec<(i64, i64)> = per_thread.concat();
        all.sort_unstable();
        let mut next = 0;
        for (base, last) in &all {
            assert_eq!(*base, next, "{driver:?}: gap or overlap at {base}");
            next = last + 1;
        }
        assert_eq!(all.len(), THREADS * PER_THREAD);
        assert_eq!(p.offsets().log_end, next);
        let stats = log.queue_stats();
        assert!(
            stats.max_queued_bytes <= QUEUE_BYTES,
            "{driver:?}: {stats:?}"
        );
        assert!(
            stats.max_queued_requests <= QUEUE_DEPTH,
            "{driver:?}: {stats:?}"
        );
        assert!(
            stats.max_queued_bytes > 0,
            "the flood went through the queue"
        );
        assert_eq!(stats.waiting_callers, 0);
        eprintln!(
            "{driver:?}: {stats:?}, QueueFull answered {} times",
            queue_full.load(Ordering::Relaxed)
        );
        log.close().unwrap();
    }
}

#[test]
fn try_append_fails_at_once_and_writes_nothing_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), DriverChoice::Syscall)).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    // Hold every slot of the queue.
    let permits: Vec<_> = (0..QUEUE_DEPTH)
        .map(|_| p.reserve(0).wait().unwrap())
        .collect();
    let before = p.offsets();
    let durable = p.try_append_with(make_batch(1, 10, 1, 1), Durability::Durable);
    assert!(matches!(durable, Err(Error::QueueFull)), "{durable:?}");
    assert_eq!(p.offsets(), before, "nothing written");
    // A written append below the unsynced bound needs no room.
    let written = p
        .try_append_with(make_batch(1, 10, 1, 2), Durability::Written)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(written.base_offset, before.log_end);
    // A waiting reservation is served once a permit is given back.
    let waiting = p.reserve(0);
    drop(permits);
    let permit = waiting.wait().unwrap();
    permit
        .append_with(make_batch(1, 10, 1, 3), Durability::Durable)
        .wait()
        .unwrap();
    log.close().unwrap();
}

#[test]
fn sends_waiting_for_one_socket_are_bounded() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), DriverChoice::Uring)).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    for i in 0..64 {
        p.append_with(make_batch(3, 1000, 1, i), Durability::Written)
            .wait()
            .unwrap();
    }
    let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
    // The first send holds the socket's gate (the peer reads nothing yet); QUEUE_DEPTH more
    // wait behind it; the next is refused at once.
    let mut pending = Vec::new();
    for _ in 0..=QUEUE_DEPTH {
        pending.push(p.send(0, 1 << 20, &tx, rill::SendHeader::None));
    }
    let refused = p.send(0, 1 << 20, &tx, rill::SendHeader::None).wait();
    assert!(matches!(refused, Err(Error::QueueFull)), "{refused:?}");
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        rx.read_to_end(&mut all).unwrap();
        all.len()
    });
    let mut sent = 0;
    for pending in pending {
        sent += pending.wait().unwrap().bytes_sent;
    }
    drop(tx);
    assert_eq!(reader.join().unwrap() as u64, sent);
    log.close().unwrap();
}

#[test]
fn a_permit_append_stays_behind_a_truncation_waiting_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), DriverChoice::Syscall)).unwrap();
    log.create_topic("t", 1).unwrap();
    let p = log.partition("t", 0).unwrap();
    for i in 0..4 {
        p.append_with(make_batch(1, 10, 1, i), Durability::Durable)
            .wait()
            .unwrap();
    }
    // Every slot of the queue is held: the truncation asked for now waits for room.
    let mut permits: Vec<_> = (0..QUEUE_DEPTH)
        .map(|_| p.reserve(0).wait().unwrap())
        .collect();
    let truncate = p.truncate_to(2);
    // Made after the truncation, so it must land after it, permit or not.
    let append = permits
        .pop()
        .unwrap()
        .append_with(make_batch(1, 10, 1, 99), Durability::Durable);
    drop(permits);
    assert_eq!(truncate.wait().unwrap(), 2);
    let info = append.wait().unwrap();
    assert_eq!(
        info.base_offset, 2,
        "the append landed after the truncation"
    );
    assert_eq!(p.offsets().log_end, 3);
    assert_eq!(p.read(2, 1 << 20).wait().unwrap().batches().count(), 1);
    log.close().unwrap();
}
