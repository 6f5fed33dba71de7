//! Transfers to sockets in blocking mode, run with system calls on a few threads.
//!
//! `sendfile` and `splice` to a blocking socket block until the socket takes every byte, which
//! would stall a shard thread (and every partition on it) behind one slow consumer. These
//! threads absorb that instead. The shard hands a transfer over and collects it when done; a
//! callback (the shard's doorbell) tells it to look. Threads are made on first use, so
//! services with non-blocking sockets never have them.
//!
//! A call blocked on a peer that stopped reading cannot be interrupted, so each call moves at
//! most [`BLOCKING_CHUNK_BYTES`] and publishes its progress; the shard's periodic
//! [`BlockingSenders::expire`] shuts down the write side of a socket without progress for the
//! stall timeout (or of every socket, when closing), which makes the blocked call return. The
//! stream then holds a partial frame anyway: the caller must close the connection.

use crate::error::SendError;
use crate::pipe::PipePool;
use crate::strategy::SendConfig;
use crate::syscalls::{Progress, advance};
use crate::transfer::{Finished, Transfer};
use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::Shutdown;
use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes per blocking call: a peer slower than this per stall timeout counts as stalled.
pub const BLOCKING_CHUNK_BYTES: usize = 64 << 10;

type Notify = Arc<dyn Fn() + Send + Sync>;

/// Why the watchdog shut a socket down.
const RUNNING: u8 = 0;
const STALLED: u8 = 1;
const CANCELLED: u8 = 2;

/// What the shard's watchdog sees of a running transfer.
struct Watch {
    /// A duplicate of the transfer's socket, to shut down.
    socket: OwnedFd,
    /// Bytes sent, published by the thread after each call.
    sent: Arc<AtomicU64>,
    /// Set by the watchdog before it shuts the socket down.
    verdict: Arc<AtomicU8>,
    /// Set by the thread that dequeued the transfer: time queued is not a stall.
    started: Arc<AtomicBool>,
    /// The last `sent` the watchdog saw (`None` before it saw the transfer started), and since
    /// when.
    seen: Option<u64>,
    since: Instant,
}

type Watches = Arc<Mutex<HashMap<u64, Watch>>>;

struct Job {
    transfer: Transfer,
    sent: Arc<AtomicU64>,
    verdict: Arc<AtomicU8>,
    started: Arc<AtomicBool>,
}

/// A shard's threads for blocking-socket transfers. See the module documentation.
pub struct BlockingSenders {
    config: SendConfig,
    notify: Notify,
    jobs: Option<mpsc::Sender<Job>>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: Arc<Mutex<Vec<Transfer>>>,
    watches: Watches,
    closing: Arc<AtomicBool>,
    threads: usize,
    in_flight: usize,
}

