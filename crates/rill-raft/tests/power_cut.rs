#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

//! The log store on the simulated disk, the power cut after a varying number of disk calls
//! while entries are appended one by one: every entry whose append openraft was told is
//! durable (its flush callback) is there after the cut, byte for byte, and the store opens.
//! A callback that ran ahead of the fdatasync would lose entries here: the simulated disk
//! drops (or tears) every write not synced.

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload};
use rill::{Config, Disk, Log, LogConfig};
use rill_raft::{Entry, LogId, LogStore, Record, Records};
use rill_sim::{CrashKind, SimDisk};
use std::sync::Arc;

fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1 + index / 7, 0), index),
        payload: EntryPayload::Normal(Records(
            (0..=(index % 3))
                .map(|_| Record {
                    timestamp_ms: 1_700_000_000_000,
                    key: Some(index.to_be_bytes().to_vec()),
                    value: Some(vec![index as u8; 30 + (index % 50) as usize]),
                    headers: Vec::new(),
                })
                .collect(),
        )),
    }
}

fn config() -> Config {
    let mut config = Config::new("/data");
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: 2048,
        max_batch_bytes: 1024,
        watermark_interval_ms: 0,
        ..LogConfig::default()
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reported_durable_survive_a_power_cut() {
    // Bounded: a few dozen cut points, each a short run.
    for cut_after in (0..120).step_by(7) {
        let disk = Arc::new(SimDisk::new(cut_after));
        let as_disk: Arc<dyn Disk> = disk.clone();
        let state = tempfile::tempdir().unwrap();
        let (log, _) = Log::open_on(config(), Arc::clone(&as_disk)).unwrap();
        log.create_topic_with("raft", 1, &rill_raft::topic_config())
            .unwrap();
        let mut store = LogStore::open(log.partition("raft", 0).unwrap(), state.path())
            .await
            .unwrap();
        disk.power_cut_after(cut_after);
        let mut acked = 0;
        // Bounded: the cut ends it well before 500 entries.
        for index in 0..500 {
            if store.blocking_append([entry(index)]).await.is_err() {
                break;
            }
            acked = index + 1;
        }
        assert!(disk.power_is_cut(), "the power was never cut");
        drop(store);
        let _ = log.close();
        disk.crash(CrashKind::Power);

        let (log, _) = Log::open_on(config(), Arc::clone(&as_disk)).unwrap();
        let mut store = LogStore::open(log.partition("raft", 0).unwrap(), state.path())
            .await
            .unwrap_or_else(|e| panic!("cut after {cut_after}: {e}"));
        let read = store.try_get_log_entries(0..acked).await.unwrap();
        let expected: Vec<Entry> = (0..acked).map(entry).collect();
        assert_eq!(
            read, expected,
            "cut after {cut_after}: acknowledged entries lost"
        );
        let last = store.get_log_state().await.unwrap().last_log_id;
        assert!(
            last.map_or(0, |l| l.index + 1) >= acked,
            "cut after {cut_after}: last log id {last:?} below {acked} acknowledged entries"
        );
        drop(store);
        log.close().unwrap();
    }
}
