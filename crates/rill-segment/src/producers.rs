//! Idempotent-producer state of a partition (Kafka's `ProducerStateManager`), I/O-free: for
//! each producer id its epoch and its last [`BATCHES_PER_PRODUCER`] batches' sequence and
//! offset ranges, so that a retried batch is answered with the original's offsets instead of
//! being stored twice, a gap in the sequence is refused, and an older epoch is fenced.
//!
//! The rules are Kafka's (`ProducerAppendInfo.checkProducerEpoch`, `checkSequence`,
//! `findDuplicateBatch`):
//! * a batch without a producer id (`-1`), or a control batch, is not checked;
//! * a producer the state does not know may start at any sequence (its earlier batches were
//!   deleted, expired, or evicted);
//! * an epoch older than the producer's is fenced; a newer one must start at sequence 0;
//! * within the epoch, a batch whose first and last sequence equal one of the last five
//!   batches' is a duplicate; otherwise its first sequence must follow the last batch's last
//!   (`i32::MAX` wraps to 0).
//!
//! Memory is bounded: at most `max_producers` entries (the least recently appending tenth is
//! evicted when a new one would pass it; an evicted producer is unknown again), each at most
//! five batches. `PartitionLog` keeps one, updates it under its lock, snapshots it with rolls
//! and at close (`partition/producer_files.rs`) and rebuilds it from the log at open.

use crate::batch::BatchHeader;
pub use rill_format::producer_snapshot::{
    BATCHES_PER_PRODUCER, ProducerRecord, ProducerSnapshot, SequencedBatch,
};
use std::collections::{HashMap, VecDeque};

/// Why a producer's batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The batch's first sequence does not follow the producer's last batch (or, in a new
    /// epoch, is not 0): a batch in between is missing. Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    #[error("producer {producer_id}: sequence {found} out of order, expected {expected}")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The sequence the batch should start at.
        expected: i32,
        /// Its first sequence.
        found: i32,
    },
    /// The batch's epoch is older than the producer's: a newer instance of the producer took
    /// over. Kafka's `INVALID_PRODUCER_EPOCH`.
    #[error("producer {producer_id}: epoch {epoch} is fenced by epoch {current_epoch}")]
    Fenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The producer's current epoch.
        current_epoch: i16,
    },
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// It repeats this batch, already in the log: answer with its offsets, write nothing.
    Duplicate(SequencedBatch),
}

#[derive(Debug, Clone)]
struct Producer {
    epoch: i16,
    last_append_ms: i64,
    /// Oldest first, at most [`BATCHES_PER_PRODUCER`], never empty.
    batches: VecDeque<SequencedBatch>,
}

impl Producer {
    /// Adds `batch` of epoch `epoch` (a new epoch forgets the old one's batches), keeping the
    /// last [`BATCHES_PER_PRODUCER`].
    fn record(&mut self, epoch: i16, batch: SequencedBatch, now_ms: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_PER_PRODUCER {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_append_ms = self.last_append_ms.max(now_ms);
    }
}

/// The producers of one partition.
#[derive(Debug, Clone)]
pub struct ProducerState {
    producers: HashMap<i64, Producer>,
    max_producers: usize,
    /// Producers evicted to keep the bound since the state was made.
    evicted: u64,
}

/// The last sequence of a batch starting at `first` with `last_offset_delta` more records:
/// Kafka's `DefaultRecordBatch.incrementSequence` (wraps past `i32::MAX` to 0).
pub fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    let delta = last_offset_delta.max(0);
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}

/// Whether `next` follows `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

/// Whether the producer state checks and records `header`'s batch: an idempotent or transactional
/// producer's data (control batches are the transactions' markers).
pub(crate) fn is_sequenced(header: &BatchHeader) -> bool {
    header.producer_id >= 0 && !header.attributes.is_control()
}

impl ProducerState {
    /// An empty state keeping at most `max_producers` producers (at least 1).
    pub fn new(max_producers: usize) -> Self {
        Self {
            producers: HashMap::new(),
            max_producers: max_producers.max(1),
            evicted: 0,
        }
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The highest producer id known, if any.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }

