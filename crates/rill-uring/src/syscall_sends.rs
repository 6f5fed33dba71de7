//! Transfers in the epoll driver: the non-blocking system-call engine of `rill_send` on the
//! shard thread, with the socket in the driver's epoll set (`EPOLLOUT`, one-shot) while it is
//! full. Sockets in blocking mode go to [`rill_send::BlockingSenders`] instead.
//!
//! Each transfer owns a duplicate of the socket descriptor, so its epoll registration is its
//! own; it is deleted before the descriptor closes (epoll keys on the open file, which the
//! caller's descriptor keeps alive, so a closed duplicate would otherwise stay registered).

use crate::doorbell::Doorbell;
use crate::driver::DriverStats;
use crate::send_book::SendBook;
use rill_send::{Finished, PipeStats, Progress, SendConfig, SendError, Transfer, advance};
use rustix::event::epoll;
use slab::Slab;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// File bytes one transfer moves before the others get a turn.
const BUDGET: u64 = 4 << 20;

struct Entry {
    t: Transfer,
    /// Whether the socket is in the epoll set.
    registered: bool,
}

/// The send state of a [`crate::SyscallDriver`].
pub(crate) struct SyscallSends {
    book: SendBook,
    transfers: Slab<Entry>,
}

impl SyscallSends {
    pub(crate) fn new(config: SendConfig, doorbell: &Arc<Doorbell>) -> Self {
        Self {
            book: SendBook::new(config, doorbell),
            transfers: Slab::new(),
        }
    }

    pub(crate) fn start(&mut self, t: Transfer) {
        if !t.job().socket_nonblocking {
            self.book.blocking.submit(t);
            return;
        }
        let key = self.transfers.insert(Entry {
            t,
            registered: false,
        });
        self.book.ready.push_back(key);
    }

    /// The epoll `u64` of a transfer (0 is the doorbell).
    pub(crate) fn event_key(data: u64) -> Option<usize> {
        data.checked_sub(1).map(|k| k as usize)
    }

    /// The socket of transfer `key` became writable.
    pub(crate) fn on_writable(&mut self, key: usize) {
        if self.transfers.contains(key) {
            self.book.ready.push_back(key);
        }
    }

    /// Whether the shard must not sleep: steps to run or transfers to hand back.
    pub(crate) fn has_work(&mut self) -> bool {
        self.book.has_work()
    }

    /// Advances every ready transfer once (bounded by the ready list's length now).
    pub(crate) fn run_ready(&mut self, epoll_fd: &OwnedFd) {
        for _ in 0..self.book.ready.len() {
            let Some(key) = self.book.ready.pop_front() else {
                break;
            };
            let Some(entry) = self.transfers.get_mut(key) else {
                continue;
            };
            match advance(
                &mut entry.t,
                &mut self.book.pipes,
                &self.book.config,
                BUDGET,
            ) {
                Progress::Done => self.finish(key, epoll_fd),
                Progress::Yield => self.book.ready.push_back(key),
                Progress::NoPipe => self.book.waiting_pipe.push_back(key),
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
        let Some(entry) = self.transfers.try_remove(key) else {
            return;
        };
        if entry.registered {
            // Before the duplicate descriptor closes (see the module documentation).
            let _ = epoll::delete(epoll_fd, &entry.t.job().socket);
        }
        self.book.finish(entry.t);
    }

    pub(crate) fn collect(&mut self, out: &mut Vec<Finished>, stats: &mut DriverStats) {
        self.book.collect(out, stats);
    }

    pub(crate) fn pipe_stats(&self) -> PipeStats {
        self.book.pipe_stats()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.transfers.len() + self.book.in_flight()
    }

    pub(crate) fn expire(&mut self, all: bool, epoll_fd: &OwnedFd) {
        self.book.blocking.expire(all);
        let expired: Vec<(usize, SendError)> = self
            .transfers
            .iter()
            .filter_map(|(key, e)| Some((key, self.book.expiry(&e.t, all)?)))
            .collect();
        for (key, error) in expired {
            if let Some(entry) = self.transfers.get_mut(key) {
                entry.t.fail(error);
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
