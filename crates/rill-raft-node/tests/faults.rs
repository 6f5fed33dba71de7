#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Faults on a three-node replicated partition: the leader killed with SIGKILL under a steady
//! append load, again and again (`RILL_RAFT_KILLS` cycles, 2 by default; the deep run sets
//! 100 or more), a node whose disk is wiped rejoining through a snapshot, and a node whose
//! disk refuses writes stopping, then recovering once restarted.

mod common;

use common::{Cluster, record, records_of};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What the load got acknowledged: offset → the record's number.
type Acked = Arc<Mutex<BTreeMap<u64, u64>>>;

/// Appends batches of 10 records until `stop`, through whichever node leads; records only
/// what was acknowledged (an append whose answer was lost may or may not be committed).
/// Returns how many appends failed, by error.
async fn load(
    addrs: Vec<String>,
    acked: Acked,
    progress: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) -> BTreeMap<String, u64> {
    let mut failures = BTreeMap::new();
    let mut next = 0u64;
    let mut target = 0usize;
    let mut client = rill_raft_node::Client::new(addrs[0].clone());
    while !*stop.borrow() {
        let records = (next..next + 10).map(record).collect();
        let answer = tokio::select! {
            answer = client.append(records) => answer,
            _ = stop.changed() => break,
        };
        if let Err(e) = &answer {
            // The error's kind, without the addresses and details that vary.
            let kind = format!("{e:?}").chars().take_while(|c| *c != '{').collect();
            *failures.entry(kind).or_insert(0) += 1;
        }
        if let Ok(offsets) = answer {
            let mut acked = acked.lock().unwrap();
            for (i, offset) in offsets.into_iter().enumerate() {
                acked.insert(offset, next + i as u64);
            }
            progress.send_replace(acked.len() as u64);
        } else {
            // Another node, after a pause for the election.
            target = (target + 1) % addrs.len();
            client = rill_raft_node::Client::new(addrs[target].clone());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        next += 10;
    }
    failures
}

/// Waits until the load has had `more` records acknowledged beyond `now`.
async fn progress_by(progress: &mut watch::Receiver<u64>, more: u64) {
    let from = *progress.borrow();
    tokio::time::timeout(common::DEADLINE, progress.wait_for(|n| *n >= from + more))
        .await
        .expect("the load made no progress")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_killing_the_leader_under_load() {
    let kills: usize = std::env::var("RILL_RAFT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut cluster = Cluster::new(&[]);
    let ids = [1, 2, 3];
    for id in ids {
        cluster.start(id);
    }
    cluster.init(&ids).await;
    cluster.leader(&ids, 0).await;

    let acked: Acked = Arc::default();
    let (progress_tx, mut progress) = watch::channel(0);
    let (stop_tx, stop) = watch::channel(false);
    let addrs = ids.iter().map(|id| cluster.addr(*id)).collect();
    let loader = tokio::spawn(load(addrs, Arc::clone(&acked), progress_tx, stop));

    for cycle in 0..kills {
        progress_by(&mut progress, 50).await;
        // The survivors elect a leader in a later term than the killed one's (which may
        // already be deposed: then the one that deposed it leads on).
        let (leader, term) = cluster.leader(&ids, 0).await;
        cluster.kill9(leader);
        let survivors: Vec<u64> = common::others(&ids, leader).into_iter().collect();
        cluster.leader(&survivors, term).await;
        progress_by(&mut progress, 50).await;
        cluster.start(leader);
        if cycle % 10 == 0 {
            eprintln!(
                "cycle {cycle}: {} records acknowledged",
                acked.lock().unwrap().len()
            );
        }
    }
    stop_tx.send_replace(true);
    let failures = loader.await.unwrap();

    let acked = acked.lock().unwrap().clone();
    let end = acked.keys().next_back().unwrap() + 1;
    let reference = cluster.assert_converged(&ids, end).await;
    let stored = records_of(&reference);
    for (offset, n) in &acked {
        assert_eq!(
            stored.get(offset).map(Vec::as_slice),
            Some(format!("value-{n}").as_bytes()),
            "acknowledged record {n} at offset {offset} is missing or changed"
        );
    }
    eprintln!(
        "{kills} kills of the leader: {} records acknowledged, all present on every node; \
         failed appends: {failures:?}",
        acked.len()
    );
    for id in ids {
        cluster.stop(id);
    }
}

/// Snapshots every 50 entries keeping 10 below them, so the leader deletes old entries; a
/// follower's directory is wiped and the node restarted under its id: it gets the snapshot,
/// then the entries after it, and holds the leader's bytes from its new log start on, at the
/// same offsets (entries of 1 to 3 records: an index is not an offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_rejoins_through_a_snapshot() {
    let ids = [1, 2, 3];
    let serve_args = ["--snapshot-every", "50", "--keep-below-snapshot", "10"];
    let (mut cluster, leader) = Cluster::started(&serve_args, &ids).await;
    let mut client = cluster.client(leader);
    let mut next = 0;
    for append in 0..150u64 {
        let count = 1 + append % 3;
        client
            .append((next..next + count).map(record).collect())
            .await
            .unwrap();
        next += count;
    }
    let follower = *common::others(&ids, leader).iter().next().unwrap();
    cluster.stop(follower);
    cluster.wipe(follower);
    // Entries appended while it is away, and the leader's purge of old ones.
    let last = client
        .append((next..next + 10).map(record).collect())
        .await
        .unwrap();
    let leader_metrics = common::wait_for("the leader to purge", || async {
        cluster
            .metrics(leader)
            .await
            .filter(|m| m.purged_index.is_some())
    })
    .await;
    cluster.start(follower);
    let end = last[9] + 1;
    let metrics = cluster.caught_up(follower, end).await;
    assert!(
        metrics.snapshot_index.is_some(),
        "no snapshot installed: {metrics:?}"
    );
    let start = metrics.log_start;
    assert!(matches!(
        cluster.client(follower).read(0, 1).await,
        Err(rill_raft_node::CallError::Client(
            rill_raft_node::wire::ClientError::OffsetOutOfRange { .. }
        ))
    ));
    assert!(
        start > leader_metrics.log_start && start <= last[9],
        "log start {start}, the leader's {}",
        leader_metrics.log_start
    );
    // The nodes agree once they hold the same committed offset (an election may have
    // added a blank entry meanwhile: the wiped node votes afresh).
    let (now_leader, _) = cluster.leader(&ids, 0).await;
    let committed = cluster.caught_up(now_leader, end).await.committed_offset;
    cluster.caught_up(follower, committed).await;
    let theirs = cluster.read_all(follower, start).await;
    let ours = cluster.read_all(now_leader, start).await;
    common::assert_same_batches(&theirs, &ours, start, committed);
    for id in ids {
        cluster.stop(id);
    }
}

/// The segment files under a directory made immutable (`chattr +i`): a write to one, even
/// through a descriptor already open, fails with EPERM, as on a disk that refuses writes.
/// Dropping it (a failing test included) makes them writable again, so they can be deleted.
struct ImmutableSegments(PathBuf);

impl ImmutableSegments {
    fn new(dir: PathBuf) -> Self {
        chattr(&dir, "+i");
        Self(dir)
    }
}

impl Drop for ImmutableSegments {
    fn drop(&mut self) {
        chattr(&self.0, "-i");
    }
}

fn chattr(dir: &Path, flag: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let status = std::process::Command::new("chattr")
                .arg(flag)
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "chattr {flag} {}", path.display());
        }
    }
}

