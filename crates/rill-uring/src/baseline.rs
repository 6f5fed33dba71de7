//! The epoll baseline: the same operations run with plain system calls, as a careful engineer
//! builds without io_uring. fdatasyncs of different files run in parallel on a small thread
//! pool, which wakes the shard through its doorbell (a sync that is alone runs inline, sparing
//! the thread hop); reads are `pread`; the shard sleeps in `epoll_wait` on its doorbell. Appends
//! are written on the caller's thread, as with io_uring. It is the benchmark's baseline and the
//! fallback where io_uring is unavailable.

use crate::buffers::{BufferPool, BufferPoolConfig};
use crate::doorbell::Doorbell;
use crate::driver::{
    Completion, Driver, DriverKind, DriverStats, QueuedSync, ReadOp, sync_finished, sync_inline,
    take_lone_sync,
};
use crate::error::DriverError;
use crate::syscall_sends::SyscallSends;
use parking_lot::{Condvar, Mutex};
use rill_segment::disk::{self, Disk, FileId};
use rill_send::{Finished, SendConfig, Transfer};
use rustix::event::epoll;
use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings of a [`SyscallDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallOptions {
    /// Threads running fdatasyncs of different files in parallel.
    pub sync_threads: usize,
    /// The read-buffer pool (plain memory here).
    pub buffers: BufferPoolConfig,
    /// The send path.
    pub send: SendConfig,
}

impl Default for SyscallOptions {
    fn default() -> Self {
        Self {
            sync_threads: 4,
            buffers: BufferPoolConfig::default(),
            send: SendConfig::default(),
        }
    }
}

struct SyncJob {
    token: u64,
    file: FileId,
    background: bool,
}

/// A finished job: its token, file, whether it was a background one, and the result.
type SyncDone = (u64, FileId, bool, io::Result<()>);

/// What the shard and the fsync threads share: jobs in, results out, both in reused buffers
/// (no allocation per sync in steady state).
#[derive(Default)]
struct SyncQueues {
    jobs: Mutex<(VecDeque<SyncJob>, bool)>,
    job_ready: Condvar,
    done: Mutex<Vec<SyncDone>>,
}

/// Fixed threads that run fdatasyncs. A finished job rings the shard's doorbell after its result
/// is in `done`, so a sleeping shard wakes for it. Jobs are bounded by the syncs started (a
/// shard has at most one sync per partition in flight).
struct SyncPool {
    queues: Arc<SyncQueues>,
    threads: Vec<JoinHandle<()>>,
    outstanding: usize,
    /// Background syncs among `outstanding`.
    background: usize,
    /// The shard's side of `done`, swapped with it.
    collected: Vec<SyncDone>,
}

impl SyncPool {
    fn new(
        disk: &Arc<dyn Disk>,
        doorbell: &Arc<Doorbell>,
        threads: usize,
    ) -> Result<Self, DriverError> {
        let queues = Arc::new(SyncQueues::default());
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let queues = Arc::clone(&queues);
            let disk = Arc::clone(disk);
            let doorbell = Arc::clone(doorbell);
            let handle = std::thread::Builder::new()
                .name(format!("rill-fsync-{i}"))
                .spawn(move || sync_thread(&queues, disk.as_ref(), &doorbell))
                .map_err(|e| DriverError::setup("spawn fsync thread", e))?;
            handles.push(handle);
        }
        Ok(Self {
            queues,
            threads: handles,
            outstanding: 0,
            background: 0,
            collected: Vec::with_capacity(64),
        })
    }

    fn submit(&mut self, token: u64, file: FileId, background: bool) {
        self.queues.jobs.lock().0.push_back(SyncJob {
            token,
            file,
            background,
        });
        self.queues.job_ready.notify_one();
        self.outstanding += 1;
        self.background += usize::from(background);
    }
}

/// An fsync thread: runs jobs until the pool stops.
fn sync_thread(queues: &SyncQueues, disk: &dyn Disk, doorbell: &Doorbell) {
    // Ends when the pool sets the stop flag.
    loop {
        let job = {
            let mut jobs = queues.jobs.lock();
            // Bounded by the pool's life: each wake-up takes a job or sees the stop flag.
            loop {
                if let Some(job) = jobs.0.pop_front() {
                    break job;
                }
                if jobs.1 {
                    return;
                }
                queues.job_ready.wait(&mut jobs);
            }
        };
        let result = disk.fdatasync(job.file);
        queues
            .done
            .lock()
            .push((job.token, job.file, job.background, result));
        doorbell.ring();
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        self.queues.jobs.lock().1 = true;
        self.queues.job_ready.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The epoll + syscalls driver. See the module documentation.
pub struct SyscallDriver {
    disk: Arc<dyn Disk>,
    doorbell: Arc<Doorbell>,
    epoll: OwnedFd,
    pool: BufferPool,
    syncs: SyncPool,
    /// Syncs started since the last poll, and whether each is a background one.
    queued_syncs: Vec<QueuedSync>,
    /// Completions not yet handed to the shard.
    done: Vec<Completion>,
    sends: SyscallSends,
    stats: DriverStats,
}

impl std::fmt::Debug for SyscallDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyscallDriver")
            .field("sync_threads", &self.syncs.threads.len())
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl SyscallDriver {
    /// A driver for files of `disk`, sleeping on `doorbell`.
    pub fn new(
        disk: Arc<dyn Disk>,
        doorbell: Arc<Doorbell>,
        options: SyscallOptions,
    ) -> Result<Self, DriverError> {
        if options.sync_threads == 0 {
            return Err(DriverError::Config(
                "sync_threads must be at least 1".into(),
            ));
        }
        options.send.validate().map_err(DriverError::Config)?;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| DriverError::setup("epoll_create", e))?;
        epoll::add(
            &epoll,
            &*doorbell,
            epoll::EventData::new_u64(0),
            epoll::EventFlags::IN,
        )
        .map_err(|e| DriverError::setup("epoll_ctl(doorbell)", e))?;
        Ok(Self {
            syncs: SyncPool::new(&disk, &doorbell, options.sync_threads)?,
            queued_syncs: Vec::with_capacity(64),
            done: Vec::with_capacity(256),
            sends: SyscallSends::new(options.send, &doorbell),
            disk,
            doorbell,
            epoll,
            pool: BufferPool::new(options.buffers)?,
            stats: DriverStats::default(),
        })
    }

    /// The read-buffer pool.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Runs the syncs started since the last pass: one waited for, alone (nothing running on
    /// the pool but background syncs), runs inline, sparing the thread hop, with the others on
    /// the pool beside it; otherwise all in parallel on the pool.
    fn dispatch_syncs(&mut self) {
        if self.queued_syncs.is_empty() {
            return;
        }
        self.stats.batches += 1;
        let mut queued = std::mem::take(&mut self.queued_syncs);
        let idle = self.syncs.outstanding == self.syncs.background;
        let inline = take_lone_sync(&mut queued, idle);
        for (token, file, background) in queued.drain(..) {
            self.syncs.submit(token, file, background);
        }
        self.queued_syncs = queued;
        if let Some((token, file, _)) = inline {
            sync_inline(
                self.disk.as_ref(),
                &mut self.stats,
                &mut self.done,
                (token, file),
            );
        }
    }

    /// Moves the pool's finished syncs into `done`.
    fn collect_syncs(&mut self) {
        if self.syncs.outstanding == 0 {
            return;
        }
        std::mem::swap(
            &mut *self.syncs.queues.done.lock(),
            &mut self.syncs.collected,
        );
        for (token, file, background, result) in self.syncs.collected.drain(..) {
            self.syncs.outstanding -= 1;
            self.syncs.background -= usize::from(background);
            sync_finished(&mut self.stats, &mut self.done, (token, file), result);
        }
    }

    /// Waits in `epoll_wait` for the doorbell or writable sockets, at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = rustix::event::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        self.stats.submit_calls += 1;
        let mut buffer = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 64];
        let events: &[epoll::Event] = match epoll::wait(&self.epoll, &mut buffer[..], Some(&ts)) {
            Ok((events, _)) => events,
            Err(rustix::io::Errno::INTR) => &[],
            Err(e) => return Err(e.into()),
        };
        let mut doorbell = false;
        for event in events {
            match SyscallSends::event_key(event.data.u64()) {
                Some(key) => self.sends.on_writable(key),
                None => doorbell = true,
            }
        }
        if doorbell {
            self.stats.wakeups += 1;
            self.doorbell.consume();
        }
        Ok(())
    }
}

impl Driver for SyscallDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Syscall
    }

    fn start_sync(&mut self, token: u64, file: FileId) {
        self.queued_syncs.push((token, file, false));
    }

    fn start_background_sync(&mut self, token: u64, file: FileId) {
        self.queued_syncs.push((token, file, true));
    }

    fn start_read(&mut self, token: u64, read: ReadOp) {
        let mut buf = self.pool.take(read.len);
        self.stats.submit_calls += 1;
        let result = disk::read_exact_at(
            self.disk.as_ref(),
            read.file,
            read.position,
            buf.as_mut_slice(),
        );
        if result.is_ok() {
            self.stats.reads += 1;
        }
        self.done.push(Completion::Read {
            token,
            result: result.map(|()| buf),
        });
    }

    fn poll(&mut self, out: &mut Vec<Completion>) {
        self.dispatch_syncs();
        self.collect_syncs();
        if self.sends.in_flight() > 0 {
            // A zero-timeout look for writable sockets, then the ready steps.
            if let Err(e) = self.wait(Duration::ZERO) {
                tracing::warn!(error = %e, "polling transfers");
            }
            self.sends.run_ready(&self.epoll);
        }
        out.append(&mut self.done);
    }

    fn park(&mut self, timeout: Duration, out: &mut Vec<Completion>) -> io::Result<()> {
        self.dispatch_syncs();
        self.collect_syncs();
        // Completions, steps to run or transfers to hand back: only poll.
        let timeout = if !self.done.is_empty() || self.sends.has_work() {
            Duration::ZERO
        } else {
            timeout
        };
        let waited = self.wait(timeout);
        self.collect_syncs();
        self.sends.run_ready(&self.epoll);
        out.append(&mut self.done);
        waited
    }

    fn io_in_flight(&self) -> usize {
        self.queued_syncs.len() + self.syncs.outstanding
    }

    fn stats(&self) -> DriverStats {
        self.stats.with_pipes(self.sends.pipe_stats())
    }

    fn start_send(&mut self, transfer: Transfer) {
        self.sends.start(transfer);
    }

    fn finished_sends(&mut self, out: &mut Vec<Finished>) {
        self.sends.collect(out, &mut self.stats);
    }

    fn sends_in_flight(&self) -> usize {
        self.sends.in_flight()
    }

    fn expire_sends(&mut self, all: bool) {
        self.sends.expire(all, &self.epoll);
    }
}
