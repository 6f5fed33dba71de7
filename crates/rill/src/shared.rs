//! What a partition's handles and its shard share: the partition log itself (appends write it
//! on the caller's thread, under its lock), the published offsets, and the flags that keep a
//! caller's appends in order behind requests still queued at the shard.

use crate::error::Error;
use parking_lot::Mutex;
use rill_segment::batch::TimestampType;
use rill_segment::{LogConfig, LogError, Offsets, PartitionLog};
use slab::Slab;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;

/// A partition's key inside its shard.
pub(crate) type PartitionKey = u64;

/// State of a partition shared by its shard and its handles.
#[derive(Debug)]
pub(crate) struct PartitionShared {
    pub(crate) topic: Arc<str>,
    pub(crate) index: u32,
    pub(crate) key: PartitionKey,
    /// The partition's directory (for errors named without taking the lock).
    pub(crate) dir: PathBuf,
    /// The log. Held briefly: an append's write, a sync's start and end, a lookup.
    pub(crate) log: Mutex<PartitionLog>,
    /// The offsets as of the last change, readable without the log's lock.
    pub(crate) offsets: Mutex<Offsets>,
    /// Requests queued at the shard that later appends must not overtake: appends that met the
    /// unsynced bound, truncations, deletions, a detach. While it is non-zero, appends queue
    /// behind them instead of writing at once (a caller's appends keep their order).
    pub(crate) ordered_behind: AtomicUsize,
    /// A sync was asked of the shard without a waiter (the unsynced bound half used, a roll);
    /// set by the asker, cleared by the shard, so it is asked once.
    pub(crate) sync_wanted: AtomicBool,
    /// The partition was detached (its topic deleted).
    pub(crate) detached: AtomicBool,
    /// Truncations so far, counted under the log's lock before the bytes change: a read
    /// made without the lock compares it before and after (see `direct_read`).
    pub(crate) truncations: AtomicU64,
    /// Reads answered on the caller's thread.
    pub(crate) direct_reads: AtomicU64,
    /// Long-polling waits, woken by every publication.
    pub(crate) waiters: Waiters,
    /// The log failed or was closed, as of the last publication: waits read it without
    /// taking the log's lock on every wake-up.
    pub(crate) ended: AtomicBool,
    /// The topic's `max_batch_bytes`, read by appends before they take the log's lock (a
    /// copy of the log's setting, changed with it under the lock).
    pub(crate) max_batch_bytes: AtomicUsize,
    /// The partition's metric handles (`crate::metrics`).
    pub(crate) metrics: crate::metrics::PartitionMetrics,
    /// Whether the topic stamps batches with log-append time (a copy of the log's setting, as
    /// above): the stamp recomputes the CRC, so it is done before the lock is taken.
    pub(crate) log_append_time: AtomicBool,
}

impl PartitionShared {
    pub(crate) fn new(topic: Arc<str>, index: u32, key: PartitionKey, log: PartitionLog) -> Self {
        let max_batch_bytes = log.config().max_batch_bytes;
        let log_append_time = log.config().timestamp_type == TimestampType::LogAppendTime;
        let metrics = crate::metrics::PartitionMetrics::new(&topic, index);
        Self {
            topic,
            index,
            key,
            dir: log.dir().to_path_buf(),
            offsets: Mutex::new(log.offsets()),
            log: Mutex::new(log),
            ordered_behind: AtomicUsize::new(0),
            sync_wanted: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            truncations: AtomicU64::new(0),
            direct_reads: AtomicU64::new(0),
            waiters: Waiters::default(),
            ended: AtomicBool::new(false),
            metrics,
            max_batch_bytes: AtomicUsize::new(max_batch_bytes),
            log_append_time: AtomicBool::new(log_append_time),
        }
    }

    /// Changes the partition's settings (its topic's configuration was altered), the copies
    /// appends read without the lock with them.
    pub(crate) fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        let mut log = self.log.lock();
        let (max_batch_bytes, log_append_time) = (
            config.max_batch_bytes,
            config.timestamp_type == TimestampType::LogAppendTime,
        );
        log.set_config(config)?;
        self.max_batch_bytes
            .store(max_batch_bytes, Ordering::SeqCst);
        self.log_append_time
            .store(log_append_time, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` on the log under its lock, then publishes the offsets before the lock is
    /// released (so publications keep the log's order).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut PartitionLog) -> R) -> R {
        let mut log = self.log.lock();
        let result = f(&mut log);
        self.publish(&log);
        result
    }

    /// Publishes `log`'s offsets (the caller holds the log's lock, so publications keep the
    /// log's order).
    pub(crate) fn publish(&self, log: &PartitionLog) {
        let offsets = log.offsets();
        *self.offsets.lock() = offsets;
        let failed = log.failure().is_some();
        self.ended
            .store(failed || log.is_closed(), Ordering::SeqCst);
        self.metrics.offsets(&offsets, failed);
        self.waiters.wake_all();
    }

    pub(crate) fn unknown(&self) -> Error {
        Error::UnknownPartition {
            topic: self.topic.to_string(),
            partition: self.index,
        }
    }

    /// The error to report for `e` from this partition's log: a failed partition's reason, a
    /// closed log's (shut down or detached), or the error itself.
    pub(crate) fn error(&self, log: &PartitionLog, e: LogError) -> Error {
        match (log.failure(), &e) {
            (Some(reason), _) => Error::PartitionFailed(reason.clone()),
            (None, LogError::Config(_)) if self.detached.load(Ordering::SeqCst) => self.unknown(),
            (None, LogError::Config(_)) => Error::ShuttingDown,
            _ => e.into(),
        }
    }
}

/// A queued request that later appends of its partition must not overtake: counted in
/// [`PartitionShared::ordered_behind`] from its making until it drops (the shard ran it, it
/// failed, or its caller gave up before the shard took it).
/// The wakers of a partition's waits. Bounded by the waits alive (each holds one slot).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    wakers: Mutex<Slab<Waker>>,
    /// Registered wakers, readable without the lock: publications skip the lock when 0.
    count: AtomicUsize,
}

impl Waiters {
    /// Registers (or refreshes) the waker of the wait holding `slot`.
    pub(crate) fn register(&self, slot: &mut Option<usize>, waker: &Waker) {
        let mut wakers = self.wakers.lock();
        if let Some(registered) = slot.and_then(|key| wakers.get_mut(key)) {
            registered.clone_from(waker);
        } else {
            *slot = Some(wakers.insert(waker.clone()));
            self.count.store(wakers.len(), Ordering::SeqCst);
        }
    }

    pub(crate) fn deregister(&self, slot: &mut Option<usize>) {
        if let Some(key) = slot.take() {
            let mut wakers = self.wakers.lock();
            wakers.try_remove(key);
            self.count.store(wakers.len(), Ordering::SeqCst);
        }
    }

    /// Wakes every wait (they check their condition again).
    pub(crate) fn wake_all(&self) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (_, waker) in self.wakers.lock().iter() {
            waker.wake_by_ref();
        }
    }
}

#[derive(Debug)]
pub(crate) struct OrderGuard(Arc<PartitionShared>);

impl OrderGuard {
    pub(crate) fn new(part: &Arc<PartitionShared>) -> Self {
        part.ordered_behind.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(part))
    }
}

impl Drop for OrderGuard {
    fn drop(&mut self) {
        let before = self.0.ordered_behind.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "ordered_behind underflow");
    }
}
