//! Group commit at the leader: the appends that wait at once go into Raft as one entry.
//!
//! openraft 0.9's leader writes one entry append at a time and waits for its fdatasync
//! before the next (`RaftCore::append_to_log`), so a Raft entry per client append would cost
//! every append a flush of its own, one after the other. Instead one task takes the appends
//! queued while earlier entries were in flight and proposes their records as one entry: one
//! batch in the partition, one fdatasync on each replica, one round of replication. Each
//! append's records stay together and in order, and the entry commits (or not) as a whole.
//!
//! What a client is told is what is known. `NotLeader` only when nothing was proposed (this
//! node did not lead when the entry was about to go): retrying at the leader is safe. Once an
//! entry is in this node's log it may commit even if this node loses it (a later leader may
//! hold it), so every failure after that is `OutcomeUnknown`: openraft's `ForwardToLeader`
//! for a truncated entry, a fatal error, or no answer in time. No answer can come: openraft
//! 0.9 answers a write when its entry is applied or truncated here, never when a snapshot
//! installed after this node stepped down covers it. So one entry is awaited while this node
//! leads; once it does not, the next entry goes (and is refused at once) and the answer is
//! awaited apart, up to the append timeout, which also bounds a leader that cannot commit.

use crate::wire::ClientError;
use rill_raft::openraft::error::RaftError;
use rill_raft::openraft::{BasicNode, Raft, RaftMetrics, ServerState};
use rill_raft::{Record, Records, TypeConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Appends waiting for the proposer; a full queue makes clients wait (backpressure).
const QUEUE_APPENDS: usize = 1024;
/// Bytes of records taken by appends not yet answered (queued, proposed or committing):
/// more appends wait for room, so what clients make a node hold is bounded in bytes too.
const QUEUE_BYTES: usize = 64 << 20;
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
    /// Room for records not yet answered: one permit a byte, [`QUEUE_BYTES`].
    room: Arc<Semaphore>,
}

/// What the proposer needs of its node.
#[derive(Clone)]
struct Leading {
    raft: Raft<TypeConfig>,
    /// This node's id.
    id: u64,
    /// How long an append waits for its entry's answer.
    answer_timeout: Duration,
}

impl Proposer {
    /// Starts the proposer of node `id`'s `raft`, whose entries hold at most
    /// `max_batch_bytes` (the partition's batch bound), and which answers an append
    /// `OutcomeUnknown` when Raft has not answered within `answer_timeout`.
    pub fn start(
        raft: Raft<TypeConfig>,
        id: u64,
        max_batch_bytes: usize,
        answer_timeout: Duration,
    ) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_APPENDS);
        let leading = Leading {
            raft,
            id,
            answer_timeout,
        };
        tokio::spawn(propose_loop(leading, waiting, max_batch_bytes));
        Self {
            queue,
            max_batch_bytes,
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
        }
    }

    /// Proposes `records` (in one entry, maybe with other appends' records) and waits until
    /// they are committed and applied; answers their offsets.
    pub async fn append(&self, records: Vec<Record>) -> Result<Vec<u64>, ClientError> {
        // Records the store cannot write would stop Raft on every node that takes them.
        rill_raft::check_records(&records, self.max_batch_bytes)
            .map_err(|e| ClientError::BadRequest(e.to_string()))?;
        let count = records.len() as u64;
        let bytes = rill_raft::records_bound(&records);
        // Held until answered. At most a batch (checked above), far below the room.
        let room_bytes = u32::try_from(bytes.min(QUEUE_BYTES)).unwrap_or(u32::MAX);
        let Ok(_room) = self.room.acquire_many(room_bytes).await else {
            return Err(ClientError::Failed("the proposer stopped".into()));
        };
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            records,
            bytes,
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
    leading: Leading,
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
        if first.answer.is_closed() {
            // Its client was answered already (it waited too long) or left: not proposed.
            continue;
        }
        let mut bytes = first.bytes;
        let mut group = vec![first];
        // Bounded by the queue's capacity and the batch size.
        while let Ok(next) = queue.try_recv() {
            if next.answer.is_closed() {
                continue;
            }
            if rill_raft::batch_bound(bytes + next.bytes) > max_batch_bytes {
                carried = Some(next);
                break;
            }
            bytes += next.bytes;
            group.push(next);
        }
        tokio::spawn(propose(leading.clone(), group, permit));
    }
}

/// Proposes `group`'s records as one entry and answers each append where its records went.
async fn propose(leading: Leading, group: Vec<Waiting>, permit: OwnedSemaphorePermit) {
    let mut records = Vec::with_capacity(group.iter().map(|w| w.records.len()).sum());
    let mut answers = Vec::with_capacity(group.len());
    for waiting in group {
        answers.push((waiting.records.len() as u64, waiting.answer));
        records.extend(waiting.records);
    }
    let outcome = match not_leader(&leading.raft, leading.id) {
        Some(refused) => Err(refused),
        None => write(&leading, records, permit).await,
    };
    match outcome {
        Ok(mut offset) => {
            for (count, answer) in answers {
                let _ = answer.send(Ok(offset));
                offset += count;
            }
        }
        Err(error) => {
            for (_, answer) in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
    }
}

/// Whether `metrics` say node `id` leads.
fn leads(metrics: &RaftMetrics<u64, BasicNode>, id: u64) -> bool {
    metrics.state == ServerState::Leader && metrics.current_leader == Some(id)
}

/// `NotLeader` (with the leader's address, if known) unless node `id` leads.
pub fn not_leader(raft: &Raft<TypeConfig>, id: u64) -> Option<ClientError> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    if leads(&metrics, id) {
        return None;
    }
    let leader = metrics.current_leader.and_then(|leader| {
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    });
    Some(ClientError::NotLeader { leader })
}

/// Writes `records` as one entry; answers its base offset once it is applied. `permit` is
/// held while this node leads and the entry is unanswered.
async fn write(
    leading: &Leading,
    records: Vec<Record>,
    permit: OwnedSemaphorePermit,
) -> Result<u64, ClientError> {
    let deadline = Instant::now() + leading.answer_timeout;
    let written = leading.raft.client_write(Records(records));
    tokio::pin!(written);
    let mut metrics = leading.raft.metrics();
    let answered = tokio::select! {
        // The write first: it is handed to Raft before anything else can end the wait.
        biased;
        answered = &mut written => Some(answered),
        // A closed channel (Raft stopped) counts as not leading.
        _ = metrics.wait_for(|m| !leads(m, leading.id)) => None,
        () = tokio::time::sleep_until(deadline) => return Err(no_answer(leading)),
    };
    let answered = if let Some(answered) = answered {
        answered
    } else {
        // The next entries go (and are refused) while this one's answer is awaited.
        drop(permit);
        tokio::time::timeout_at(deadline, written)
            .await
            .map_err(|_| no_answer(leading))?
    };
    match answered {
        Ok(written) => Ok(written.data.base_offset),
        // In the log, truncated since: a later leader may still hold and commit it.
        Err(RaftError::APIError(e)) => Err(ClientError::OutcomeUnknown(format!(
            "the entry was removed from this node's log ({e}); another replica may commit it"
        ))),
        Err(RaftError::Fatal(f)) => Err(ClientError::OutcomeUnknown(format!("raft: {f}"))),
    }
}

fn no_answer(leading: &Leading) -> ClientError {
    ClientError::OutcomeUnknown(format!(
        "Raft did not answer within {:?}; the entry may commit",
        leading.answer_timeout
    ))
}
