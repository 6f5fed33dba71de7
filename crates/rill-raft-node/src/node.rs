//! One node: a rill log holding the replicated partition, openraft on it, and a TCP server
//! answering peers (Raft RPCs), clients (appends through the leader, committed reads) and
//! admin requests, one request at a time per connection.

use crate::network::{Blocked, Network};
use crate::proposer::Proposer;
use crate::wire::{
    self, ClientError, MAX_READ_BYTES, MAX_RECORDS_PER_APPEND, NodeMetrics, ReadReply, Request,
    Response,
};
use rill::{Config, DriverChoice, Log, Partition, ReadLimit};
use rill_raft::openraft::error::{ClientWriteError, RaftError};
use rill_raft::openraft::{self, BasicNode, ChangeMembers, Raft, SnapshotPolicy};
use rill_raft::{AppliedState, LogStore, StateMachine, TypeConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// The replicated topic's name; it has one partition.
pub const TOPIC: &str = "replicated";
/// How many append timeouts a membership change may take (adding a learner waits for it to
/// catch up): 60 s by default.
const ADMIN_TIMEOUT_APPEND_TIMEOUTS: u32 = 6;
/// openraft's answer to a write that failed.
type WriteError = RaftError<u64, ClientWriteError<u64, BasicNode>>;
/// Bytes of request frames being read and decoded at once, over every connection.
const FRAME_BYTES_READING: usize = 256 << 20;
/// How long a frame's body may take to arrive once its length did.
const FRAME_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Connections served at once; more are closed as they come.
const MAX_CONNECTIONS: usize = 256;
/// A connection with no request for this long is closed (peers send heartbeats far more
/// often).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_mins(5);

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's id (never reused for another node).
    pub id: u64,
    /// Where it listens (peers and clients).
    pub listen: String,
    /// Its directory: `data/` (the rill log), `raft/` (vote, snapshot).
    pub dir: PathBuf,
    /// The rill I/O driver.
    pub driver: DriverChoice,
    /// A snapshot every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept below the last snapshot (older ones are deleted: the partition's
    /// retention). `u64::MAX` keeps everything.
    pub keep_below_snapshot: u64,
    /// Raft's heartbeat interval.
    pub heartbeat_ms: u64,
    /// Raft's election timeout (randomized between this and twice it).
    pub election_ms: u64,
    /// How long an append waits for Raft to commit it before it is answered
    /// `OutcomeUnknown` (a leader cut off from its followers cannot commit).
    pub append_timeout_ms: u64,
}

impl NodeConfig {
    /// A node with loopback-friendly timings that never deletes entries.
    pub fn new(id: u64, listen: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            listen: listen.into(),
            dir: dir.into(),
            driver: DriverChoice::Auto,
            snapshot_every: 10_000,
            keep_below_snapshot: u64::MAX,
            heartbeat_ms: 100,
            election_ms: 500,
            append_timeout_ms: 10_000,
        }
    }
}

