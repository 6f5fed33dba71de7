//! Unit tests of the log store's open path: a purge a crash interrupted (the purged id
//! recorded, the entries not yet deleted) is finished.

#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;
use crate::types::Record;
use openraft::storage::RaftLogStorageExt;
use rill::{Config, Log};

fn entry(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: openraft::EntryPayload::Normal(Record::default()),
    }
}

/// A log with entries 0..20 and a meta file that records `purged` without the purge done.
async fn interrupted_purge(dir: &Path, purged: LogId) -> (Log, Partition) {
    let (log, _) = Log::open(Config::new(dir.join("data"))).unwrap();
    log.create_topic_with("raft", 1, &topic_config()).unwrap();
    let partition = log.partition("raft", 0).unwrap();
    let mut store = LogStore::open(partition.clone(), &dir.join("raft"))
        .await
        .unwrap();
    store.blocking_append((0..20).map(entry)).await.unwrap();
    let meta = Meta {
        purged: Some(purged),
        ..Meta::default()
    };
    MetaFile::new(&dir.join("raft"))
        .unwrap()
        .write(&meta)
        .unwrap();
    (log, partition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition) = interrupted_purge(dir.path(), log_id(1, 9)).await;
    let mut store = LogStore::open(partition.clone(), &dir.path().join("raft"))
        .await
        .unwrap();
    assert_eq!(partition.offsets().log_start, 10);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 9)));
    assert_eq!(state.last_log_id, Some(log_id(1, 19)));
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_past_the_end_empties_the_log_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition) = interrupted_purge(dir.path(), log_id(2, 50)).await;
    let mut store = LogStore::open(partition.clone(), &dir.path().join("raft"))
        .await
        .unwrap();
    let offsets = partition.offsets();
    assert_eq!((offsets.log_start, offsets.log_end), (51, 51));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 50)));
    log.close().unwrap();
}
