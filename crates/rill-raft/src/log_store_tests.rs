//! Unit tests of the log store: a purge a crash interrupted (the purged id recorded, the
//! entries not yet deleted) is finished at open; entries are found by index once their
//! offsets are forgotten; an empty log goes on where the durable snapshot ends; replication
//! reads are bounded in bytes and survive truncations and purges running under them.

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

/// [`entry`], written in `term`.
fn entry_of_term(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        ..entry(index)
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

/// A log and a store on its partition, state in `dir/raft`.
async fn open_store(dir: &Path) -> (Log, Partition, LogStore) {
    let (log, partition) = open_log(dir);
    let store = LogStore::open(partition.clone(), &dir.join("raft"))
        .await
        .unwrap();
    (log, partition, store)
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
    let rewritten = |i: u64| entry_of_term(2, i);
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
    // At once, not at the next append: a read of the partition meanwhile sees the right end.
    let offsets = partition.offsets();
    assert_eq!((offsets.log_start, offsets.log_end), (777, 777));
    store.blocking_append([entry(51)]).await.unwrap();
    let offsets = partition.offsets();
    assert_eq!((offsets.log_start, offsets.log_end), (777, 779));
    assert_eq!(
        store.try_get_log_entries(0..100).await.unwrap(),
        vec![entry(51)]
    );
    log.close().unwrap();
}

/// Entry `index` of one record whose value takes `value_bytes`.
fn big_entry(term: u64, index: u64, value_bytes: usize) -> Entry {
    let record = Record {
        value: Some(vec![index as u8; value_bytes]),
        ..Record::default()
    };
    Entry {
        log_id: log_id(term, index),
        payload: openraft::EntryPayload::Normal(Records(vec![record])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_entries_read_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition, mut store) = open_store(dir.path()).await;
    let value_bytes = 400 << 10;
    store
        .blocking_append((0..10).map(|i| big_entry(1, i, value_bytes)))
        .await
        .unwrap();
    let mut reader = store.get_log_reader().await;
    let mut next = 0;
    while next < 10 {
        let read = reader.limited_get_log_entries(next, 10).await.unwrap();
        // 1 MiB holds two; the third would cross it.
        assert_eq!(read.len(), 2, "from {next}");
        for entry in &read {
            assert_eq!(*entry, big_entry(1, next, value_bytes));
            next += 1;
        }
    }
    // Unlimited reads (openraft's own, for applying) take the whole range.
    assert_eq!(reader.try_get_log_entries(0..10).await.unwrap().len(), 10);
    // An entry larger than the budget goes alone (reads of replication's 1 MiB budget and
    // a batch just under the partition's bound meet the same case).
    let log_index = Arc::clone(&store.log_index);
    for start in 0..10 {
        let view = LogView::of(&log_index);
        let read = read_entries(&partition, &log_index, view, (start, 10), None, 1000)
            .await
            .unwrap();
        assert_eq!(read.entries, vec![big_entry(1, start, value_bytes)]);
    }
    log.close().unwrap();
}

/// Rounds of truncating and rewriting the log's tail, and of purging its head, while a
/// replication reader reads it: every read is a run of consecutive entries from the index
/// asked (maybe shorter, maybe empty), never an error, which openraft would take as fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_truncations_and_purges_are_short_never_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition, mut store) = open_store(dir.path()).await;
    store
        .blocking_append((0..40).map(|i| big_entry(1, i, 100)))
        .await
        .unwrap();
    let mut reader = store.get_log_reader().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = tokio::spawn({
        let stop = Arc::clone(&stop);
        let log_index = Arc::clone(&store.log_index);
        let partition = partition.clone();
        async move {
            let mut reads = 0u64;
            let mut start = 0;
            // Replication's reader, made again after each truncation as openraft makes one
            // per leadership (one made before a truncation reads nothing: another test).
            let mut replication = LogReader::new(partition.clone(), Arc::clone(&log_index));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let limited = reads.is_multiple_of(2);
                let read = if limited {
                    let read = replication.limited_get_log_entries(start, start + 30).await;
                    if read.as_ref().is_ok_and(Vec::is_empty) {
                        replication = LogReader::new(partition.clone(), Arc::clone(&log_index));
                    }
                    read
                } else {
                    reader.try_get_log_entries(start..start + 30).await
                };
                let read = read.unwrap_or_else(|e| panic!("read {reads} from {start}: {e}"));
                let indexes: Vec<u64> = read.iter().map(|e| e.log_id.index).collect();
                // A limited read (replication's) starts at `start`; an unlimited one may
                // start later, past purged entries.
                let first = if limited {
                    start
                } else {
                    indexes.first().copied().unwrap_or(start)
                };
                assert!(first >= start, "read {reads} from {start}: {indexes:?}");
                let want: Vec<u64> = (first..first + indexes.len() as u64).collect();
                if read.is_empty() {
                    start = 0;
                } else {
                    assert_eq!(indexes, want, "read {reads} from {start}");
                    start = indexes[indexes.len() - 1] + 1;
                }
                reads += 1;
            }
            reads
        }
    });
    let mut end = 40;
    for round in 0..200 {
        let term = round + 2;
        let cut = end - 1 - round % 7;
        store.truncate(log_id(term - 1, cut)).await.unwrap();
        store
            .blocking_append((cut..cut + 8).map(|i| big_entry(term, i, 100 + round as usize)))
            .await
            .unwrap();
        end = cut + 8;
        if round % 10 == 9 {
            store.purge(log_id(term, end - 30)).await.unwrap();
        }
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reading.await.unwrap();
    assert!(reads > 0);
    log.close().unwrap();
}

/// A read that began before a truncation: what it finds gone makes it short, not an error.
/// And an entry missing although nothing was removed is an error (the partition was changed
/// by another writer): never passed off as a short read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_gone_under_a_read_shorten_it_entries_missing_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let (log, partition, mut store) = open_store(dir.path()).await;
    store.blocking_append((0..20).map(entry)).await.unwrap();
    let log_index = Arc::clone(&store.log_index);
    let before = LogView::of(&log_index);
    store.truncate(log_id(1, 10)).await.unwrap();
    // Entry 12 was at offset 24, now past the end.
    let read = read_entries(
        &partition,
        &log_index,
        before,
        (12, 20),
        Some(24),
        usize::MAX,
    )
    .await
    .unwrap();
    assert!(read.entries.is_empty(), "{:?}", read.entries);
    let read = read_entries(&partition, &log_index, before, (5, 20), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(read.entries, (5..10).map(entry).collect::<Vec<_>>());
    assert_eq!(read.next_offset, 20);

    // Cut behind the store's back: its index still says 0..10 are live.
    partition.truncate_to(14).await.unwrap();
    let now = LogView::of(&log_index);
    let read = read_entries(&partition, &log_index, now, (5, 10), None, usize::MAX).await;
    assert!(matches!(read, Err(Error::MissingEntry(7))), "{read:?}");
    log.close().unwrap();
}

/// A replication reader outlives its leadership in openraft 0.9 (a removed stream finishes
/// its AppendEntries): once the log was truncated (a leader's never is), it sends nothing, since
/// the log may now hold a newer leader's entries that must not follow the old leader's
/// `prev_log_id`. A reader made after the truncation reads the new entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_reader_of_an_ended_leadership_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, mut store) = open_store(dir.path()).await;
    store.blocking_append((0..10).map(entry)).await.unwrap();
    let mut old = store.get_log_reader().await;
    assert_eq!(old.limited_get_log_entries(0, 5).await.unwrap().len(), 5);
    store.truncate(log_id(1, 5)).await.unwrap();
    let newer = |i: u64| entry_of_term(2, i);
    store.blocking_append((5..10).map(newer)).await.unwrap();
    assert_eq!(old.limited_get_log_entries(5, 10).await.unwrap(), vec![]);
    assert_eq!(old.limited_get_log_entries(0, 10).await.unwrap(), vec![]);
    let mut new = store.get_log_reader().await;
    let read = new.limited_get_log_entries(3, 10).await.unwrap();
    let want: Vec<Entry> = (3..5).map(entry).chain((5..10).map(newer)).collect();
    assert_eq!(read, want);
    log.close().unwrap();
}
