//! A cluster of `rill-raft-node` processes on loopback, for the tests: start, kill -9,
//! restart, wipe, and wait for states by asking the nodes (bounded by a deadline, never by a
//! sleep that hopes).

#![allow(dead_code, reason = "each test file uses part of it")]

use rill_raft::Record;
use rill_raft_node::Client;
use rill_raft_node::wire::NodeMetrics;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How long any awaited state may take.
pub const DEADLINE: Duration = Duration::from_mins(1);

pub struct NodeProc {
    pub addr: String,
    child: Option<Child>,
}

pub struct Cluster {
    dir: tempfile::TempDir,
    pub nodes: BTreeMap<u64, NodeProc>,
    /// Extra arguments of every `serve`.
    serve_args: Vec<String>,
}

/// A port for a node: free now, below the kernel's ephemeral range (where outgoing
/// connections take their local ports, so none can take it before the node binds it, nor
/// while it is down between restarts), and not handed out before by this process (whose
/// tests run at once).
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, span) = (ephemeral_low.saturating_sub(12_000).max(1_024), 10_000u16);
    let first = (std::process::id() % u32::from(span)) as u16;
    // Bounded: every port of the span is tried once at most.
    for _ in 0..span {
        let port = low + (first + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if port < ephemeral_low && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{}", low + span);
}

impl Cluster {
    pub fn new(serve_args: &[&str]) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            nodes: BTreeMap::new(),
            serve_args: serve_args.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("n{id}"))
    }

    /// Starts node `id` (at its old address if it ran before) and waits until it listens.
    pub fn start(&mut self, id: u64) {
        let addr = self
            .nodes
            .get(&id)
            .map_or_else(|| format!("127.0.0.1:{}", free_port()), |n| n.addr.clone());
        // Each node's log (its stderr) goes to a file beside its directory, kept across
        // restarts; a failing test prints their tails.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{id}.log")))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rill-raft-node"))
            .args(["serve", "--id", &id.to_string(), "--listen", &addr, "--dir"])
            .arg(self.node_dir(id))
            .args(&self.serve_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        if !line.contains("listening") {
            let _ = child.wait();
            panic!(
                "node {id} did not start: {line:?}; its log:\n{}",
                self.log_of(id)
            );
        }
        self.nodes.insert(
            id,
            NodeProc {
                addr,
                child: Some(child),
            },
        );
    }

    /// SIGKILL: no shutdown, nothing flushed.
    pub fn kill9(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(mut child) = node.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for the clean exit.
    pub fn stop(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(mut child) = node.child.take() {
            // SAFETY: kill(2) on a child's pid; no memory is involved.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(status.success(), "node {id} exited with {status}");
        }
    }

    /// Waits (bounded) for node `id` to exit on its own; its exit status.
    pub fn exited(&mut self, id: u64) -> std::process::ExitStatus {
        let node = self.nodes.get_mut(&id).unwrap();
        let child = node.child.as_mut().expect("node {id} runs");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                node.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "node {id} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's log (its stderr) so far.
    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{id}.log"))).unwrap_or_default()
    }

    pub fn wipe(&self, id: u64) {
        std::fs::remove_dir_all(self.node_dir(id)).unwrap();
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.clone()
    }

    pub fn client(&self, id: u64) -> Client {
        Client::new(self.addr(id))
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.child.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts nodes `ids` (each `serve` with `serve_args`), makes them the voters and waits
    /// for a leader; the cluster and the leader.
    pub async fn started(serve_args: &[&str], ids: &[u64]) -> (Self, u64) {
        let mut cluster = Self::new(serve_args);
        for &id in ids {
            cluster.start(id);
        }
        cluster.init(ids).await;
        let (leader, _) = cluster.leader(ids, 0).await;
        (cluster, leader)
    }

    /// Makes the cluster of `voters` through the first.
    pub async fn init(&self, voters: &[u64]) {
        let members = voters.iter().map(|id| (*id, self.addr(*id))).collect();
        self.client(voters[0]).init(members).await.unwrap();
    }

    pub async fn metrics(&self, id: u64) -> Option<NodeMetrics> {
        self.client(id).metrics().await.ok()
    }

    /// Waits until a running node among `among` is leader in a term above `after_term`;
    /// returns (leader, term). When several say they lead (a deposed leader has not heard of
    /// the new term yet), the one of the highest term.
    pub async fn leader(&self, among: &[u64], after_term: u64) -> (u64, u64) {
        let started = std::time::Instant::now();
        // What each node said last, for the message if no leader comes.
        let mut seen = BTreeMap::new();
        loop {
            let mut best: Option<(u64, u64)> = None;
            for id in among {
                let metrics = self.metrics(*id).await;
                if let Some(m) = &metrics
                    && m.state == "Leader"
                    && m.term > after_term
                    && best.is_none_or(|(_, term)| m.term > term)
                {
                    best = Some((*id, m.term));
                }
                seen.insert(*id, metrics);
            }
            if let Some(found) = best {
                return found;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "timed out waiting for a leader among {among:?} in a term above {after_term}; \
                 last seen: {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until node `id` has applied everything below `offset`.
    pub async fn caught_up(&self, id: u64, offset: u64) -> NodeMetrics {
        wait_for(&format!("node {id} to reach offset {offset}"), || async {
            self.metrics(id)
                .await
                .filter(|m| m.committed_offset >= offset)
        })
        .await
    }

    /// Waits until every node in `ids` has applied everything the current leader had
    /// committed (at least `offset`), then checks that they hold the same batch at every
    /// offset below that; returns the leader's batches. (Entries committed later, such as a
    /// new leader's blank entry, are not compared.)
    pub async fn assert_converged(&self, ids: &[u64], offset: u64) -> Vec<u8> {
        let (leader, _) = self.leader(ids, 0).await;
        let committed = self.caught_up(leader, offset).await.committed_offset;
        let reference = self.read_all(leader, 0).await;
        for id in ids {
            self.caught_up(*id, committed).await;
            let bytes = self.read_all(*id, 0).await;
            assert_same_batches(&bytes, &reference, 0, committed);
        }
        reference
    }

    /// Every committed batch node `id` holds from `offset` on.
    pub async fn read_all(&self, id: u64, offset: u64) -> Vec<u8> {
        self.client(id).read_all(offset).await.unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in self.nodes.keys() {
                let path = self.dir.path().join(format!("n{id}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- node {id}: panics in its log");
                // A panic's message follows its "panicked at" line.
                let panics = lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.contains("panicked at"));
                for (i, _) in panics.take(3) {
                    for line in &lines[i..(i + 3).min(lines.len())] {
                        eprintln!("{line}");
                    }
                }
                eprintln!("--- node {id}: last lines of its log");
                for line in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{line}");
                }
            }
        }
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Polls `check` until it gives a value, for at most [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    // Bounded by the deadline.
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A record whose value names it.
pub fn record(n: u64) -> Record {
    Record {
        timestamp_ms: 1_700_000_000_000 + n as i64,
        key: Some(n.to_be_bytes().to_vec()),
        value: Some(format!("value-{n}").into_bytes()),
        headers: Vec::new(),
    }
}

/// The data records of concatenated batches: offset → value.
pub fn records_of(batches: &[u8]) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut rest = batches;
    while !rest.is_empty() {
        let header = rill::batch::BatchHeader::parse(rest).unwrap();
        let len = header.total_bytes() as usize;
        let (batch, tail) = rest.split_at(len);
        rest = tail;
        assert_eq!(
            rill::batch::compute_crc(batch),
            header.crc,
            "CRC at {}",
            header.base_offset
        );
        if header.attributes.is_control() {
            continue;
        }
        for r in rill::batch::records(batch).unwrap() {
            let r = r.unwrap();
            out.insert(r.offset as u64, r.value.unwrap_or_default().to_vec());
        }
    }
    out
}

/// Node ids other than `id` in `ids`.
pub fn others(ids: &[u64], id: u64) -> BTreeSet<u64> {
    ids.iter().copied().filter(|x| *x != id).collect()
}

/// Each batch of concatenated batches, by base offset.
pub fn batches_of(bytes: &[u8]) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = rill::batch::BatchHeader::parse(rest).unwrap();
        let (batch, tail) = rest.split_at(header.total_bytes() as usize);
        out.insert(header.base_offset as u64, batch.to_vec());
        rest = tail;
    }
    out
}

/// Asserts that two nodes hold the same batches, byte for byte, covering every offset from
/// `from` to `below` with no gap (a batch holds several offsets: one entry's records).
pub fn assert_same_batches(a: &[u8], b: &[u8], from: u64, below: u64) {
    let in_range = |bytes: &[u8]| -> BTreeMap<u64, Vec<u8>> {
        batches_of(bytes)
            .into_iter()
            .filter(|(base, batch)| {
                let header = rill::batch::BatchHeader::parse(batch).unwrap();
                header.next_offset() as u64 > from && *base < below
            })
            .collect()
    };
    let (a, b) = (in_range(a), in_range(b));
    let describe = |m: &BTreeMap<u64, Vec<u8>>| -> Vec<(u64, i32)> {
        m.iter()
            .map(|(base, batch)| {
                let header = rill::batch::BatchHeader::parse(batch).unwrap();
                (*base, header.records_count)
            })
            .collect()
    };
    assert!(a == b, "{:?} against {:?}", describe(&a), describe(&b));
    let mut next = from;
    for (base, batch) in &a {
        assert!(*base <= next, "no batch holds offset {next}");
        next = rill::batch::BatchHeader::parse(batch)
            .unwrap()
            .next_offset() as u64;
    }
    assert!(next >= below, "no batch holds offset {next}");
}
