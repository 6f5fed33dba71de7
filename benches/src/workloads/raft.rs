//! Raft: appends replicated through a three-node cluster on loopback, acknowledged once
//! committed (a quorum has them durable) and applied, against one node's durable appends of
//! the same records, in one run.
//!
//! * **raft, 3 nodes**: `rill-raft-node` nodes in this process, each with its own rill log
//!   (io_uring driver) in its own directory on the same disk, talking TCP on loopback (the
//!   nodes' MessagePack wire format). Clients are tasks, each with its own connection to the
//!   leader, in a closed loop: one append of `records` records in flight each.
//! * **raft, 1 node**: a cluster of one voter: Raft's own path (the leader's log writes,
//!   commit, apply, the client's TCP hop) without replication.
//! * **single node, durable**: one rill log, the same records encoded as one batch per
//!   append, `Durability::Durable`, from as many threads, also a closed loop.
//!
//! Every node fsyncs its own log, so the cluster puts three times the writes and fdatasyncs
//! of the single node on the one disk; that, the network hop and the encoding are what the
//! ratio measures.

use super::{URING, mb_per_s};
use crate::harness::{Bench, Engine, Sample};
use crate::measure::{Latency, PERCENTILES};
use crate::report::WorkloadResult;
use anyhow::{Context, Result};
use rill::{BatchBuilder, Config, DriverChoice, Durability, Log};
use rill_raft::Record;
use rill_raft_node::{Client, Node, NodeConfig, serve};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 100;
const RAFT: &str = "raft, 3 nodes";
const RAFT_ONE: &str = "raft, 1 node";
const SINGLE: &str = "single node, durable";

/// (records per append, clients).
const CASES: [(usize, usize); 3] = [(1, 1), (1, 16), (100, 4)];

fn records(count: usize) -> Vec<Record> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (0..count)
        .map(|_| Record {
            timestamp_ms: now_ms,
            value: Some(vec![0x5a; VALUE_BYTES]),
            ..Record::default()
        })
        .collect()
}

fn sample(appends: u64, per_append: usize, seconds: f64, latency: &Latency) -> Sample {
    let records = appends * per_append as u64;
    let mut sample = Sample::from([
        ("records_per_s", records as f64 / seconds),
        ("mb_per_s", mb_per_s(records * VALUE_BYTES as u64, seconds)),
        ("appends", appends as f64),
    ]);
    for (name, percentile) in PERCENTILES {
        sample.insert(name, latency.percentile_us(percentile));
    }
    sample
}

type Nodes = Vec<(Arc<Node>, tokio::sync::watch::Sender<bool>)>;

/// `count` nodes on loopback, initialized; returns them with the leader's address.
async fn cluster(dir: &std::path::Path, count: u64) -> Result<(Nodes, String)> {
    let mut nodes = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=count {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let mut config = NodeConfig::new(id, addr.clone(), dir.join(format!("n{id}")));
        config.driver = DriverChoice::Uring;
        let node = Node::start(&config).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(Arc::clone(&node), listener, stopped));
        nodes.push((node, stop));
        members.insert(id, addr);
    }
    Client::new(members[&1].clone())
        .init(members.clone())
        .await?;
    let started = Instant::now();
    // Bounded: an election on loopback takes a second or two.
    loop {
        if let Some((node, _)) = nodes.iter().find(|(n, _)| n.metrics().state == "Leader") {
            let id = node.metrics().id;
            return Ok((nodes, members[&id].clone()));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no leader elected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn raft_run(bench: &Bench, nodes: u64, per_append: usize, clients: usize) -> Result<Sample> {
    let dir = bench.scratch_dir("raft")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let run_time = Duration::from_secs_f64(bench.scale.run_seconds);
    runtime.block_on(async {
        let (nodes, leader) = cluster(dir.path(), nodes).await?;
        // Warm-up: connections made, the leader's first entries committed.
        Client::new(leader.clone()).append_here(records(1)).await?;
        let start = Instant::now();
        let deadline = start + run_time;
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let leader = leader.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::new(leader);
                let mut latency = Latency::new();
                let mut appends = 0u64;
                // Bounded by the run time.
                while Instant::now() < deadline {
                    let batch = records(per_append);
                    let t = Instant::now();
                    client.append_here(batch).await?;
                    latency.record(t.elapsed());
                    appends += 1;
                }
                Ok::<_, anyhow::Error>((appends, latency))
            }));
        }
        let mut appends = 0;
        let mut latency = Latency::new();
        for task in tasks {
            let (n, l) = task.await.context("client task")??;
            appends += n;
            latency.merge(&l);
        }
        let seconds = start.elapsed().as_secs_f64();
        for (node, stop) in nodes {
            let _ = stop.send(true);
            node.shutdown().await?;
        }
        Ok(sample(appends, per_append, seconds, &latency))
    })
}

