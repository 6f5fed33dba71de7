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

    async fn call_on_connection(&mut self, frame: &[u8]) -> Result<Response, CallError> {
        if self.conn.is_none() {
            let stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| CallError::Connect {
                        addr: self.addr.clone(),
                        source,
                    })?;
            // Small frames (votes, heartbeats) go out at once.
            let _ = stream.set_nodelay(true);
            self.conn = Some(BufStream::new(stream));
        }
        let addr = self.addr.clone();
        let io = |source| CallError::Call {
            addr: addr.clone(),
            source,
        };
        let Some(conn) = self.conn.as_mut() else {
            return Err(CallError::Mismatch(self.addr.clone()));
        };
        conn.write_all(frame).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        match read_frame(conn).await.map_err(io)? {
            Some(response) => Ok(response),
            None => Err(io(std::io::ErrorKind::UnexpectedEof.into())),
        }
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
