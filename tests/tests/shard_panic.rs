#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! A panic on a shard thread (injected through the `test-hooks` feature) fails safe, on both
//! drivers: the shard's partitions fail-stop, every request queued or made later is answered
//! with a typed error (none hangs, none is reported as a clean success it was not), partitions
//! of other shards go on, `Log::close` returns, and reopening recovers every acknowledged batch.

use rill::{Config, DriverChoice, Durability, Error, Log, Pending, ReadLimit, Record};
use std::collections::BTreeMap;

const DRIVERS: [DriverChoice; 2] = [DriverChoice::Uring, DriverChoice::Syscall];

fn config(dir: &std::path::Path, driver: DriverChoice) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 2;
    config
}

fn record(i: usize) -> Vec<u8> {
    format!("record {i}").into_bytes()
}

fn is_failure(e: &Error) -> bool {
    matches!(e, Error::PartitionFailed(_) | Error::ShardFailed { .. })
}

#[test]
fn a_shard_panic_fail_stops_its_partitions_and_answers_everything() {
    for driver in DRIVERS {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
        log.create_topic("t", 4).unwrap();
        let parts: Vec<_> = (0..4).map(|p| log.partition("t", p).unwrap()).collect();
        let victim = parts[0].shard();
        let (doomed, healthy): (Vec<_>, Vec<_>) = parts.iter().partition(|p| p.shard() == victim);
        assert!(!healthy.is_empty(), "partitions on both shards");
        // Acknowledged durable before the panic: must survive it.
        let mut acked: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
        for (i, p) in parts.iter().enumerate() {
            let info = p
                .append_records_with(&[Record::value(1, &record(i))], Durability::Durable)
                .wait()
                .unwrap();
            acked.entry(p.index()).or_default().push(info.base_offset);
        }
        log.inject_shard_panic(victim);
        // Requests race with the panic: each is answered, with success (served before it) or a
        // typed failure; none hangs. Bounded: the panic comes at the shard's next pass, which
        // these requests themselves cause.
        let mut failed = false;
        for round in 0..10_000 {
            let pending: Vec<Pending<_>> = doomed.iter().map(|p| p.flush()).collect();
            for result in pending.into_iter().map(Pending::wait) {
                match result {
                    Ok(_) => {}
                    Err(e) if is_failure(&e) => failed = true,
                    Err(e) => panic!("{driver:?} round {round}: unexpected {e}"),
                }
            }
            if failed {
                break;
            }
        }
        assert!(failed, "{driver:?}: the injected panic was observed");
        for p in &doomed {
            // Appends are written on the caller's thread: the failed log refuses them.
            let append = p
                .append_records_with(&[Record::value(2, b"late")], Durability::Written)
                .wait();
            assert!(
                matches!(append, Err(Error::PartitionFailed(_))),
                "{driver:?}: {append:?}"
            );
            let durable = p
                .append_records_with(&[Record::value(2, b"late")], Durability::Durable)
                .wait();
            assert!(
                matches!(durable, Err(ref e) if is_failure(e)),
                "{durable:?}"
            );
            let read = p.read_with(0, 1 << 20, ReadLimit::Durable).wait();
            assert!(matches!(read, Err(ref e) if is_failure(e)), "{read:?}");
            let truncate = p.truncate_to(0).wait();
            assert!(
                matches!(truncate, Err(ref e) if is_failure(e)),
                "{truncate:?}"
            );
        }
        // The other shard is untouched.
        for p in &healthy {
            let info = p
                .append_records_with(&[Record::value(3, b"after")], Durability::Durable)
                .wait()
                .unwrap();
            acked.entry(p.index()).or_default().push(info.base_offset);
            assert_eq!(p.read(0, 1 << 20).wait().unwrap().batches().count(), 2);
        }
        // Closing returns, reporting the failure.
        let closed = log.close();
        assert!(
            matches!(closed, Err(Error::ShardFailed { .. })),
            "{driver:?}: {closed:?}"
        );
        drop(log);
        // Reopening recovers every acknowledged batch, and the partitions work again.
        let (log, _) = Log::open(config(dir.path(), driver)).unwrap();
        for (index, offsets) in &acked {
            let p = log.partition("t", *index).unwrap();
            let read = p.read(0, 1 << 20).wait().unwrap();
            assert_eq!(
                read.batches().count(),
                offsets.len(),
                "{driver:?}: partition {index}"
            );
            p.append_records(&[Record::value(4, b"again")])
                .wait()
                .unwrap();
        }
        log.close().unwrap();
    }
}