/// A follower's disk refuses writes: its log store's append fails, which openraft takes as
/// fatal, and the node exits with an error saying so (fail-stop, for a supervisor) instead
/// of running on without Raft. The other two go on committing. Once the disk takes writes
/// again, the restarted node recovers its log from disk and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_refuses_writes_exits_and_recovers_on_restart() {
    let ids = [1, 2, 3];
    let (mut cluster, leader) = Cluster::started(&[], &ids).await;
    let mut client = cluster.client(leader);
    let first = client.append((0..10).map(record).collect()).await.unwrap();
    let follower = *common::others(&ids, leader).iter().next().unwrap();
    cluster.caught_up(follower, first[9] + 1).await;
    let segments = cluster.node_dir(follower).join("data").join("replicated-0");
    let immutable = ImmutableSegments::new(segments);
    let acked = client.append((10..20).map(record).collect()).await.unwrap();
    let status = cluster.exited(follower);
    drop(immutable);
    assert!(!status.success(), "node {follower} exited with {status}");
    let log = cluster.log_of(follower);
    assert!(log.contains("Raft stopped"), "node {follower}'s log: {log}");

    let more = client.append((20..30).map(record).collect()).await.unwrap();
    cluster.start(follower);
    let end = more[9] + 1;
    cluster.caught_up(follower, end).await;
    let reference = cluster.assert_converged(&ids, end).await;
    let records = records_of(&reference);
    for (n, offset) in first.iter().chain(&acked).chain(&more).enumerate() {
        assert_eq!(records[offset], format!("value-{n}").into_bytes());
    }
    for id in ids {
        cluster.stop(id);
    }
}
