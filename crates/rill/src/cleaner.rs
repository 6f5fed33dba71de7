//! Compaction from the embedding API: [`Partition::compact_now`], and the log's cleaner
//! thread, which cleans compacted partitions whose dirty part reached their
//! `min_cleanable_dirty_permille` (Kafka's log cleaner, one thread).
//!
//! A cleaning is planned under the partition's lock, built on the calling (or cleaner) thread
//! without it (reading sealed segments, writing the cleaned files: appends and reads go on),
//! and installed by the partition's shard once no operation uses its files
//! (`rill_segment::compaction`, `partition/compact.rs` for the swap).

use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::request::Request;
use parking_lot::{Condvar, Mutex};
use rill_segment::compaction::CompactionReport;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

impl Partition {
    /// Cleans the partition now, whatever its cleanup policy and dirty ratio: keeps the last
    /// record of each key in its sealed segments (the active segment is never touched),
    /// removes tombstones older than `delete_retention_ms`, and swaps the cleaned segments in.
    /// Blocks the calling thread for the cleaning (it reads and writes the sealed segments;
    /// bounded by [`crate::Config::cleaner`]). `None` when nothing is dirty. Fails with
    /// [`Error::Log`]`(CompactionStale)` if a truncation or retention changed the segments
    /// meanwhile (nothing changed; call again).
    pub fn compact_now(&self) -> Result<Option<CompactionReport>> {
        let plan = {
            let log = self.shared.log.lock();
            log.plan_compaction()
                .map_err(|e| self.shared.error(&log, e))?
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let cleaned = plan.build(self.cleaner, self.clock.now_ms())?;
        self.request(|part, reply| Request::InstallCompaction {
            part,
            cleaned: Box::new(cleaned),
            reply,
        })
        .wait()
        .map(Some)
    }

    /// Whether the partition is compacted and its dirty part is due for a cleaning.
    pub fn needs_compaction(&self) -> bool {
        self.shared.log.lock().needs_compaction()
    }

    /// Bytes of sealed segments below the clean point and above it (the dirty part), and the
    /// clean point.
    pub fn compaction_state(&self) -> (u64, u64, i64) {
        let log = self.shared.log.lock();
        let (clean, dirty) = log.compaction_bytes();
        (clean, dirty, log.clean_point())
    }
}

/// The log's cleaner thread: wakes every `interval`, cleans the partitions that need it.
pub(crate) struct Cleaner {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Cleaner {
    /// Starts the thread; `partitions` lists the log's partitions at each pass.
    pub(crate) fn start(
        interval: Duration,
        partitions: impl Fn() -> Vec<Partition> + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("rill-cleaner".into())
            .spawn(move || run(&flag, interval, &partitions))
            .map_err(|e| Error::io("spawn", "rill-cleaner", e))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (after the cleaning in progress, if any) and waits for it.
    pub(crate) fn stop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(stop: &(Mutex<bool>, Condvar), interval: Duration, partitions: &dyn Fn() -> Vec<Partition>) {
    let (stopped, wake) = stop;
    // One pass per interval until stopped; each pass is bounded by the partitions listed.
    loop {
        {
            let mut stopped = stopped.lock();
            if !*stopped {
                wake.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        for partition in partitions() {
            if *stopped.lock() {
                return;
            }
            if !partition.needs_compaction() {
                continue;
            }
            match partition.compact_now() {
                Ok(Some(report)) => tracing::debug!(
                    topic = partition.topic(),
                    partition = partition.index(),
                    ?report,
                    "compacted"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    topic = partition.topic(),
                    partition = partition.index(),
                    error = %e,
                    "compaction"
                ),
            }
        }
    }
}