/// A running node.
pub struct Node {
    id: u64,
    raft: Raft<TypeConfig>,
    log: Log,
    partition: Partition,
    applied: watch::Receiver<AppliedState>,
    blocked: Arc<Blocked>,
    proposer: Proposer,
    /// [`NodeConfig::append_timeout_ms`].
    append_timeout: Duration,
    /// Room for request frames being read: one permit a byte, [`FRAME_BYTES_READING`].
    frame_room: Semaphore,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the node's log and Raft state and starts Raft (no server yet: see [`serve`]).
    pub async fn start(config: &NodeConfig) -> anyhow::Result<Arc<Self>> {
        let mut log_config = Config::new(config.dir.join("data"));
        log_config.driver = config.driver;
        let (log, _report) = Log::open(log_config)?;
        if !log.topics().iter().any(|t| t.name == TOPIC) {
            log.create_topic_with(TOPIC, 1, &rill_raft::topic_config())?;
        }
        let partition = log.partition(TOPIC, 0)?;
        let state_dir = config.dir.join("raft");
        let state_machine = StateMachine::open(&state_dir)?;
        let store = LogStore::open(partition.clone(), &state_dir)
            .await?
            .purge_only_below(state_machine.durable_snapshot());
        let applied = state_machine.subscribe();
        let raft_config = openraft::Config {
            cluster_name: "rill".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_ms,
            election_timeout_max: config.election_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_below_snapshot,
            ..openraft::Config::default()
        }
        .validate()?;
        let blocked = Arc::new(Blocked::default());
        let network = Network {
            blocked: Arc::clone(&blocked),
        };
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            network,
            store,
            state_machine,
        )
        .await?;
        let append_timeout = Duration::from_millis(config.append_timeout_ms);
        let proposer = Proposer::start(
            raft.clone(),
            config.id,
            partition.max_batch_bytes(),
            append_timeout,
        );
        Ok(Arc::new(Self {
            id: config.id,
            proposer,
            raft,
            log,
            partition,
            applied,
            blocked,
            append_timeout,
            frame_room: Semaphore::new(FRAME_BYTES_READING),
        }))
    }

    /// Stops Raft and closes the log cleanly.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        // The log closes even when Raft had stopped already (after a fatal error).
        let raft = self.raft.shutdown().await;
        self.log.close()?;
        raft.map_err(|e| anyhow::anyhow!("raft: {e}"))
    }

    /// Resolves, with the reason, once Raft has stopped on its own: a storage error (a
    /// write or an fdatasync the disk refused, which fail-stops the partition too) or another
    /// fatal error. The node can then do nothing useful until it restarts, which recovers
    /// its log from disk; `rill-raft-node serve` exits, for its supervisor to restart it.
    pub async fn raft_stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        let stopped = match metrics.wait_for(|m| m.running_state.is_err()).await {
            Ok(m) => m.running_state.as_ref().err().map(ToString::to_string),
            Err(_) => None,
        };
        stopped.unwrap_or_else(|| "Raft's state is gone".into())
    }

    /// The node's state.
    pub fn metrics(&self) -> NodeMetrics {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        NodeMetrics {
            id: self.id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed_offset: self.applied.borrow().committed_offset(),
            log_start: u64::try_from(self.partition.offsets().log_start).unwrap_or(0),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            snapshot_index: m.snapshot.map(|s| s.index),
            purged_index: m.purged.map(|p| p.index),
        }
    }

    /// Runs a membership change (`one_step`: adding a learner; changing the voters takes
    /// two, a joint configuration first) if this node leads, else answers `NotLeader`
    /// (nothing proposed: it may be retried at the leader). Bounded: a learner that never
    /// catches up, or a leader that cannot commit, gets `OutcomeUnknown` after
    /// [`ADMIN_TIMEOUT_APPEND_TIMEOUTS`] append timeouts.
    async fn change<T>(
        &self,
        change: impl Future<Output = Result<T, WriteError>>,
        one_step: bool,
    ) -> Result<(), ClientError> {
        if let Some(refused) = crate::proposer::not_leader(&self.raft, self.id) {
            return Err(refused);
        }
        let bound = self.append_timeout * ADMIN_TIMEOUT_APPEND_TIMEOUTS;
        match tokio::time::timeout(bound, change).await {
            Ok(done) => done
                .map(|_| ())
                .map_err(|e| wire::membership_error(e, one_step)),
            Err(_) => Err(ClientError::OutcomeUnknown(format!(
                "the change was not done within {bound:?}"
            ))),
        }
    }

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Request::Append { records } => {
                // The proposer answers within the append timeout of proposing; this bounds
                // the wait in its queue before, so a connection never waits forever.
                let bound = self.append_timeout * 2;
                let answer = tokio::time::timeout(bound, self.append(records)).await;
                Response::Appended(answer.unwrap_or_else(|_| {
                    Err(ClientError::OutcomeUnknown(format!(
                        "no answer from Raft within {bound:?}"
                    )))
                }))
            }
            Request::Read { offset, max_bytes } => {
                Response::Read(self.read(offset, max_bytes).await)
            }
            Request::Init { members } => {
                let nodes: BTreeMap<u64, BasicNode> = members
                    .into_iter()
                    .map(|(id, addr)| (id, BasicNode::new(addr)))
                    .collect();
                Response::Done(
                    self.raft
                        .initialize(nodes)
                        .await
                        .map_err(|e| ClientError::Failed(e.to_string())),
                )
            }
            Request::AddLearner { id, addr } => {
                let add = self.raft.add_learner(id, BasicNode::new(addr), true);
                Response::Done(self.change(add, true).await)
            }
            Request::ChangeMembership { voters } => {
                let voters = ChangeMembers::ReplaceAllVoters(voters);
                let change = self.raft.change_membership(voters, false);
                Response::Done(self.change(change, false).await)
            }
            Request::Metrics => Response::Metrics(self.metrics()),
            Request::Block { peers } => {
                self.blocked.set(peers);
                Response::Done(Ok(()))
            }
        }
    }

    /// Proposes the records (as one Raft entry, maybe with other appends'), then waits until
    /// they are committed and applied.
    async fn append(&self, records: Vec<rill_raft::Record>) -> Result<Vec<u64>, ClientError> {
        if records.len() > MAX_RECORDS_PER_APPEND {
            return Err(ClientError::BadRequest(format!(
                "{} records; at most {MAX_RECORDS_PER_APPEND} per append",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.proposer.append(records).await
    }

    /// The committed batches from `offset` (this node's committed offset bounds them).
    async fn read(&self, offset: u64, max_bytes: u64) -> Result<ReadReply, ClientError> {
        let committed = self.applied.borrow().committed_offset();
        let log_start = u64::try_from(self.partition.offsets().log_start).unwrap_or(0);
        let mut reply = ReadReply {
            batches: Vec::new(),
            next_offset: offset,
            committed_offset: committed,
            log_start,
        };
        if offset < log_start {
            return Err(ClientError::OffsetOutOfRange { offset, log_start });
        }
        if offset >= committed {
            return Ok(reply);
        }
        let at = i64::try_from(offset).map_err(|_| ClientError::BadRequest("offset".into()))?;
        let read = self
            .partition
            .read_with(at, max_bytes.min(MAX_READ_BYTES), ReadLimit::Written)
            .await
            .map_err(|e| ClientError::Failed(e.to_string()))?;
        for batch in read.batches() {
            let header = rill::batch::BatchHeader::parse(batch)
                .map_err(|e| ClientError::Failed(e.to_string()))?;
            let next = u64::try_from(header.next_offset()).unwrap_or(0);
            if next > committed {
                break;
            }
            reply.batches.extend_from_slice(batch);
            reply.next_offset = next;
        }
        Ok(reply)
    }
}

/// Whether a Raft message from a peer may be handled: its term fits the log (a larger one,
/// once stored as this node's vote, would make every later entry unwritable), and a snapshot
/// chunk stays within the snapshot bound.
fn acceptable(request: &Request) -> bool {
    match request {
        Request::AppendEntries(rpc) => rpc.vote.leader_id.term <= rill_raft::MAX_TERM,
        Request::Vote(rpc) => rpc.vote.leader_id.term <= rill_raft::MAX_TERM,
        Request::InstallSnapshot(rpc) => {
            rpc.vote.leader_id.term <= rill_raft::MAX_TERM
                && rpc
                    .offset
                    .checked_add(rpc.data.len() as u64)
                    .is_some_and(|end| end <= rill_raft::MAX_SNAPSHOT_BYTES as u64)
        }
        _ => true,
    }
}

/// Serves `node` on `listener` until `stop` turns true.
pub async fn serve(node: Arc<Node>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept");
                continue;
            }
        };
        // Never wait here: a full house must not keep peers from connecting later.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!("{MAX_CONNECTIONS} connections open; refusing one");
            continue;
        };
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            if let Err(e) = connection(&node, stream).await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(node: &Node, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut stream = BufStream::new(stream);
    // Bounded by the peer: each pass answers one request; an idle connection is closed.
    loop {
        let len = match tokio::time::timeout(IDLE_TIMEOUT, wire::read_frame_len(&mut stream)).await
        {
            Ok(Ok(Some(len))) => len,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        // Room for the body first: the frames being read at once hold at most
        // FRAME_BYTES_READING, however many connections send large ones.
        let Ok(room) = node.frame_room.acquire_many(len).await else {
            return Ok(());
        };
        let body = wire::read_frame_body::<_, Request>(&mut stream, len);
        let request = match tokio::time::timeout(FRAME_BODY_TIMEOUT, body).await {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => return Err(e),
            // A body trickled in (or never sent) would hold its room.
            Err(_) => return Ok(()),
        };
        drop(room);
        if !acceptable(&request) {
            tracing::warn!(
                "refused a Raft message beyond the log's bounds; closing the connection"
            );
            return Ok(());
        }
        let response = node.handle(request).await;
        wire::write_frame(&mut stream, &response).await?;
    }
}