    /// Producers evicted to keep the bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Changes the bound (a smaller one applies at the next new producer).
    pub fn set_max_producers(&mut self, max_producers: usize) {
        self.max_producers = max_producers.max(1);
    }

    /// Checks a batch (offsets not yet assigned) before it is appended.
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, SequenceError> {
        if !is_sequenced(header) {
            return Ok(Verdict::Append);
        }
        let Some(producer) = self.producers.get(&header.producer_id) else {
            return Ok(Verdict::Append);
        };
        let first = header.base_sequence;
        let last = last_sequence(first, header.last_offset_delta);
        if header.producer_epoch < producer.epoch {
            return Err(SequenceError::Fenced {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                current_epoch: producer.epoch,
            });
        }
        if header.producer_epoch > producer.epoch {
            return if first == 0 {
                Ok(Verdict::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: header.producer_id,
                    expected: 0,
                    found: first,
                })
            };
        }
        if let Some(original) = producer
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(Verdict::Duplicate(*original));
        }
        match producer.batches.back() {
            Some(latest) if !in_sequence(latest.last_sequence, first) => {
                Err(SequenceError::OutOfOrder {
                    producer_id: header.producer_id,
                    expected: latest.last_sequence.wrapping_add(1).max(0),
                    found: first,
                })
            }
            _ => Ok(Verdict::Append),
        }
    }

    /// Records an appended batch (`header` with its offsets assigned), or one found in the log
    /// when rebuilding, at wall-clock `now_ms`. No checks: [`ProducerState::check`] made them.
    pub fn record(&mut self, header: &BatchHeader, now_ms: i64) {
        if !is_sequenced(header) {
            return;
        }
        let batch = SequencedBatch {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header.base_sequence, header.last_offset_delta),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        };
        // A known producer (the usual case) costs one lookup.
        if let Some(producer) = self.producers.get_mut(&header.producer_id) {
            producer.record(header.producer_epoch, batch, now_ms);
            return;
        }
        if self.producers.len() >= self.max_producers {
            self.evict_least_recent();
        }
        let mut producer = Producer {
            epoch: header.producer_epoch,
            last_append_ms: now_ms,
            batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
        };
        producer.record(header.producer_epoch, batch, now_ms);
        self.producers.insert(header.producer_id, producer);
    }

    /// Evicts the least recently appending tenth (at least one), so a stream of new producers
    /// costs a sort per tenth of the bound, not a scan per producer.
    fn evict_least_recent(&mut self) {
        let mut by_age: Vec<(i64, i64)> = self
            .producers
            .iter()
            .map(|(id, p)| (p.last_append_ms, *id))
            .collect();
        by_age.sort_unstable();
        let doomed = (self.max_producers / 10).max(1);
        for (_, id) in by_age.into_iter().take(doomed) {
            self.producers.remove(&id);
            self.evicted += 1;
        }
    }

    /// Forgets producers that have not appended since `now_ms - expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`). Returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(expiration_ms);
        self.producers.retain(|_, p| p.last_append_ms >= horizon);
        before - self.producers.len()
    }

    /// Forgets batches below the log start, and producers left with none (their batches were
    /// deleted by retention or `delete_before`).
    pub fn truncate_head(&mut self, log_start: i64) {
        self.producers.retain(|_, p| {
            p.batches.retain(|b| b.last_offset >= log_start);
            !p.batches.is_empty()
        });
    }

    /// The state as a snapshot valid at `offset` (producers ascending by id).
    pub fn snapshot(&self, offset: i64) -> ProducerSnapshot {
        let mut producers: Vec<ProducerRecord> = self
            .producers
            .iter()
            .map(|(id, p)| ProducerRecord {
                producer_id: *id,
                epoch: p.epoch,
                last_append_ms: p.last_append_ms,
                batches: p.batches.iter().copied().collect(),
            })
            .collect();
        producers.sort_unstable_by_key(|p| p.producer_id);
        ProducerSnapshot { offset, producers }
    }

    /// The state a snapshot holds (producers beyond the bound are left out, least recent
    /// first).
    pub fn from_snapshot(snapshot: &ProducerSnapshot, max_producers: usize) -> Self {
        let mut state = Self::new(max_producers);
        let mut records: Vec<&ProducerRecord> = snapshot.producers.iter().collect();
        records.sort_unstable_by_key(|p| std::cmp::Reverse(p.last_append_ms));
        for record in records.into_iter().take(state.max_producers) {
            if record.batches.is_empty() {
                continue;
            }
            state.producers.insert(
                record.producer_id,
                Producer {
                    epoch: record.epoch,
                    last_append_ms: record.last_append_ms,
                    batches: record.batches.iter().copied().collect(),
                },
            );
        }
        state
    }

    /// Forgets every producer (the log was truncated below what the state covers).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
    use super::*;
    use crate::batch::Attributes;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: Attributes(0),
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    #[test]
    fn sequences_duplicates_and_fencing() {
        let mut state = ProducerState::new(100);
        let first = header(1, 0, 0, 3, 10);
        assert_eq!(state.check(&first), Ok(Verdict::Append));
        state.record(&first, 1);
        // A retry of the same batch is a duplicate with the original's offsets.
        match state.check(&header(1, 0, 0, 3, -1)) {
            Ok(Verdict::Duplicate(b)) => assert_eq!((b.base_offset, b.last_offset), (10, 12)),
            other => panic!("{other:?}"),
        }
        // The next must start at 3.
        assert_eq!(
            state.check(&header(1, 0, 4, 1, -1)),
            Err(SequenceError::OutOfOrder {
                producer_id: 1,
                expected: 3,
                found: 4
            })
        );
        state.record(&header(1, 0, 3, 1, 13), 2);
        // A new epoch starts at 0; the old one is fenced after it.
        assert!(state.check(&header(1, 1, 5, 1, -1)).is_err());
        state.record(&header(1, 1, 0, 1, 14), 3);
        assert!(matches!(
            state.check(&header(1, 0, 4, 1, -1)),
            Err(SequenceError::Fenced {
                current_epoch: 1,
                ..
            })
        ));
        // Unknown producers and unsequenced batches start anywhere.
        assert_eq!(state.check(&header(2, 5, 77, 1, -1)), Ok(Verdict::Append));
        assert_eq!(state.check(&header(-1, -1, -1, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerState::new(100);
        for i in 0..7 {
            state.record(&header(1, 0, i, 1, i64::from(i)), 0);
        }
        assert!(matches!(
            state.check(&header(1, 0, 2, 1, -1)),
            Ok(Verdict::Duplicate(_))
        ));
        assert!(matches!(
            state.check(&header(1, 0, 1, 1, -1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        let mut state = ProducerState::new(10);
        state.record(&header(1, 0, i32::MAX - 1, 2, 0), 0);
        assert_eq!(state.check(&header(1, 0, 0, 1, -1)), Ok(Verdict::Append));
    }

    #[test]
    fn memory_is_bounded_and_state_round_trips() {
        let mut state = ProducerState::new(50);
        for pid in 0..500 {
            state.record(&header(pid, 0, 0, 1, pid), pid);
        }
        assert!(state.len() <= 50);
        assert!(state.evicted() >= 450);
        // The most recent producers are the ones kept.
        assert!(matches!(
            state.check(&header(499, 0, 0, 1, -1)),
            Ok(Verdict::Duplicate(_))
        ));
        let snapshot = state.snapshot(500);
        let back = ProducerState::from_snapshot(&snapshot, 50);
        assert_eq!(back.snapshot(500), snapshot);
        assert_eq!(
            ProducerSnapshot::parse(&snapshot.encode()).unwrap(),
            snapshot
        );
        let mut expiring = back.clone();
        let known = expiring.len();
        assert_eq!(expiring.expire(1_000, 600), 0, "all appended after 400");
        assert_eq!(expiring.expire(1_000, 100), known);
        assert!(expiring.is_empty());
        let mut head = back;
        head.truncate_head(495);
        assert_eq!(head.len(), 5);
    }
}
