#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure is a test failure"
)]

//! Three `rill-raft-node` processes on loopback: appends through the leader answered once
//! committed, committed batches read from every node byte for byte the same, and membership
//! changes (a learner added, promoted, a voter removed).

mod common;

use common::{Cluster, record, records_of};
use rill_raft_node::CallError;
use rill_raft_node::wire::ClientError;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_change_their_membership() {
    let mut cluster = Cluster::new(&[]);
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.init(&[1, 2, 3]).await;
    let (leader, _) = cluster.leader(&[1, 2, 3], 0).await;

    // Appends through any node: the client follows the leader.
    let mut client = cluster.client(if leader == 1 { 2 } else { 1 });
    let mut acked = Vec::new();
    for batch in 0..10u64 {
        let records = (batch * 20..batch * 20 + 20).map(record).collect();
        acked.extend(client.append(records).await.unwrap());
    }
    assert_eq!(acked.len(), 200);
    assert!(
        acked.windows(2).all(|w| w[1] == w[0] + 1),
        "offsets are dense"
    );
    let end = acked[199] + 1;

    let leader_bytes = cluster.assert_converged(&[1, 2, 3], end).await;
    let records = records_of(&leader_bytes);
    for (n, offset) in acked.iter().enumerate() {
        assert_eq!(records[offset], format!("value-{n}").into_bytes());
    }

    // A fourth node joins as a learner, becomes a voter, and node 3 leaves; asked of a
    // follower, which names the leader.
    cluster.start(4);
    let follower = if leader == 1 { 2 } else { 1 };
    let mut admin = cluster.client(follower);
    admin.add_learner(4, cluster.addr(4)).await.unwrap();
    let voters: BTreeSet<u64> = [1, 2, 4].into_iter().collect();
    let remaining: Vec<u64> = voters.iter().copied().collect();
    let mut admin = cluster.client(follower);
    admin.change_membership(voters.clone()).await.unwrap();
    let more = client
        .append((200..210).map(record).collect())
        .await
        .unwrap();
    let end = more[9] + 1;
    let metrics = cluster.caught_up(4, end).await;
    assert_eq!(metrics.voters, voters);
    assert!(metrics.learners.is_empty());
    cluster.assert_converged(&remaining, end).await;
    cluster.stop(3);
    // The cluster goes on without node 3.
    let last = client
        .append((210..215).map(record).collect())
        .await
        .unwrap();
    cluster.caught_up(4, last[4] + 1).await;
    for id in [1, 2, 4] {
        cluster.stop(id);
    }
}

/// The leader is cut off from the others (both ways); they elect a new leader and take
/// appends; an append sent to the old leader is never acknowledged; after the heal every node
/// holds the same bytes and the old leader's unreplicated entries are gone.
/// A leader cut off from its followers keeps leading in its own view and cannot commit: its
/// appends are answered "outcome unknown" when the append timeout passes (they were proposed),
/// one after another (the proposer does not stall). After the partition heals, those entries
/// are gone and the old leader refuses appends as not the leader, naming the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_heals_without_divergence() {
    let mut cluster = Cluster::new(&["--append-timeout-ms", "2000"]);
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.init(&[1, 2, 3]).await;
    let (old, term) = cluster.leader(&[1, 2, 3], 0).await;
    let mut client = cluster.client(old);
    client.append((0..10).map(record).collect()).await.unwrap();

    let rest: Vec<u64> = common::others(&[1, 2, 3], old).into_iter().collect();
    cluster
        .client(old)
        .block(rest.iter().copied().collect())
        .await
        .unwrap();
    for id in &rest {
        cluster
            .client(*id)
            .block([old].into_iter().collect())
            .await
            .unwrap();
    }
    // Written on the old leader alone: it cannot commit.
    let mut cut_off = cluster.client(old);
    for first in [1000, 2000] {
        let answer = cut_off
            .append_here((first..first + 5).map(record).collect())
            .await;
        assert!(
            matches!(
                answer,
                Err(CallError::Client(ClientError::OutcomeUnknown(_)))
            ),
            "an append on a cut-off leader: {answer:?}"
        );
    }
    let (new, _) = cluster.leader(&rest, term).await;
    let mut client = cluster.client(new);
    let acked = client.append((10..30).map(record).collect()).await.unwrap();

    for id in [1, 2, 3] {
        cluster.client(id).block(BTreeSet::new()).await.unwrap();
    }
    let end = acked[19] + 1;
    let reference = cluster.assert_converged(&[1, 2, 3], end).await;
    let records = records_of(&reference);
    assert!(
        !records
            .values()
            .any(|v| v.starts_with(b"value-100") || v.starts_with(b"value-200")),
        "an unacknowledged entry of the old leader was committed"
    );
    let answer = cut_off.append_here(vec![record(3000)]).await;
    let refused_for_new = matches!(
        &answer,
        Err(CallError::Client(ClientError::NotLeader { leader: Some((id, _)) })) if *id == new
    );
    assert!(refused_for_new, "the old leader, healed: {answer:?}");
    for id in [1, 2, 3] {
        cluster.stop(id);
    }
}

/// Clients appending at once through the leader, whose proposer groups their appends into
/// shared entries: every append's records are answered with dense offsets, sit in one batch
/// (an entry commits whole), and are on every node at those offsets; no two appends share an
/// offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_commit_whole_at_their_offsets() {
    const CLIENTS: u64 = 8;
    const APPENDS: u64 = 25;
    const RECORDS: u64 = 4;
    let mut cluster = Cluster::new(&[]);
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.init(&[1, 2, 3]).await;
    let (leader, _) = cluster.leader(&[1, 2, 3], 0).await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = cluster.client(leader);
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for a in 0..APPENDS {
                let first = (c * APPENDS + a) * RECORDS;
                let records = (first..first + RECORDS).map(record).collect();
                answers.push((first, client.append(records).await.unwrap()));
            }
            answers
        }));
    }
    let mut appends = Vec::new();
    for task in tasks {
        appends.extend(task.await.unwrap());
    }
    let end = appends.iter().flat_map(|(_, o)| o).max().unwrap() + 1;
    let reference = cluster.assert_converged(&[1, 2, 3], end).await;
    let records = records_of(&reference);
    let batches = common::batches_of(&reference);
    let mut taken = BTreeSet::new();
    for (first, offsets) in &appends {
        assert_eq!(offsets.len() as u64, RECORDS);
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
        let (base, batch) = batches.range(..=offsets[0]).next_back().unwrap();
        let header = rill::batch::BatchHeader::parse(batch).unwrap();
        assert!(
            *base <= offsets[0] && offsets[3] < header.next_offset() as u64,
            "an append split across batches: {offsets:?}"
        );
        for (i, offset) in offsets.iter().enumerate() {
            assert!(taken.insert(*offset), "offset {offset} answered twice");
            let n = first + i as u64;
            assert_eq!(records[offset], format!("value-{n}").into_bytes());
        }
    }
    eprintln!(
        "{} appends in {} batches",
        appends.len(),
        batches.range(..end).count()
    );
    for id in [1, 2, 3] {
        cluster.stop(id);
    }
}
