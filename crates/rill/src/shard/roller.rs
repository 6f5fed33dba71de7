//! Roll jobs: the slow half of a segment roll (preparing the next file, syncing the directory
//! after the rename, sealing the old segment; see `rill_segment::partition::roll`) runs on a
//! helper thread of the shard, so neither the appending thread nor the shard's loop blocks on a
//! file creation, a preallocation or a directory sync.
//!
//! The shard takes a job from a partition's log ([`rill_segment::PartitionLog::take_roll_job`],
//! at most one out per partition), sends it to the helper, and applies the result when it comes
//! back (the helper rings the shard's doorbell). A partition with a job out counts as having
//! files in use: nothing truncates, deletes or closes it meanwhile.

use super::Shard;
use crate::shared::PartitionKey;
use rill_segment::disk::Disk;
use rill_segment::partition::{RollDone, RollJob};
use rill_uring::Doorbell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The shard's roll-job helper threads and their channels: one runs the urgent jobs (a
/// rename's directory sync, which durable acknowledgements may wait for), one the slow ones
/// (preparations, which with `Preallocate::Zeroed` write a whole segment, and seals), so an
/// acknowledgement never waits behind another partition's preparation. The channels are
/// bounded by construction: at most one job per partition is out.
#[derive(Debug)]
pub(super) struct Roller {
    urgent: Helper,
    slow: Helper,
    done: mpsc::Receiver<(PartitionKey, RollDone)>,
    /// Results sent and not yet taken, counted before the doorbell rings, so the shard never
    /// sleeps on one (a ring before the shard prepares to sleep writes nothing).
    done_pending: Arc<AtomicUsize>,
    disk: Arc<dyn Disk>,
    /// Jobs sent and not yet applied.
    pub(super) in_flight: usize,
}

#[derive(Debug)]
struct Helper {
    jobs: Option<mpsc::Sender<(PartitionKey, RollJob)>>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn spawn(
        name: String,
        disk: Arc<dyn Disk>,
        results: mpsc::Sender<(PartitionKey, RollDone)>,
        done_pending: Arc<AtomicUsize>,
        doorbell: Arc<Doorbell>,
    ) -> std::io::Result<Self> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<(PartitionKey, RollJob)>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            // Ends when the shard drops its sender.
            for (key, job) in jobs_rx {
                let on_panic = job.failed(std::io::Error::other("the roll job panicked"));
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    job.run(disk.as_ref())
                }))
                .unwrap_or(on_panic);
                done_pending.fetch_add(1, Ordering::SeqCst);
                if results.send((key, done)).is_err() {
                    return;
                }
                doorbell.ring();
            }
        })?;
        Ok(Self {
            jobs: Some(jobs_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // Finishes the job it is running, if any (bounded blocking I/O), then ends.
            let _ = thread.join();
        }
    }
}

impl Roller {
    /// Starts shard `id`'s helper threads.
    pub(super) fn spawn(
        id: usize,
        disk: Arc<dyn Disk>,
        doorbell: &Arc<Doorbell>,
    ) -> std::io::Result<Self> {
        let (done_tx, done_rx) = mpsc::channel();
        let done_pending = Arc::new(AtomicUsize::new(0));
        let helper = |name: String| {
            Helper::spawn(
                name,
                Arc::clone(&disk),
                done_tx.clone(),
                Arc::clone(&done_pending),
                Arc::clone(doorbell),
            )
        };
        Ok(Self {
            urgent: helper(format!("rill-roll-{id}u"))?,
            slow: helper(format!("rill-roll-{id}"))?,
            done: done_rx,
            done_pending,
            disk,
            in_flight: 0,
        })
    }

    /// Whether a result waits to be taken (checked after the shard prepared to sleep).
    pub(super) fn has_done(&self) -> bool {
        self.done_pending.load(Ordering::SeqCst) > 0
    }

    /// Sends `job` to its helper; if the helper is gone, runs it here and returns its result.
    fn send(&mut self, key: PartitionKey, job: RollJob) -> Option<(PartitionKey, RollDone)> {
        self.in_flight += 1;
        let helper = if job.is_urgent() {
            &self.urgent
        } else {
            &self.slow
        };
        let Some(jobs) = &helper.jobs else {
            return Some((key, job.run(self.disk.as_ref())));
        };
        match jobs.send((key, job)) {
            Ok(()) => None,
            Err(mpsc::SendError((key, job))) => {
                tracing::error!("a roll-job thread is gone; running the job on the shard");
                Some((key, job.run(self.disk.as_ref())))
            }
        }
    }

    /// The next result a helper finished, if any.
    fn try_take(&self) -> Option<(PartitionKey, RollDone)> {
        let taken = self.done.try_recv().ok()?;
        self.done_pending.fetch_sub(1, Ordering::SeqCst);
        Some(taken)
    }
}

impl Shard {
    /// Sends `key`'s next roll job to the helper, unless one is out or none is queued.
    pub(super) fn start_roll_work(&mut self, key: PartitionKey) {
        let Some(state) = self.partitions.get(&key) else {
            return;
        };
        // None while one is out: at most one per partition.
        let Some(job) = state.shared.log.lock().take_roll_job() else {
            return;
        };
        if let Some((key, done)) = self.roller.send(key, job) {
            self.roll_done(key, done);
        }
    }

    /// Applies every roll job the helper finished. Returns whether there was any.
    pub(super) fn collect_roll_jobs(&mut self) -> bool {
        let mut any = false;
        // Bounded by the jobs out (one per partition).
        while let Some((key, done)) = self.roller.try_take() {
            self.roll_done(key, done);
            any = true;
        }
        any
    }

    /// A roll job came back: the log takes its result (a name became durable, a segment was
    /// sealed, the next file is ready), durable waiters it unblocks are answered, and the next
    /// job starts.
    fn roll_done(&mut self, key: PartitionKey, done: RollDone) {
        self.roller.in_flight -= 1;
        let Some(state) = self.partitions.get(&key) else {
            return;
        };
        let part = Arc::clone(&state.shared);
        let (result, prepare_failed) = part.update(|log| {
            let before = log.roll_stats().failed_prepares;
            let result = log.complete_roll_job(done).map_err(|e| part.error(log, e));
            (result, log.roll_stats().failed_prepares > before)
        });
        if let Err(e) = &result {
            tracing::error!(error = %e, dir = %part.dir.display(), "roll job");
        }
        if prepare_failed {
            tracing::warn!(
                dir = %part.dir.display(),
                "preparing the next segment failed; its roll will be synchronous"
            );
        }
        self.answer_waiters(key, result);
        self.relist(key);
        self.start_roll_work(key);
    }
}
