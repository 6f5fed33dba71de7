#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

//! What a Raft log store keeps across a restart, and what the partition holding it looks like
//! to a plain reader of rill (a batch per entry, the term as its partition leader epoch, the
//! index in the first record's first header).

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload};
use rill::{Config, Log, LogConfig};
use rill_raft::{Entry, LogId, LogStore, Record, Records, Vote};
use std::path::Path;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// Records in entry `index`: 1 to 3.
fn records_in(index: u64) -> u64 {
    1 + index % 3
}

/// The offset entry `index` starts at, in a log that began at index 0.
fn offset_of(index: u64) -> i64 {
    (0..index).map(records_in).sum::<u64>() as i64
}

fn entry(term: u64, index: u64) -> Entry {
    let records = (0..records_in(index))
        .map(|i| Record {
            timestamp_ms: 1_700_000_000_000 + index as i64,
            key: Some(format!("k{index}.{i}").into_bytes()),
            value: Some(vec![index as u8; 40]),
            headers: Vec::new(),
        })
        .collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Records(records)),
    }
}

fn open_log(dir: &Path) -> Log {
    let mut config = Config::new(dir.join("data"));
    config.shards = 1;
    config.log = LogConfig {
        segment_bytes: 1024,
        max_batch_bytes: 1024,
        ..LogConfig::default()
    };
    Log::open(config).unwrap().0
}

async fn open_store(log: &Log, dir: &Path) -> LogStore {
    LogStore::open(log.partition("raft", 0).unwrap(), &dir.join("raft"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vote_the_log_and_its_purge_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    log.create_topic_with("raft", 1, &rill_raft::topic_config())
        .unwrap();
    let mut store = open_store(&log, dir.path()).await;
    let mut vote = Vote::new(3, 2);
    vote.committed = true;
    store.save_vote(&vote).await.unwrap();
    let entries: Vec<Entry> = (0..30).map(|i| entry(1 + i / 10, i)).collect();
    store.blocking_append(entries.clone()).await.unwrap();
    store.purge(log_id(1, 5)).await.unwrap();
    store.truncate(log_id(3, 25)).await.unwrap();
    drop(store);
    log.close().unwrap();

    let log = open_log(dir.path());
    let mut store = open_store(&log, dir.path()).await;
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(3, 24)));
    let read = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(read, entries[6..25]);

    // A plain reader sees a batch per entry, one after the other: its epoch the term, its
    // first record's first header the index.
    let partition = log.partition("raft", 0).unwrap();
    assert_eq!(partition.offsets().log_start, offset_of(6));
    assert_eq!(partition.offsets().log_end, offset_of(25));
    let mut seen = 0;
    let mut next = offset_of(6);
    while next < offset_of(25) {
        let read = partition.read(next, 1 << 20).wait().unwrap();
        for batch in read.batches() {
            let entry = &entries[6 + seen];
            let index = entry.log_id.index;
            let header = rill::batch::BatchHeader::parse(batch).unwrap();
            assert_eq!(header.base_offset, offset_of(index));
            assert_eq!(header.records_count as u64, records_in(index));
            assert_eq!(
                header.partition_leader_epoch as u64,
                entry.log_id.leader_id.term
            );
            let first = rill::batch::records(batch)
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            let index_header = first.headers().next().unwrap().unwrap();
            assert_eq!(index_header.key, rill_raft::INDEX_HEADER_KEY);
            assert_eq!(index_header.value, Some(&index.to_be_bytes()[..]));
            seen += 1;
        }
        next = read.next_offset;
    }
    assert_eq!(seen, 19);
    drop(store);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_past_the_end_starts_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    log.create_topic_with("raft", 1, &rill_raft::topic_config())
        .unwrap();
    let mut store = open_store(&log, dir.path()).await;
    store
        .blocking_append((0..5).map(|i| entry(1, i)))
        .await
        .unwrap();
    // As after a snapshot of index 40 was installed.
    store.purge(log_id(2, 40)).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 40)));
    store.blocking_append([entry(2, 41)]).await.unwrap();
    drop(store);
    log.close().unwrap();

    let log = open_log(dir.path());
    let mut store = open_store(&log, dir.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 40)));
    assert_eq!(state.last_log_id, Some(log_id(2, 41)));
    assert_eq!(
        store.try_get_log_entries(0..100).await.unwrap(),
        vec![entry(2, 41)]
    );
    drop(store);
    log.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_could_delete_or_refuse_entries_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    log.create_topic("plain", 1).unwrap();
    let result = LogStore::open(log.partition("plain", 0).unwrap(), &dir.path().join("raft")).await;
    assert!(matches!(result, Err(rill_raft::Error::UnsuitableTopic(_))));
    log.close().unwrap();
}
