//! Transfers in the epoll driver: the non-blocking system-call engine of `rill_send` on the
//! shard thread, with the socket in the driver's epoll set (`EPOLLOUT`, one-shot) while it is
//! full. Sockets in blocking mode go to [`BlockingSenders`] instead.
//!
//! Each transfer owns a duplicate of the socket descriptor, so its epoll registration is its
//! own; it is deleted before the descriptor closes (epoll keys on the open file, which the
//! caller's descriptor keeps alive, so a closed duplicate would otherwise stay registered).

use rill_send::{
    BlockingSenders, Finished, PipePool, Progress, SendConfig, SendError, Transfer, advance,
};
use rustix::event::epoll;
use slab::Slab;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// File bytes one transfer moves before the others get a turn.
const BUDGET: u64 = 4 << 20;

struct Entry {
    t: Transfer,
    /// Whether the socket is in the epoll set.
    registered: bool,
}

/// The send state of a [`crate::SyscallDriver`].
pub(crate) struct SyscallSends {
    config: SendConfig,
    pipes: PipePool,
    transfers: Slab<Entry>,
    ready: VecDeque<usize>,
    waiting_pipe: VecDeque<usize>,
    done: Vec<Finished>,
    blocking: BlockingSenders,
}

impl SyscallSends {
    pub(crate) fn new(config: SendConfig, blocking: BlockingSenders) -> Self {
        Self {
            pipes: PipePool::new(config.max_pipes, config.pipe_bytes),
            config,
            transfers: Slab::new(),
            ready: VecDeque::new(),
            waiting_pipe: VecDeque::new(),
            done: Vec::new(),
            blocking,
        }
    }

    pub(crate) fn start(&mut self, t: Transfer) {
        if !t.job().socket_nonblocking {
            self.blocking.submit(t);
            return;
        }
        let key = self.transfers.insert(Entry {
            t,
            registered: false,
        });
        self.ready.push_back(key);
    }

    /// The epoll `u64` of a transfer (0 is the doorbell).
    pub(crate) fn event_key(data: u64) -> Option<usize> {
        data.checked_sub(1).map(|k| k as usize)
    }

    /// The socket of transfer `key` became writable.
    pub(crate) fn on_writable(&mut self, key: usize) {
        if self.transfers.contains(key) {
            self.ready.push_back(key);
        }
    }

    /// Whether the shard must not sleep: steps to run or transfers to hand back.
    pub(crate) fn has_work(&mut self) -> bool {
        if !self.ready.is_empty() || !self.done.is_empty() {
            return true;
        }
        let before = self.done.len();
        self.blocking.collect(&mut self.done);
        self.done.len() > before
    }

    /// Advances every ready transfer once (bounded by the ready list's length now).
    pub(crate) fn run_ready(&mut self, epoll_fd: &OwnedFd) {
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(entry) = self.transfers.get_mut(key) else {
                continue;
            };
            match advance(&mut entry.t, &mut self.pipes, &self.config, BUDGET) {
                Progress::Done => self.finish(key, epoll_fd),
                Progress::Yield => self.ready.push_back(key),
                Progress::NoPipe => self.waiting_pipe.push_back(key),
                Progress::WouldBlock => {
                    if let Err(e) = watch(epoll_fd, entry, key) {
                        let sent = entry.t.sent_total();
                        entry.t.fail(SendError::Io {
                            what: "epoll_ctl",
                            sent,
                            source: e.into(),
                        });
                        self.finish(key, epoll_fd);
                    }
                }
            }
        }
    }

    fn finish(&mut self, key: usize, epoll_fd: &OwnedFd) {
        let Some(mut entry) = self.transfers.try_remove(key) else {
            return;
        };
        if entry.registered {
            // Before the duplicate descriptor closes (see the module documentation).
            let _ = epoll::delete(epoll_fd, &entry.t.job().socket);
        }
        entry.t.finish(&mut self.pipes);
        self.done.push(entry.t.into_finished());
        while let Some(waiting) = self.waiting_pipe.pop_front() {
            self.ready.push_back(waiting);
        }
    }

    pub(crate) fn collect(&mut self, out: &mut Vec<Finished>) {
        self.blocking.collect(&mut self.done);
        out.append(&mut self.done);
    }

    pub(crate) fn pipe_stats(&self) -> rill_send::PipeStats {
        self.pipes.stats()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.transfers.len() + self.done.len() + self.blocking.in_flight()
    }

    pub(crate) fn expire(&mut self, all: bool, epoll_fd: &OwnedFd) {
        let timeout = Duration::from_millis(self.config.stall_timeout_ms);
        self.blocking.expire(all);
        let keys: Vec<usize> = self
            .transfers
            .iter()
            .filter(|(_, e)| all || e.t.last_progress().elapsed() >= timeout)
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            if let Some(entry) = self.transfers.get_mut(key) {
                let sent = entry.t.sent_total();
                entry.t.fail(if all {
                    SendError::Cancelled { sent }
                } else {
                    SendError::Stalled {
                        sent,
                        timeout_ms: self.config.stall_timeout_ms,
                    }
                });
            }
            // Nothing of a system-call transfer is in flight between calls.
            self.finish(key, epoll_fd);
        }
    }
}

/// Puts the transfer's socket in the epoll set for one `EPOLLOUT`.
fn watch(epoll_fd: &OwnedFd, entry: &mut Entry, key: usize) -> rustix::io::Result<()> {
    let data = epoll::EventData::new_u64(key as u64 + 1);
    let flags = epoll::EventFlags::OUT | epoll::EventFlags::ONESHOT;
    if entry.registered {
        epoll::modify(epoll_fd, &entry.t.job().socket, data, flags)
    } else {
        epoll::add(epoll_fd, &entry.t.job().socket, data, flags)?;
        entry.registered = true;
        Ok(())
    }
}
