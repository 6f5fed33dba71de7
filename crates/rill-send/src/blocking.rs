//! Transfers to sockets in blocking mode, run with system calls on a few threads.
//!
//! `sendfile` and `splice` to a blocking socket block until the socket takes every byte, which
//! would stall a shard thread (and every partition on it) behind one slow consumer. These
//! threads absorb that instead. The shard hands a transfer over and collects it when done; a
//! callback (the shard's doorbell) tells it to look. Threads are made on first use, so
//! services with non-blocking sockets never have them.

use crate::error::SendError;
use crate::pipe::PipePool;
use crate::strategy::SendConfig;
use crate::syscalls::{Progress, advance};
use crate::transfer::Transfer;
use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

type Notify = Arc<dyn Fn() + Send + Sync>;

/// A shard's threads for blocking-socket transfers. See the module documentation.
pub struct BlockingSenders {
    config: SendConfig,
    notify: Notify,
    jobs: Option<mpsc::Sender<Transfer>>,
    queue: Arc<Mutex<mpsc::Receiver<Transfer>>>,
    done: Arc<Mutex<Vec<Transfer>>>,
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
            config,
            notify: Arc::new(notify),
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            done: Arc::new(Mutex::new(Vec::new())),
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
                    self.finish_here(transfer);
                    return;
                }
                // Fewer threads than asked still run every transfer.
                Err(e) => tracing::warn!(error = %e, "spawning a blocking sender thread"),
            }
        }
        let Some(jobs) = self.jobs.as_ref() else {
            transfer.fail(SendError::Cancelled { sent: 0 });
            self.finish_here(transfer);
            return;
        };
        self.in_flight += 1;
        if let Err(mpsc::SendError(mut transfer)) = jobs.send(transfer) {
            self.in_flight -= 1;
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
                    let Ok(mut transfer) = next else { return };
                    if closing.load(Ordering::Acquire) {
                        transfer.fail(SendError::Cancelled { sent: 0 });
                    } else {
                        run_to_end(&mut transfer, &mut pipes, &config);
                    }
                    transfer.finish(&mut pipes);
                    done.lock().push(transfer);
                    notify();
                }
            })?;
        Ok(())
    }

    /// Moves finished transfers into `out`.
    pub fn collect(&mut self, out: &mut Vec<Transfer>) {
        let mut done = self.done.lock();
        self.in_flight -= done.len().min(self.in_flight);
        out.append(&mut done);
    }

    /// Transfers submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Makes queued transfers that have not started fail as cancelled. Running ones end on
    /// their own (done, peer gone, or stalled).
    pub fn cancel_queued(&self) {
        self.closing.store(true, Ordering::Release);
    }
}

impl Drop for BlockingSenders {
    fn drop(&mut self) {
        // Threads are not joined: one may be blocked on a stalled peer until its stall
        // timeout. They own everything they use and end after their current transfer.
        self.closing.store(true, Ordering::Release);
        self.jobs = None;
    }
}

/// Runs `t` to its end with blocking waits for socket space, failing it after the stall
/// timeout without progress.
fn run_to_end(t: &mut Transfer, pipes: &mut PipePool, config: &SendConfig) {
    let timeout = Duration::from_millis(config.stall_timeout_ms);
    // Each pass moves bytes, finishes, or waits at most the stall timeout; a transfer without
    // progress for that long fails, so the loop is bounded.
    loop {
        match advance(t, pipes, config, u64::MAX) {
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
                let left = timeout - waited;
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
