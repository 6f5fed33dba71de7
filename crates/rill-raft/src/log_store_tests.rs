//! Unit tests of the log store: a purge a crash interrupted (the purged id recorded, the
//! entries not yet deleted) is finished at open; entries are found by index once their
//! offsets are forgotten; an empty log goes on where the durable snapshot ends.

#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;
use crate::codec::log_id;
use crate::types::{Record, Records};
use openraft::storage::RaftLogStorageExt;
use rill::{Config, Log};

/// Entry `index`, of two records: it takes offsets `2 * index` and `2 * index + 1`.
fn entry(index: u64) -> Entry {
    let record = Record {
        value: Some(index.to_be_bytes().to_vec()),
        ..Record::default()
    };
    Entry {
        log_id: log_id(1, index),
        payload: openraft::EntryPayload::Normal(Records(vec![record.clone(), record])),
    }
}

fn open_log(dir: &Path) -> (Log, Partition) {
    let (log, _) = Log::open(Config::new(dir.join("data"))).unwrap();
    if log.partition("raft", 0).is_err() {
        log.create_topic_with("raft", 1, &topic_config()).unwrap();
    }
    let partition = log.partition("raft", 0).unwrap();
    (log, partition)
}

/// A log with entries 0..20 and a meta file that records `purged` without the purge done.
async fn interrupted_purge(dir: &Path, purged: LogId) -> (Log, Partition) {
    let (log, partition) = open_log(dir);
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
    assert_eq!(partition.offsets().log_start, 20);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 9)));
    assert_eq!(state.last_log_id, Some(log_id(1, 19)));
    let entries = store.try_get_log_entries(0..12).await.unwrap();
    assert_eq!(entries, vec![entry(10), entry(11)]);
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
    assert_eq!((offsets.log_start, offsets.log_end), (40, 40));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 50)));
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_found_by_index_after_a_restart_forgot_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition) = open_log(dir.path());
    let raft_dir = dir.path().join("raft");
    let mut store = LogStore::open(partition.clone(), &raft_dir).await.unwrap();
    store.blocking_append((0..300).map(entry)).await.unwrap();
    drop(store);
    let mut store = LogStore::open(partition.clone(), &raft_dir).await.unwrap();
    for (start, end) in [(0, 3), (137, 140), (297, 300), (299, 400)] {
        let want: Vec<Entry> = (start..end.min(300)).map(entry).collect();
        assert_eq!(store.try_get_log_entries(start..end).await.unwrap(), want);
    }
    // A reader's cursor survives a truncation that rewrote what follows it.
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.try_get_log_entries(50..60).await.unwrap().len(), 10);
    store.truncate(log_id(1, 55)).await.unwrap();
    assert_eq!(partition.offsets().log_end, 110);
    let rewritten = |i: u64| {
        let mut e = entry(i);
        e.log_id = log_id(2, i);
        e
    };
    store
        .blocking_append((55..58).map(rewritten))
        .await
        .unwrap();
    let read = reader.try_get_log_entries(60..62).await.unwrap();
    assert!(read.is_empty(), "{read:?}");
    let read = reader.try_get_log_entries(55..57).await.unwrap();
    assert_eq!(read, vec![rewritten(55), rewritten(56)]);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 57)));
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_log_goes_on_where_the_durable_snapshot_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition) = open_log(dir.path());
    let snapshot = crate::SnapshotPoint {
        last_log_id: Some(log_id(3, 50)),
        next_offset: 777,
    };
    let (_tx, rx) = watch::channel(Some(snapshot));
    let mut store = LogStore::open(partition.clone(), &dir.path().join("raft"))
        .await
        .unwrap()
        .purge_only_below(rx);
    store.blocking_append((0..5).map(entry)).await.unwrap();
    store.purge(log_id(3, 50)).await.unwrap();
    let offsets = partition.offsets();
    assert_eq!((offsets.log_start, offsets.log_end), (10, 10));
    store.blocking_append([entry(51)]).await.unwrap();
    let offsets = partition.offsets();
    assert_eq!((offsets.log_start, offsets.log_end), (777, 779));
    assert_eq!(
        store.try_get_log_entries(0..100).await.unwrap(),
        vec![entry(51)]
    );
    log.close().unwrap();
}
