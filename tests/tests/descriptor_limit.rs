#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]
//! Running out of descriptors is survived, not fatal: with the process's descriptor limit
//! below the log's `max_open_files`, opening a file fails with `EMFILE`, the descriptor cache
//! closes half of what it holds and tries again, and appends, rolls, reads and a reopen all
//! work. Its own test binary: it lowers the limit for the whole process.

use rill::{Config, DriverChoice, Durability, Log, LogConfig};
use rill_tests::{make_batch, split_batches};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors the process may hold: the rings, eventfds, the test harness and some segment
/// files, far fewer than the log's segments.
const PROCESS_LIMIT: u64 = 96;

/// Every acknowledged (partition, base offset, stored bytes) reads back byte for byte.
fn assert_reads_back(log: &Log, acked: &[(u32, i64, Vec<u8>)]) {
    for (p, base, stored) in acked {
        let read = log
            .partition("t", *p)
            .unwrap()
            .read(*base, 1)
            .wait()
            .unwrap();
        assert_eq!(&split_batches(read.bytes())[0].1, stored);
    }
}

#[test]
fn a_log_survives_a_descriptor_limit_below_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.driver = DriverChoice::Uring;
    config.shards = 1;
    config.max_open_files = 4096;
    config.log = LogConfig {
        segment_bytes: 4096,
        max_batch_bytes: 4096,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(config.clone()).unwrap();
    log.create_topic("t", 4).unwrap();
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(PROCESS_LIMIT),
            maximum: hard,
        },
    )
    .unwrap();
    // 4 partitions × 150 segments: several times the process limit.
    let mut acked = Vec::new();
    for i in 0..600u64 {
        let p = log.partition("t", (i % 4) as u32).unwrap();
        let batch = make_batch(2, 1500, 1_700_000_000_000, i);
        let durability = if i % 50 == 0 {
            Durability::Durable
        } else {
            Durability::Written
        };
        let info = p.append_with(batch.clone(), durability).wait().unwrap();
        acked.push((
            p.index(),
            info.base_offset,
            rill_tests::as_stored(&batch, info.base_offset),
        ));
    }
    let stats = log.file_stats();
    assert!(stats.handles > PROCESS_LIMIT as usize, "{stats:?}");
    assert!(
        stats.evictions > 0,
        "EMFILE made the cache evict: {stats:?}"
    );
    assert_reads_back(&log, &acked);
    log.close().unwrap();
    drop(log);
    // Reopening under the same limit works, and every batch is still there.
    let (log, _) = Log::open(config).unwrap();
    assert_reads_back(&log, &acked);
    log.close().unwrap();
}
