//! Group commit at the leader: the appends that wait at once go into Raft as one entry.
//!
//! openraft 0.9's leader writes one entry append at a time and waits for its fdatasync
//! before the next (`RaftCore::append_to_log`), so a Raft entry per client append would cost
//! every append a flush of its own, one after the other. Instead one task takes the appends
//! queued while earlier entries were in flight and proposes their records as one entry: one
//! batch in the partition, one fdatasync on each replica, one round of replication. Each
//! append's records stay together and in order, and the entry commits (or not) as a whole.

use crate::wire::{self, ClientError};
use rill_raft::openraft::Raft;
use rill_raft::openraft::error::RaftError;
use rill_raft::{Record, Records, TypeConfig};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Appends waiting for the proposer; a full queue makes clients wait (backpressure).
const QUEUE_APPENDS: usize = 1024;
/// Entries proposed and not yet answered. One: while it is in flight the queue fills, and
/// the next entry takes all of it. Measured (`rill bench --workload raft`): two in flight
/// were no faster and had longer tails, four were slower (smaller entries, as many flushes).
const ENTRIES_IN_FLIGHT: usize = 1;

/// One client's append, waiting.
struct Waiting {
    records: Vec<Record>,
    /// Their [`rill_raft::records_bound`].
    bytes: usize,
    answer: oneshot::Sender<Result<u64, ClientError>>,
}

/// Proposes appends to Raft, grouped. Dropping it ends its task once the queue is drained.
#[derive(Debug, Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Waiting>,
    max_batch_bytes: usize,
}

impl Proposer {
    /// Starts the proposer of `raft`, whose entries hold at most `max_batch_bytes` (the
    /// partition's batch bound).
    pub fn start(raft: Raft<TypeConfig>, max_batch_bytes: usize) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_APPENDS);
        tokio::spawn(propose_loop(raft, waiting, max_batch_bytes));
        Self {
            queue,
            max_batch_bytes,
        }
    }

    /// Proposes `records` (in one entry, maybe with other appends' records) and waits until
    /// they are committed and applied; answers their offsets.
    pub async fn append(&self, records: Vec<Record>) -> Result<Vec<u64>, ClientError> {
        // Records the store cannot write would stop Raft on every node that takes them.
        rill_raft::check_records(&records, self.max_batch_bytes)
            .map_err(|e| ClientError::BadRequest(e.to_string()))?;
        let count = records.len() as u64;
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            bytes: rill_raft::records_bound(&records),
            records,
            answer,
        };
        if self.queue.send(waiting).await.is_err() {
            return Err(ClientError::Failed("the proposer stopped".into()));
        }
        match answered.await {
            Ok(Ok(base_offset)) => Ok((base_offset..base_offset + count).collect()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::OutcomeUnknown("the proposer stopped".into())),
        }
    }
}

/// Takes the queue an entry at a time: the first append waiting, and every one behind it
/// that fits the same batch.
async fn propose_loop(
    raft: Raft<TypeConfig>,
    mut queue: mpsc::Receiver<Waiting>,
    max_batch_bytes: usize,
) {
    let in_flight = Arc::new(Semaphore::new(ENTRIES_IN_FLIGHT));
    let mut carried: Option<Waiting> = None;
    loop {
        // Waiting for a free slot first lets the queue fill: the next entry takes it all.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut group = vec![first];
        // Bounded by the queue's capacity and the batch size.
        while let Ok(next) = queue.try_recv() {
            if rill_raft::batch_bound(bytes + next.bytes) > max_batch_bytes {
                carried = Some(next);
                break;
            }
            bytes += next.bytes;
            group.push(next);
        }
        tokio::spawn(propose(raft.clone(), group, permit));
    }
}

/// Proposes `group`'s records as one entry and answers each append where its records went.
async fn propose(raft: Raft<TypeConfig>, group: Vec<Waiting>, _permit: OwnedSemaphorePermit) {
    let mut records = Vec::with_capacity(group.iter().map(|w| w.records.len()).sum());
    let mut answers = Vec::with_capacity(group.len());
    for waiting in group {
        answers.push((waiting.records.len() as u64, waiting.answer));
        records.extend(waiting.records);
    }
    match raft.client_write(Records(records)).await {
        Ok(written) => {
            let mut offset = written.data.base_offset;
            for (count, answer) in answers {
                let _ = answer.send(Ok(offset));
                offset += count;
            }
        }
        Err(e) => {
            let error = match e {
                // Not in the log (never appended, or truncated since): the client may retry.
                e @ RaftError::APIError(_) => wire::client_error(e),
                RaftError::Fatal(f) => ClientError::OutcomeUnknown(format!("raft: {f}")),
            };
            for (_, answer) in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}