impl fmt::Debug for BlockingSenders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingSenders")
            .field("threads", &self.threads)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl BlockingSenders {
    /// A pool that calls `notify` whenever a transfer finishes.
    pub fn new(config: SendConfig, notify: impl Fn() + Send + Sync + 'static) -> Self {
        let (jobs, queue) = mpsc::channel();
        Self {
            config: SendConfig {
                chunk_bytes: config.chunk_bytes.min(BLOCKING_CHUNK_BYTES),
                ..config
            },
            notify: Arc::new(notify),
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            done: Arc::new(Mutex::new(Vec::new())),
            watches: Arc::new(Mutex::new(HashMap::new())),
            closing: Arc::new(AtomicBool::new(false)),
            threads: 0,
            in_flight: 0,
        }
    }

    /// Queues a transfer for the threads. The queue is bounded by the shard's limit on
    /// transfers in progress.
    pub fn submit(&mut self, mut transfer: Transfer) {
        if self.threads < self.config.blocking_threads.min(self.in_flight + 1) {
            match self.spawn() {
                Ok(()) => self.threads += 1,
                Err(e) if self.threads == 0 => {
                    transfer.fail(SendError::Io {
                        what: "spawning a blocking sender thread",
                        sent: 0,
                        source: e,
                    });
                    return self.finish_here(transfer);
                }
                // Fewer threads than asked still run every transfer.
                Err(e) => tracing::warn!(error = %e, "spawning a blocking sender thread"),
            }
        }
        let socket = match transfer.job().socket.try_clone() {
            Ok(socket) => socket,
            Err(e) => {
                transfer.fail(SendError::Io {
                    what: "duplicating the socket descriptor",
                    sent: 0,
                    source: e,
                });
                return self.finish_here(transfer);
            }
        };
        let (sent, verdict) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU8::new(RUNNING)),
        );
        let started = Arc::new(AtomicBool::new(false));
        self.watches.lock().insert(
            transfer.token,
            Watch {
                socket,
                sent: Arc::clone(&sent),
                verdict: Arc::clone(&verdict),
                started: Arc::clone(&started),
                seen: None,
                since: Instant::now(),
            },
        );
        let token = transfer.token;
        let job = Job {
            transfer,
            sent,
            verdict,
            started,
        };
        let Some(jobs) = self.jobs.as_ref() else {
            self.watches.lock().remove(&token);
            let mut transfer = job.transfer;
            transfer.fail(SendError::Cancelled { sent: 0 });
            return self.finish_here(transfer);
        };
        self.in_flight += 1;
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            self.in_flight -= 1;
            self.watches.lock().remove(&token);
            let mut transfer = job.transfer;
            transfer.fail(SendError::Cancelled { sent: 0 });
            self.finish_here(transfer);
        }
    }

    fn finish_here(&mut self, mut transfer: Transfer) {
        let mut no_pipes = PipePool::new(1, self.config.pipe_bytes);
        transfer.finish(&mut no_pipes);
        self.done.lock().push(transfer);
        self.in_flight += 1;
    }

    fn spawn(&self) -> std::io::Result<()> {
        let queue = Arc::clone(&self.queue);
        let done = Arc::clone(&self.done);
        let watches = Arc::clone(&self.watches);
        let notify = Arc::clone(&self.notify);
        let closing = Arc::clone(&self.closing);
        let config = self.config;
        std::thread::Builder::new()
            .name("rill-send-blocking".into())
            .spawn(move || {
                let mut pipes = PipePool::new(1, config.pipe_bytes);
                // Ends when the pool drops its sender and the queue is empty.
                loop {
                    let next = queue.lock().recv();
                    let Ok(mut job) = next else { return };
                    if closing.load(Ordering::Acquire) {
                        job.transfer.fail(SendError::Cancelled { sent: 0 });
                    } else {
                        job.started.store(true, Ordering::Release);
                        run_to_end(&mut job, &mut pipes, &config);
                    }
                    // Under the watchdog's lock: once removed, the socket is never shut down;
                    // if it was shut down first, that is reported even over a success (the
                    // socket is unusable now).
                    watches.lock().remove(&job.transfer.token);
                    report_verdict(&mut job, &config);
                    job.transfer.finish(&mut pipes);
                    done.lock().push(job.transfer);
                    notify();
                }
            })?;
        Ok(())
    }

    /// Moves finished transfers into `out`.
    pub fn collect(&mut self, out: &mut Vec<Finished>) {
        let mut done = self.done.lock();
        self.in_flight -= done.len().min(self.in_flight);
        out.extend(done.drain(..).map(Transfer::into_finished));
    }

    /// Transfers submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The watchdog: shuts down the write side of sockets whose transfer made no progress for
    /// the stall timeout, or of every running transfer with `all` (queued ones then fail as
    /// cancelled without starting). Call it periodically.
    pub fn expire(&self, all: bool) {
        if all {
            self.closing.store(true, Ordering::Release);
        }
        let timeout = Duration::from_millis(self.config.stall_timeout_ms);
        let mut watches = self.watches.lock();
        for watch in watches.values_mut() {
            if !watch.started.load(Ordering::Acquire) {
                // Queued behind other transfers: `closing` cancels it when dequeued.
                continue;
            }
            let sent = watch.sent.load(Ordering::Acquire);
            if watch.seen != Some(sent) {
                watch.seen = Some(sent);
                watch.since = Instant::now();
            }
            let verdict = if all {
                CANCELLED
            } else if watch.since.elapsed() >= timeout {
                STALLED
            } else {
                continue;
            };
            if watch
                .verdict
                .compare_exchange(RUNNING, verdict, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Makes a call blocked on this socket return (EPIPE).
                let _ = rustix::net::shutdown(&watch.socket, Shutdown::Write);
            }
        }
    }
}

impl Drop for BlockingSenders {
    fn drop(&mut self) {
        // Threads are not joined: they end after their current transfer, which the shard
        // cancelled (see `expire`); they own everything they use.
        self.closing.store(true, Ordering::Release);
        self.jobs = None;
    }
}

/// If the watchdog shut the job's socket down, records why (rather than the `EPIPE` it caused,
/// or a success that raced with it).
fn report_verdict(job: &mut Job, config: &SendConfig) {
    let verdict = job.verdict.load(Ordering::Acquire);
    if verdict == RUNNING {
        return;
    }
    let sent = job.transfer.sent_total();
    job.transfer.fail_instead(if verdict == STALLED {
        SendError::Stalled {
            sent,
            timeout_ms: config.stall_timeout_ms,
        }
    } else {
        SendError::Cancelled { sent }
    });
}

/// Runs a job's transfer to its end with blocking waits for socket space.
fn run_to_end(job: &mut Job, pipes: &mut PipePool, config: &SendConfig) {
    let t = &mut job.transfer;
    let timeout = Duration::from_millis(config.stall_timeout_ms);
    // Each pass moves at most a chunk, finishes, or waits at most the stall timeout; a
    // transfer without progress for that long is shut down by the watchdog or fails here.
    loop {
        let progress = advance(t, pipes, config, config.chunk_bytes as u64);
        job.sent.store(t.sent_total(), Ordering::Release);
        if job.verdict.load(Ordering::Acquire) != RUNNING {
            // The watchdog shut the socket down (see `report_verdict`).
            return;
        }
        match progress {
            Progress::Done => return,
            Progress::Yield => {}
            Progress::NoPipe => {
                // The thread's own pool holds one pipe and it is always returned.
                let sent = t.sent_total();
                t.fail(SendError::Io {
                    what: "pipe pool",
                    sent,
                    source: std::io::Error::other("no pipe free"),
                });
                return;
            }
            Progress::WouldBlock => {
                let waited = t.last_progress().elapsed();
                if waited >= timeout {
                    let sent = t.sent_total();
                    t.fail(SendError::Stalled {
                        sent,
                        timeout_ms: config.stall_timeout_ms,
                    });
                    return;
                }
                let left = timeout
                    .saturating_sub(waited)
                    .min(Duration::from_millis(100));
                let ts = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&t.job().socket, PollFlags::OUT)];
                // An error or hang-up shows in the next write.
                let _ = poll(&mut fds, Some(&ts));
            }
        }
    }
}
