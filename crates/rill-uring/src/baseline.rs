//! The epoll baseline: the same plans run with plain system calls, as a careful engineer builds
//! without io_uring. Writes are `pwritev` on the shard thread (into the page cache: fast);
//! fdatasyncs of different files run in parallel on a small thread pool (one sync runs inline,
//! sparing the thread hop); reads are `pread`; the shard sleeps in `epoll_wait` on its doorbell.
//! It is the benchmark's baseline and the fallback where io_uring is unavailable.

use crate::buffers::{BufferPool, BufferPoolConfig};
use crate::doorbell::Doorbell;
use crate::driver::{Driver, DriverKind, DriverStats, ReadOp, sync_not_issued};
use crate::error::DriverError;
use crate::syscall_sends::SyscallSends;
use parking_lot::Mutex;
use rill_segment::disk::{self, Disk, FileId};
use rill_segment::plan::Round;
use rill_send::{Finished, SendConfig, Transfer};
use rustix::event::epoll;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc;
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
    file: FileId,
    round: usize,
    sync: usize,
}

type SyncDone = (usize, usize, io::Result<()>);

/// Fixed threads that run fdatasyncs; jobs and results travel over channels bounded by the
/// number of syncs of one batch.
struct SyncPool {
    jobs: Option<mpsc::Sender<SyncJob>>,
    done: mpsc::Receiver<SyncDone>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncPool {
    fn new(disk: &Arc<dyn Disk>, threads: usize) -> Result<Self, DriverError> {
        let (jobs, job_rx) = mpsc::channel::<SyncJob>();
        let (done_tx, done) = mpsc::channel::<SyncDone>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let disk = Arc::clone(disk);
            let handle = std::thread::Builder::new()
                .name(format!("rill-fsync-{i}"))
                .spawn(move || {
                    // Ends when the pool drops its sender.
                    loop {
                        let job = job_rx.lock().recv();
                        let Ok(job) = job else { return };
                        let result = disk.fdatasync(job.file);
                        if done_tx.send((job.round, job.sync, result)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| DriverError::setup("spawn fsync thread", e))?;
            handles.push(handle);
        }
        Ok(Self {
            jobs: Some(jobs),
            done,
            threads: handles,
        })
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        self.jobs = None;
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
            syncs: SyncPool::new(&disk, options.sync_threads)?,
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

    fn write_rounds(&mut self, rounds: &mut [&mut Round]) {
        for round in rounds.iter_mut() {
            for write in &mut round.writes {
                let bufs: Vec<&[u8]> = write.bufs.iter().map(|b| &b[..]).collect();
                self.stats.submit_calls += 1;
                let result =
                    disk::write_all_at(self.disk.as_ref(), write.file, write.position, &bufs);
                if result.is_ok() {
                    self.stats.writes += 1;
                    self.stats.write_bytes += write.len();
                }
                write.result = Some(result);
            }
        }
    }

    /// Runs the syncs of rounds whose writes succeeded: in parallel on the pool, or inline when
    /// there is just one.
    fn sync_rounds(&mut self, rounds: &mut [&mut Round]) {
        let mut wanted = Vec::new();
        for (r, round) in rounds.iter_mut().enumerate() {
            let ok = round.writes_succeeded();
            for (s, sync) in round.syncs.iter_mut().enumerate() {
                if ok {
                    wanted.push((r, s, sync.file));
                } else {
                    sync.result = Some(Err(sync_not_issued()));
                }
            }
        }
        let mut outstanding = 0usize;
        for &(r, s, file) in &wanted {
            let sent = wanted.len() > 1
                && self.syncs.jobs.as_ref().is_some_and(|jobs| {
                    jobs.send(SyncJob {
                        file,
                        round: r,
                        sync: s,
                    })
                    .is_ok()
                });
            if sent {
                outstanding += 1;
            } else {
                let result = self.disk.fdatasync(file);
                self.record_sync(rounds, r, s, result);
            }
        }
        // Bounded by the syncs sent; each worker answers every job it takes.
        for _ in 0..outstanding {
            match self.syncs.done.recv() {
                Ok((r, s, result)) => self.record_sync(rounds, r, s, result),
                Err(_) => break,
            }
        }
        for round in rounds.iter_mut() {
            for sync in &mut round.syncs {
                sync.result
                    .get_or_insert_with(|| Err(io::Error::other("fsync thread pool stopped")));
            }
        }
    }

    fn record_sync(
        &mut self,
        rounds: &mut [&mut Round],
        r: usize,
        s: usize,
        result: io::Result<()>,
    ) {
        self.stats.submit_calls += 1;
        if result.is_ok() {
            self.stats.syncs += 1;
        }
        rounds[r].syncs[s].result = Some(result);
    }
}

impl Driver for SyscallDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Syscall
    }

    fn run(&mut self, rounds: &mut [&mut Round], reads: &mut [ReadOp]) {
        self.sends.run_ready(&self.epoll);
        if rounds.iter().all(|r| r.is_empty()) && reads.is_empty() {
            return;
        }
        self.stats.batches += 1;
        self.write_rounds(rounds);
        self.sync_rounds(rounds);
        for read in reads.iter_mut() {
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
            read.result = Some(result.map(|()| buf));
        }
    }

    fn park(&mut self, timeout: Duration) -> io::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        // Steps to run or transfers to hand back: only poll.
        let timeout = if self.sends.has_work() {
            Duration::ZERO
        } else {
            timeout
        };
        let ts = rustix::event::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        self.stats.submit_calls += 1;
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&ts),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut doorbell = false;
        for event in &events {
            match SyscallSends::event_key(event.data.u64()) {
                Some(key) => self.sends.on_writable(key),
                None => doorbell = true,
            }
        }
        if doorbell {
            self.stats.wakeups += 1;
        }
        self.doorbell.consume();
        self.sends.run_ready(&self.epoll);
        Ok(())
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

    fn progress_sends(&mut self) {
        // A zero-timeout poll for writable sockets, then the ready steps.
        if let Err(e) = self.park(Duration::ZERO) {
            tracing::warn!(error = %e, "polling transfers");
        }
    }

    fn sends_in_flight(&self) -> usize {
        self.sends.in_flight()
    }

    fn expire_sends(&mut self, all: bool) {
        self.sends.expire(all, &self.epoll);
    }
}
