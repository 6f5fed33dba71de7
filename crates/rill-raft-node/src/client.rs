//! A client of a node: one connection, one request at a time. Appends follow the leader: a
//! node that is not the leader names it, and the client asks it instead.

use crate::wire::{
    ClientError, NodeMetrics, ReadReply, Request, Response, read_frame, write_frame,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::BufStream;
use tokio::net::TcpStream;

/// How many times an append follows a redirect or retries a connection before giving up.
const MAX_REDIRECTS: usize = 5;
/// How often, and how long apart, a call is sent again to a node that knows no leader (an
/// election under way, or a node that has not heard from the new leader yet): 5 s in all.
const MAX_LEADER_WAITS: usize = 50;
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The node could not be reached or the connection broke: the request's outcome is
    /// unknown (an append may still commit).
    #[error("{addr}: {source}")]
    Io {
        /// The node's address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node answered with an error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node answered another kind of request.
    #[error("{0}: unexpected answer")]
    Unexpected(String),
}

/// A connection to one node.
#[derive(Debug)]
pub struct Client {
    addr: String,
    conn: Option<BufStream<TcpStream>>,
    timeout: Duration,
}

impl Client {
    /// A client of the node at `addr` (connected on first use).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            conn: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` and waits for the answer (at most the client's timeout).
    pub async fn call(&mut self, request: &Request) -> Result<Response, CallError> {
        let addr = self.addr.clone();
        let io = |source| CallError::Io {
            addr: addr.clone(),
            source,
        };
        let answer = tokio::time::timeout(self.timeout, self.call_once(request)).await;
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.conn = None;
                Err(io(e))
            }
            Err(_) => {
                self.conn = None;
                Err(io(std::io::ErrorKind::TimedOut.into()))
            }
        }
    }

    /// One request and its answer. The connection is out of `self.conn` during the call and
    /// back only once the answer is read, so a call whose future is dropped midway closes it
    /// rather than leave its answer for the next call to read.
    async fn call_once(&mut self, request: &Request) -> std::io::Result<Response> {
        let mut conn = if let Some(conn) = self.conn.take() {
            conn
        } else {
            let stream = TcpStream::connect(&self.addr).await?;
            let _ = stream.set_nodelay(true);
            BufStream::new(stream)
        };
        write_frame(&mut conn, request).await?;
        let response = read_frame(&mut conn)
            .await?
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        self.conn = Some(conn);
        Ok(response)
    }

    fn done(&self, response: Response) -> Result<(), CallError> {
        match response {
            Response::Done(answer) => Ok(answer?),
            _ => Err(CallError::Unexpected(self.addr.clone())),
        }
    }

    /// Appends `records` through this node, which must be the leader; resolves to their
    /// offsets once committed.
    pub async fn append_here(
        &mut self,
        records: Vec<rill_raft::Record>,
    ) -> Result<Vec<u64>, CallError> {
        let response = self.call(&Request::Append { records }).await?;
        self.appended(response)
    }

    fn appended(&self, response: Response) -> Result<Vec<u64>, CallError> {
        match response {
            Response::Appended(answer) => Ok(answer?),
            _ => Err(CallError::Unexpected(self.addr.clone())),
        }
    }

    /// Appends `records` through the leader, following redirects (this client then talks to
    /// the leader).
    pub async fn append(&mut self, records: Vec<rill_raft::Record>) -> Result<Vec<u64>, CallError> {
        self.at_leader(&Request::Append { records }, Self::appended)
            .await
    }

    /// Sends `request` to this node and, while `answer` makes its response `NotLeader`
    /// naming another node, to that one (at most [`MAX_REDIRECTS`] times; this client then
    /// talks to the leader), and, while it knows no leader, again a little later (at most
    /// [`MAX_LEADER_WAITS`] times). A node answers `NotLeader` only for what it did not propose, so
    /// sending again is safe.
    async fn at_leader<T>(
        &mut self,
        request: &Request,
        answer: fn(&Self, Response) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let (mut redirects, mut waits) = (0, 0);
        // Bounded: each pass redirects or waits, each at most so many times, or returns.
        loop {
            let response = self.call(request).await?;
            match answer(self, response) {
                Err(CallError::Client(ClientError::NotLeader {
                    leader: Some((_, addr)),
                })) if redirects < MAX_REDIRECTS && addr != self.addr => {
                    *self = Self::new(addr);
                    redirects += 1;
                }
                Err(CallError::Client(ClientError::NotLeader { leader: None }))
                    if waits < MAX_LEADER_WAITS =>
                {
                    tokio::time::sleep(LEADER_WAIT).await;
                    waits += 1;
                }
                other => return other,
            }
        }
    }

    /// The committed batches from `offset` as this node holds them.
    pub async fn read(&mut self, offset: u64, max_bytes: u64) -> Result<ReadReply, CallError> {
        match self.call(&Request::Read { offset, max_bytes }).await? {
            Response::Read(answer) => Ok(answer?),
            _ => Err(CallError::Unexpected(self.addr.clone())),
        }
    }

    /// The node's state.
    pub async fn metrics(&mut self) -> Result<NodeMetrics, CallError> {
        match self.call(&Request::Metrics).await? {
            Response::Metrics(m) => Ok(m),
            _ => Err(CallError::Unexpected(self.addr.clone())),
        }
    }

    /// Makes the cluster of `members` (on one node, once).
    pub async fn init(&mut self, members: BTreeMap<u64, String>) -> Result<(), CallError> {
        let response = self.call(&Request::Init { members }).await?;
        self.done(response)
    }

    /// Adds a learner (through the leader, following redirects) and waits until it caught
    /// up.
    pub async fn add_learner(&mut self, id: u64, addr: String) -> Result<(), CallError> {
        self.at_leader(&Request::AddLearner { id, addr }, Self::done)
            .await
    }

    /// Makes `voters` the voters (through the leader, following redirects).
    pub async fn change_membership(&mut self, voters: BTreeSet<u64>) -> Result<(), CallError> {
        self.at_leader(&Request::ChangeMembership { voters }, Self::done)
            .await
    }

    /// Makes the node send nothing to `peers` (fault injection; empty heals).
    pub async fn block(&mut self, peers: BTreeSet<u64>) -> Result<(), CallError> {
        let response = self.call(&Request::Block { peers }).await?;
        self.done(response)
    }

    /// Reads every committed batch this node holds from `offset` on.
    pub async fn read_all(&mut self, mut offset: u64) -> Result<Vec<u8>, CallError> {
        let mut all = Vec::new();
        // Bounded: each read returns at least one batch until the committed end.
        loop {
            let reply = self.read(offset, 1 << 20).await?;
            if reply.batches.is_empty() {
                return Ok(all);
            }
            all.extend_from_slice(&reply.batches);
            offset = reply.next_offset;
        }
    }
}