fn single_run(bench: &Bench, per_append: usize, clients: usize) -> Result<Sample> {
    let dir = bench.scratch_dir("single")?;
    let mut config = Config::new(dir.path());
    config.driver = DriverChoice::Uring;
    let (log, _) = Log::open(config)?;
    log.create_topic("single", 1)?;
    let partition = log.partition("single", 0)?;
    let run_time = Duration::from_secs_f64(bench.scale.run_seconds);
    let start = Instant::now();
    let deadline = start + run_time;
    let results: Vec<Result<(u64, Latency)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let partition = partition.clone();
                scope.spawn(move || {
                    let mut latency = Latency::new();
                    let mut appends = 0u64;
                    // Bounded by the run time.
                    while Instant::now() < deadline {
                        let mut builder = BatchBuilder::with_capacity(per_append * 128 + 64);
                        for record in records(per_append) {
                            builder.append(
                                record.timestamp_ms,
                                None,
                                record.value.as_deref(),
                                &[],
                            )?;
                        }
                        let t = Instant::now();
                        partition
                            .append_with(builder.finish()?, Durability::Durable)
                            .wait()?;
                        latency.record(t.elapsed());
                        appends += 1;
                    }
                    Ok((appends, latency))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    log.close()?;
    let mut appends = 0;
    let mut latency = Latency::new();
    for result in results {
        let (n, l) = result?;
        appends += n;
        latency.merge(&l);
    }
    Ok(sample(appends, per_append, seconds, &latency))
}

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let bench_ref: &Bench = bench;
    let mut cases = Vec::new();
    for (per_append, clients) in CASES {
        let engines = vec![
            Engine::new(
                RAFT,
                "rill-raft-node ×3 in this process, TCP on loopback, io_uring; acknowledged once committed and applied",
                move || raft_run(bench_ref, 3, per_append, clients),
            ),
            Engine::new(
                RAFT_ONE,
                "rill-raft-node ×1 (a cluster of one voter): Raft's own path without replication",
                move || raft_run(bench_ref, 1, per_append, clients),
            ),
            Engine::new(
                SINGLE,
                format!("{URING}, one partition, Durability::Durable"),
                move || single_run(bench_ref, per_append, clients),
            ),
        ];
        cases.push(bench.run_case(
            &format!("{per_append} × 100 B per append, {clients} clients"),
            BTreeMap::from([
                ("records", per_append.into()),
                ("clients", clients.into()),
                ("value_bytes", VALUE_BYTES.into()),
            ]),
            engines,
            &[(RAFT, SINGLE), (RAFT_ONE, SINGLE)],
            "records_per_s",
        ));
    }
    Ok(WorkloadResult {
        name: "raft".into(),
        description: "appends replicated by three nodes (committed) against one node's durable appends".into(),
        primary_metric: "records_per_s".into(),
        columns: ["records_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us", "appends"]
            .map(String::from)
            .to_vec(),
        cases,
        notes: vec![
            "the three nodes share this machine's cores and disk: three times the single node's writes and fdatasyncs"
                .into(),
        ],
    })
}
