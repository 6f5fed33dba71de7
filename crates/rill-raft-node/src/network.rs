//! openraft's network over TCP: one connection per peer, kept open, one RPC at a time on it
//! (openraft runs one replication stream per peer). A failed or timed-out call drops the
//! connection; the next one reconnects. Peers in the blocked set (fault injection) are not
//! called at all: they are unreachable.

use crate::wire::{Request, Response, read_frame};
use rill_raft::TypeConfig;
use rill_raft::openraft::BasicNode;
use rill_raft::openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use rill_raft::openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use rill_raft::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::io::BufStream;
use tokio::net::TcpStream;

/// The peers this node sends nothing to (fault injection; empty normally).
#[derive(Debug, Default)]
pub struct Blocked(Mutex<BTreeSet<u64>>);

impl Blocked {
    /// Replaces the set.
    pub fn set(&self, peers: BTreeSet<u64>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = peers;
    }

    fn contains(&self, peer: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&peer)
    }
}

/// Makes a [`Peer`] per target.
#[derive(Debug, Clone)]
pub struct Network {
    /// Shared with the server, which sets it.
    pub blocked: Arc<Blocked>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            conn: None,
            blocked: Arc::clone(&self.blocked),
        }
    }
}

/// One peer's connection.
#[derive(Debug)]
pub struct Peer {
    target: u64,
    addr: String,
    conn: Option<BufStream<TcpStream>>,
    blocked: Arc<Blocked>,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("node {0} is blocked")]
    Blocked(u64),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("call to {addr}: {source}")]
    Call {
        addr: String,
        source: std::io::Error,
    },
    #[error("call to {0} timed out")]
    Timeout(String),
    #[error("{0} answered another request")]
    Mismatch(String),
    #[error("the request exceeds the largest frame")]
    TooLarge,
}

impl<E: std::error::Error> From<CallError> for RPCError<u64, BasicNode, E> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Blocked(_) | CallError::Connect { .. } => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            other => RPCError::Network(NetworkError::new(&other)),
        }
    }
}

impl Peer {
    async fn call(&mut self, request: &Request, ttl: Duration) -> Result<Response, CallError> {
        if self.blocked.contains(self.target) {
            self.conn = None;
            return Err(CallError::Blocked(self.target));
        }
        let frame = match crate::wire::encode_frame(request) {
            Ok(frame) => frame,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(CallError::TooLarge);
            }
            Err(source) => {
                return Err(CallError::Call {
                    addr: self.addr.clone(),
                    source,
                });
            }
        };
        let result = tokio::time::timeout(ttl, self.call_on_connection(&frame)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(CallError::Timeout(self.addr.clone()))
            }
        }
    }

    /// One request and its answer on the peer's connection. The connection is taken out of
    /// `self.conn` for the call and put back only once the answer is read: openraft drops an
    /// RPC's future at its own timeout, and a connection left with a request in flight
    /// would hand that request's answer to the next call (an old AppendEntries answer read
    /// as the new one's: wrong matching, or a conflict below it). Dropped mid-call, the
    /// connection is closed with the future.
    async fn call_on_connection(&mut self, frame: &[u8]) -> Result<Response, CallError> {
        let mut conn = if let Some(conn) = self.conn.take() {
            conn
        } else {
            let stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| CallError::Connect {
                        addr: self.addr.clone(),
                        source,
                    })?;
            // Small frames (votes, heartbeats) go out at once.
            let _ = stream.set_nodelay(true);
            BufStream::new(stream)
        };
        let addr = self.addr.clone();
        let io = |source| CallError::Call {
            addr: addr.clone(),
            source,
        };
        conn.write_all(frame).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        let Some(response) = read_frame(&mut conn).await.map_err(io)? else {
            return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
        };
        self.conn = Some(conn);
        Ok(response)
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<u64, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let entries = rpc.entries.len() as u64;
        let answer = match self
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            // openraft sends the range again in requests of at most this many entries.
            Err(CallError::TooLarge) if entries > 1 => {
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(entries / 2),
                ));
            }
            other => other?,
        };
        match answer {
            Response::AppendEntries(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(CallError::Mismatch(self.addr.clone()).into()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await?
        {
            Response::InstallSnapshot(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(CallError::Mismatch(self.addr.clone()).into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(answer) => answer.map_err(|e| self.remote(e)),
            _ => Err(CallError::Mismatch(self.addr.clone()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::wire::{NodeMetrics, write_frame};
    use tokio::net::TcpListener;

    fn metrics(id: u64) -> Response {
        Response::Metrics(NodeMetrics {
            id,
            state: String::new(),
            term: 0,
            leader: None,
            last_log_index: None,
            committed_offset: 0,
            log_start: 0,
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            snapshot_index: None,
            purged_index: None,
        })
    }

    /// openraft drops an RPC's future at its own timeout. The answer to that request must
    /// never be read as the answer to the next one (an old AppendEntries answer taken for a
    /// new one moves the leader's idea of a follower's log backwards).
    #[tokio::test]
    async fn the_answer_to_a_dropped_call_is_never_read_as_the_next_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Answers `Block { peers: {n} }` with metrics of id n, the first one late.
        tokio::spawn(async move {
            // Bounded by the test: it makes two connections at most.
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut stream = BufStream::new(stream);
                    while let Ok(Some(Request::Block { peers })) = read_frame(&mut stream).await {
                        let n = peers.first().copied().unwrap_or(0);
                        if n == 1 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        if write_frame(&mut stream, &metrics(n)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut peer = Peer {
            target: 9,
            addr,
            conn: None,
            blocked: Arc::default(),
        };
        let ask = |n: u64| Request::Block {
            peers: [n].into_iter().collect(),
        };
        let long = Duration::from_secs(10);
        let dropped =
            tokio::time::timeout(Duration::from_millis(50), peer.call(&ask(1), long)).await;
        assert!(dropped.is_err(), "the first call was to be dropped midway");
        match peer.call(&ask(2), long).await.unwrap() {
            Response::Metrics(m) => assert_eq!(m.id, 2, "read the dropped call's answer"),
            other => panic!("{other:?}"),
        }
    }
}
