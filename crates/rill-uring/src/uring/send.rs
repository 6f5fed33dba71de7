//! Transfers on the shard's ring: header, then linked splices file → pipe → socket per
//! pipe-sized chunk (or linked read → send for [`SendStrategy::Copy`]). The header is linked
//! ahead of the first chunk's chain, so a small fetch is one submission and one trip.
//!
//! A transfer advances one step at a time: it submits a chain (one to three entries) and, when
//! every entry of the chain has completed, decides the next step from its counters (see
//! [`rill_send::Transfer`]). So each case of a broken chain is handled the same way:
//!
//! - a short splice into the pipe fails the link, the splice out gets `-ECANCELED`, and the next
//!   step sends what the pipe holds;
//! - a short splice out (non-blocking socket full) leaves bytes in the pipe; `-EAGAIN` arms a
//!   `POLLOUT` poll first (splice is not in io_uring's pollable set, so the kernel does not
//!   retry it by itself);
//! - an error ends the transfer, and a pipe with bytes left in it is closed, not reused.
//!
//! [`SendStrategy::Sendfile`] has no io_uring form: it runs the non-blocking system-call engine
//! on the shard thread and waits for socket space with a `POLLOUT` poll on the ring. Transfers
//! with system calls to sockets in blocking mode go to [`rill_send::BlockingSenders`].
//!
//! Each transfer owns its socket and file descriptors, staging buffer and header bytes until
//! the completions of all its entries arrived; a stalled one is cancelled with
//! `IORING_OP_ASYNC_CANCEL` and finishes when its entries complete.

use super::UringDriver;
use crate::buffers::ReadBuf;
use crate::doorbell::Doorbell;
use crate::send_book::SendBook;
use io_uring::{opcode, squeue, types};
use rill_send::{Finished, Progress, SendConfig, SendError, SendStrategy, Transfer, advance};
use slab::Slab;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// `user_data` bit of a send entry (below the doorbell's `u64::MAX`).
pub(super) const SEND_TAG: u64 = 1 << 62;
const KIND_BITS: u64 = 3;
const HEADER: u64 = 0;
const SPLICE_IN: u64 = 1;
const SPLICE_OUT: u64 = 2;
const POLL: u64 = 3;
const READ: u64 = 4;
const SEND: u64 = 5;
const CANCEL: u64 = 6;
/// Steps in a row that move no byte before a transfer is failed (a safety net: progress,
/// `EAGAIN` then a poll, or an error is what the kernel gives).
const MAX_IDLE_STEPS: u32 = 1024;
/// File bytes a system-call transfer moves before letting the shard do other work.
const SYSCALL_BUDGET: u64 = 4 << 20;
/// Copy-strategy bytes queued before they are submitted at once. A read completes during the
/// submission and its linked send runs in the same enter (deferred task work), so the send
/// copies bytes the read has just left in the CPU's cache. Submitting many chunks together
/// would run every read first and every send later, after the first reads' bytes left the
/// cache: measured with 128 consumers of 1 MiB fetches, the sends' copies cost 2.25 times as
/// much CPU. 1 MiB: half of this machine's per-core L2.
const COPY_BYTES_PER_SUBMIT: usize = 1 << 20;

/// The smallest splice pair when many transfers share the shard.
const MIN_SPLICE_PAIR_BYTES: u64 = 256 << 10;

/// Bytes one splice pair (file → pipe, pipe → socket) of a transfer moves, with
/// `transfers` on the shard's ring: the pipe's capacity shared among them, at least
/// [`MIN_SPLICE_PAIR_BYTES`]. io_uring runs every splice in an io-wq worker and, under
/// `DEFER_TASKRUN`, the shard thread issues each linked step, so every pair costs two trips
/// through the shard: a lone transfer wants few, large pairs. With many transfers the shard
/// is busy anyway, and smaller pairs measured faster (1 MiB fetches of 64 KiB batches on this
/// machine: 1 MiB pairs 1.7-2.2 GB/s for one consumer, 256 KiB pairs 1.3-1.7; with 16
/// consumers 3.4-3.7 against 4.0-4.4, with 128 3.7-3.9 against 4.4-5.1).
fn splice_pair_bytes(pipe_capacity: usize, transfers: usize) -> u64 {
    let shared = pipe_capacity as u64 / transfers.max(1) as u64;
    shared.max(MIN_SPLICE_PAIR_BYTES)
}

fn user_data(key: usize, kind: u64) -> u64 {
    SEND_TAG | ((key as u64) << KIND_BITS) | kind
}

struct RingTransfer {
    t: Transfer,
    /// Bit `1 << kind` for each entry of this transfer in flight.
    ops: u8,
    needs_poll: bool,
    idle_steps: u32,
    cancel_sent: bool,
    /// `AsyncCancel` entries of this transfer not yet completed. The transfer keeps its slot
    /// (and so its `user_data`) until they complete: a cancel still queued when a new
    /// transfer took the slot would cancel the new transfer's entries.
    cancels: u8,
    /// Copy strategy: the buffer (`chunk_bytes` long, kept for every chunk of the transfer),
    /// holding `staged` bytes read from the file.
    staging: Option<ReadBuf>,
    staged: usize,
}

impl RingTransfer {
    /// Nothing of the transfer is in flight: no entry of its chain, no cancellation.
    fn idle(&self) -> bool {
        self.ops == 0 && self.cancels == 0
    }
}

/// The send state of a [`UringDriver`].
pub(super) struct RingSends {
    book: SendBook,
    transfers: Slab<RingTransfer>,
    /// Transfers on the ring at once: each has at most four entries in flight (a chain of up
    /// to three, and its cancellation), and together they leave the batch most of the
    /// completion queue. More wait in `waiting_slot`.
    max_on_ring: usize,
    waiting_slot: VecDeque<Transfer>,
    /// Send entries pushed to the ring and not completed (the batch does not wait for them).
    pub(super) entries_in_flight: usize,
    /// Heap staging buffers of finished copy transfers, for the next ones when the registered
    /// pool has none free: no allocation per transfer. At most `max_transfers` of them, so
    /// at most `max_transfers * chunk_bytes` bytes (what the baseline's transfers hold too).
    spare_staging: Vec<ReadBuf>,
    /// Copy-strategy bytes pushed since the last submission (see [`COPY_BYTES_PER_SUBMIT`]).
    pub(super) copy_bytes_unsubmitted: usize,
}

impl RingSends {
    pub(super) fn new(config: SendConfig, cq_entries: usize, doorbell: &Arc<Doorbell>) -> Self {
        Self {
            book: SendBook::new(config, doorbell),
            transfers: Slab::new(),
            max_on_ring: (cq_entries / 6).max(1),
            waiting_slot: VecDeque::new(),
            entries_in_flight: 0,
            spare_staging: Vec::new(),
            copy_bytes_unsubmitted: 0,
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.transfers.len() + self.waiting_slot.len() + self.book.in_flight()
    }

    /// Whether the shard must not sleep: finished transfers to hand back, or steps to run.
    pub(super) fn has_work(&mut self) -> bool {
        self.book.has_work()
    }

    pub(super) fn pipe_stats(&self) -> rill_send::PipeStats {
        self.book.pipe_stats()
    }

    /// At drop: transfers with entries still in flight (only after the ring broke) are leaked,
    /// since the kernel may still read their header or staging buffer.
    pub(super) fn leak_in_flight(&mut self) {
        if self.entries_in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.transfers));
        }
    }
}

/// The error of transfers on a ring that broke.
fn ring_broke(sent: u64) -> SendError {
    SendError::Io {
        what: "io_uring",
        sent,
        source: std::io::Error::other("the io_uring driver broke; reopen the log"),
    }
}

impl UringDriver {
    pub(super) fn send_start(&mut self, mut t: Transfer) {
        if self.broken.is_some() {
            t.fail(ring_broke(0));
            self.sends.book.finish(t);
            return;
        }
        let syscalls = t.job().strategy == SendStrategy::Sendfile;
        if syscalls && !t.job().socket_nonblocking {
            self.sends.book.blocking.submit(t);
            return;
        }
        if self.sends.transfers.len() >= self.sends.max_on_ring {
            self.sends.waiting_slot.push_back(t);
            return;
        }
        let key = self.sends.transfers.insert(RingTransfer {
            t,
            ops: 0,
            needs_poll: false,
            idle_steps: 0,
            cancel_sent: false,
            cancels: 0,
            staging: None,
            staged: 0,
        });
        self.send_step(key);
    }

    /// Runs the steps of transfers marked ready (bounded by the list's length now).
    pub(super) fn send_run_ready(&mut self) {
        for _ in 0..self.sends.book.ready.len() {
            let Some(key) = self.sends.book.ready.pop_front() else {
                break;
            };
            if self
                .sends
                .transfers
                .get(key)
                .is_some_and(RingTransfer::idle)
            {
                self.send_step(key);
            }
        }
    }

    pub(super) fn send_collect(&mut self, out: &mut Vec<Finished>) {
        self.sends.book.collect(out, &mut self.stats);
    }

    /// After the ring broke: every transfer fails. Those with entries still in flight are
    /// leaked (the kernel may still read their buffers), their outcome reported all the same.
    pub(super) fn send_fail_broken(&mut self) {
        let keys: Vec<usize> = self.sends.transfers.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(rt) = self.sends.transfers.get_mut(key) else {
                continue;
            };
            let sent = rt.t.sent_total();
            rt.t.fail(ring_broke(sent));
            // No cancellation completes on a broken ring, and none holds a buffer.
            rt.cancels = 0;
            if rt.ops == 0 {
                self.send_finish(key);
            } else if let Some(rt) = self.sends.transfers.try_remove(key) {
                let token = rt.t.token;
                std::mem::forget(rt);
                self.sends.book.done.push(Finished {
                    token,
                    result: Err(ring_broke(sent)),
                });
            }
        }
    }

    /// Fails transfers without progress for the stall timeout, or every transfer (`all`).
    pub(super) fn send_expire(&mut self, all: bool) {
        if self.broken.is_some() {
            self.send_fail_broken();
        }
        self.sends.book.blocking.expire(all);
        if all {
            for mut t in std::mem::take(&mut self.sends.waiting_slot) {
                t.fail(SendError::Cancelled { sent: 0 });
                self.sends.book.finish(t);
            }
        }
        let expired: Vec<(usize, SendError)> = self
            .sends
            .transfers
            .iter()
            .filter_map(|(key, rt)| Some((key, self.sends.book.expiry(&rt.t, all)?)))
            .collect();
        for (key, error) in expired {
            let Some(rt) = self.sends.transfers.get_mut(key) else {
                continue;
            };
            rt.t.fail(error);
            if rt.idle() {
                self.send_finish(key);
                continue;
            }
            if rt.cancel_sent || rt.ops == 0 {
                continue;
            }
            rt.cancel_sent = true;
            let ops = rt.ops;
            let cancels: Vec<squeue::Entry> = (0..8u64)
                .filter(|kind| ops & (1 << kind) != 0)
                .map(|kind| {
                    opcode::AsyncCancel::new(user_data(key, kind))
                        .build()
                        .user_data(user_data(key, CANCEL))
                })
                .collect();
            rt.cancels = cancels.len() as u8;
            for entry in cancels {
                self.push_chain(&[entry]);
            }
        }
    }

    /// Handles the completion of a send entry.
    pub(super) fn send_complete(&mut self, data: u64, res: i32) {
        let kind = data & ((1 << KIND_BITS) - 1);
        let key = ((data & !SEND_TAG) >> KIND_BITS) as usize;
        let Some(rt) = self.sends.transfers.get_mut(key) else {
            debug_assert!(false, "completion for unknown transfer {key}");
            return;
        };
        if kind == CANCEL {
            // Its result needs no handling (`-ENOENT`, `-EALREADY`: the entry was done).
            debug_assert!(rt.cancels > 0, "a cancel completion for a cancel in flight");
            rt.cancels = rt.cancels.saturating_sub(1);
            if rt.idle() {
                self.send_step(key);
            }
            return;
        }
        rt.ops &= !(1 << kind);
        let before = rt.t.sent_total() + rt.t.untaken();
        record(rt, kind, res);
        let moved = rt.t.sent_total() + rt.t.untaken() != before;
        rt.idle_steps = if moved { 0 } else { rt.idle_steps + 1 };
        if rt.idle_steps > MAX_IDLE_STEPS {
            let sent = rt.t.sent_total();
            rt.t.fail(SendError::Io {
                what: "send step",
                sent,
                source: std::io::Error::other("no progress after many steps"),
            });
        }
        if rt.idle() {
            self.send_step(key);
        }
    }

    /// Decides and submits the next step of a transfer with nothing in flight.
    fn send_step(&mut self, key: usize) {
        let Some(rt) = self.sends.transfers.get_mut(key) else {
            return;
        };
        debug_assert!(rt.idle());
        if rt.t.failed() || rt.t.is_complete() {
            self.send_finish(key);
            return;
        }
        let socket = types::Fd(rt.t.job().socket.as_raw_fd());
        if rt.needs_poll {
            rt.needs_poll = false;
            let entry = opcode::PollAdd::new(socket, libc::POLLOUT as u32)
                .build()
                .user_data(user_data(key, POLL));
            return self.send_push(key, &[entry]);
        }
        if !rt.t.header_rest().is_empty() {
            let header = rt.t.header_rest();
            let mut flags = libc::MSG_NOSIGNAL;
            if rt.t.more_after_header() {
                flags |= libc::MSG_MORE;
            }
            let entry = opcode::Send::new(socket, header.as_ptr(), header.len() as u32)
                .flags(flags)
                .build()
                .user_data(user_data(key, HEADER));
            // Linked ahead of the body's first chain when the body starts now: a short or
            // failed header send breaks the link (the rest gets `-ECANCELED`), and the next
            // step sends the header's rest.
            if rt.t.body_follows() && rt.t.in_between() == 0 {
                match rt.t.job().strategy {
                    SendStrategy::Splice => return self.splice_step(key, Some(entry)),
                    SendStrategy::Copy => return self.copy_step(key, Some(entry)),
                    SendStrategy::Sendfile => {}
                }
            }
            return self.send_push(key, &[entry]);
        }
        match rt.t.job().strategy {
            SendStrategy::Splice => self.splice_step(key, None),
            SendStrategy::Copy => self.copy_step(key, None),
            SendStrategy::Sendfile => self.syscall_step(key),
        }
    }

    /// Pushes `body` (a linked chain), after `header` linked ahead of it if there is one.
    fn send_push_after(
        &mut self,
        key: usize,
        header: Option<squeue::Entry>,
        body: [squeue::Entry; 2],
    ) {
        match header {
            Some(header) => {
                let [first, second] = body;
                let chain = [header.flags(squeue::Flags::IO_LINK), first, second];
                self.send_push(key, &chain);
            }
            None => self.send_push(key, &body),
        }
    }

    fn splice_step(&mut self, key: usize, header: Option<squeue::Entry>) {
        let transfers = self.sends.transfers.len();
        let Some(rt) = self.sends.transfers.get_mut(key) else {
            return;
        };
        if rt.t.pipe.is_none() {
            match self.sends.book.pipes.take() {
                Ok(Some(pipe)) => rt.t.pipe = Some(pipe),
                Ok(None) => {
                    if let Some(header) = header {
                        // No pipe yet: the header goes alone; the body's step waits for one.
                        return self.send_push(key, &[header]);
                    }
                    self.sends.book.waiting_pipe.push_back(key);
                    return;
                }
                Err(e) => {
                    let sent = rt.t.sent_total();
                    rt.t.fail(SendError::Io {
                        what: "pipe creation",
                        sent,
                        source: e,
                    });
                    return self.send_finish(key);
                }
            }
        }
        let Some(pipe) = rt.t.pipe.as_ref() else {
            return;
        };
        let socket = types::Fd(rt.t.job().socket.as_raw_fd());
        let (pipe_read, pipe_write) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
        let move_flag = libc::SPLICE_F_MOVE;
        if rt.t.in_between() > 0 {
            // Bytes left in the pipe by a short send: send them first.
            let mut flags = move_flag;
            if rt.t.more_after(rt.t.untaken()) {
                flags |= libc::SPLICE_F_MORE;
            }
            let entry = opcode::Splice::new(
                types::Fd(pipe_read),
                -1,
                socket,
                -1,
                rt.t.in_between() as u32,
            )
            .flags(flags)
            .build()
            .user_data(user_data(key, SPLICE_OUT));
            return self.send_push(key, &[entry]);
        }
        let position = rt.t.take_position();
        let pair_bytes = splice_pair_bytes(pipe.capacity, transfers);
        let len = pipe.chunk_at(position, rt.t.untaken().min(pair_bytes)) as u32;
        let mut out_flags = move_flag;
        if rt
            .t
            .more_after(rt.t.untaken().saturating_sub(u64::from(len)))
        {
            out_flags |= libc::SPLICE_F_MORE;
        }
        let Some(file) = rt.t.file().map(|f| types::Fd(f.as_raw_fd())) else {
            return self.send_no_file(key);
        };
        let chain = [
            opcode::Splice::new(file, position as i64, types::Fd(pipe_write), -1, len)
                .flags(move_flag)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(user_data(key, SPLICE_IN)),
            opcode::Splice::new(types::Fd(pipe_read), -1, socket, -1, len)
                .flags(out_flags)
                .build()
                .user_data(user_data(key, SPLICE_OUT)),
        ];
        self.send_push_after(key, header, chain);
    }

    fn copy_step(&mut self, key: usize, header: Option<squeue::Entry>) {
        let chunk_bytes = self.sends.book.config.chunk_bytes;
        let sends = &mut self.sends;
        let Some(rt) = sends.transfers.get_mut(key) else {
            return;
        };
        let socket = types::Fd(rt.t.job().socket.as_raw_fd());
        let mut flags = libc::MSG_NOSIGNAL;
        if rt.t.in_between() > 0 {
            // Bytes read and not yet sent (a short send).
            if rt.t.more_after(rt.t.untaken()) {
                flags |= libc::MSG_MORE;
            }
            let Some(buf) = rt.staging.as_ref() else {
                return;
            };
            let start = rt.staged - rt.t.in_between() as usize;
            let rest = &buf[start..rt.staged];
            let entry = opcode::Send::new(socket, rest.as_ptr(), rest.len() as u32)
                .flags(flags)
                .build()
                .user_data(user_data(key, SEND));
            return self.send_push(key, &[entry]);
        }
        let len = rt.t.untaken().min(chunk_bytes as u64) as usize;
        // One buffer for every chunk of the transfer: nothing in flight refers to it now.
        let buf = rt.staging.get_or_insert_with(|| {
            self.pool
                .take_pooled(chunk_bytes)
                .or_else(|| sends.spare_staging.pop())
                .unwrap_or_else(|| ReadBuf::from_vec(vec![0; chunk_bytes]))
        });
        debug_assert!(len <= buf.len());
        if rt.t.more_after(rt.t.untaken().saturating_sub(len as u64)) {
            flags |= libc::MSG_MORE;
        }
        let ptr = buf.as_mut_ptr();
        let fixed_index = buf.fixed_index();
        let Some(file) = rt.t.file().map(|f| types::Fd(f.as_raw_fd())) else {
            return self.send_no_file(key);
        };
        let position = rt.t.take_position();
        let read = match fixed_index {
            Some(index) => opcode::ReadFixed::new(file, ptr, len as u32, index)
                .offset(position)
                .build(),
            None => opcode::Read::new(file, ptr, len as u32)
                .offset(position)
                .build(),
        };
        let chain = [
            read.flags(squeue::Flags::IO_LINK)
                .user_data(user_data(key, READ)),
            opcode::Send::new(socket, ptr.cast_const(), len as u32)
                .flags(flags)
                .build()
                .user_data(user_data(key, SEND)),
        ];
        self.send_push_after(key, header, chain);
        self.sends.copy_bytes_unsubmitted += len;
        if self.sends.copy_bytes_unsubmitted >= COPY_BYTES_PER_SUBMIT {
            self.submit_now();
        }
    }

    /// Sendfile: system calls on the shard thread, a ring poll when the socket is full.
    fn syscall_step(&mut self, key: usize) {
        let config = self.sends.book.config;
        let Some(rt) = self.sends.transfers.get_mut(key) else {
            return;
        };
        let before = rt.t.sent_total();
        let progress = advance(
            &mut rt.t,
            &mut self.sends.book.pipes,
            &config,
            SYSCALL_BUDGET,
        );
        if rt.t.sent_total() != before {
            rt.idle_steps = 0;
        }
        match progress {
            Progress::Done => self.send_finish(key),
            Progress::Yield => self.sends.book.ready.push_back(key),
            Progress::NoPipe => self.sends.book.waiting_pipe.push_back(key),
            Progress::WouldBlock => {
                rt.needs_poll = true;
                self.send_step(key);
            }
        }
    }

    /// Unreachable by construction (`Transfer::new` fails a non-empty range without a file).
    fn send_no_file(&mut self, key: usize) {
        if let Some(rt) = self.sends.transfers.get_mut(key) {
            let (sent, missing) = (rt.t.sent_total(), rt.t.untaken());
            rt.t.fail(SendError::FileShort { sent, missing });
        }
        self.send_finish(key);
    }

    fn send_push(&mut self, key: usize, chain: &[squeue::Entry]) {
        if let Some(rt) = self.sends.transfers.get_mut(key) {
            for entry in chain {
                rt.ops |= 1 << (entry.get_user_data() & ((1 << KIND_BITS) - 1));
            }
        }
        self.push_chain(chain);
    }

    fn send_finish(&mut self, key: usize) {
        let Some(mut rt) = self.sends.transfers.try_remove(key) else {
            return;
        };
        debug_assert!(rt.idle(), "a transfer finishes with nothing in flight");
        // Nothing in flight refers to the staging buffer: a pooled one returns to the pool, a
        // heap one is kept for the next copy transfer.
        if let Some(buf) = rt.staging.take()
            && !buf.is_pooled()
            && self.sends.spare_staging.len() < self.sends.book.config.max_transfers
        {
            self.sends.spare_staging.push(buf);
        }
        self.sends.book.finish(rt.t);
        if let Some(next) = self.sends.waiting_slot.pop_front() {
            self.send_start(next);
        }
    }
}

/// Applies one completion to a transfer's counters.
fn record(rt: &mut RingTransfer, kind: u64, res: i32) {
    let errno = -res;
    let ignorable = |errno: i32| {
        // Cancelled by a broken link or by us (an error is then already recorded), or
        // interrupted: the next step retries or ends the transfer.
        errno == libc::ECANCELED || errno == libc::EINTR
    };
    match kind {
        HEADER | SEND | SPLICE_OUT => match res {
            1.. => match kind {
                HEADER => rt.t.record_header(res as usize),
                _ => rt.t.record_sent(res as u64),
            },
            0 => {
                let sent = rt.t.sent_total();
                rt.t.fail(SendError::Io {
                    what: "socket write",
                    sent,
                    source: std::io::ErrorKind::WriteZero.into(),
                });
            }
            _ if errno == libc::EAGAIN => rt.needs_poll = true,
            _ if ignorable(errno) => {}
            _ => {
                let sent = rt.t.sent_total();
                rt.t.fail(SendError::socket(errno, sent));
            }
        },
        SPLICE_IN | READ => match res {
            1.. => {
                if kind == READ {
                    rt.staged = res as usize;
                }
                rt.t.record_taken(res as u64);
            }
            0 => {
                let (sent, missing) = (rt.t.sent_total(), rt.t.untaken());
                rt.t.fail(SendError::FileShort { sent, missing });
            }
            _ if ignorable(errno) || errno == libc::EAGAIN => {}
            _ => {
                let sent = rt.t.sent_total();
                rt.t.fail(SendError::Io {
                    what: if kind == READ {
                        "read of the segment file"
                    } else {
                        "splice from the segment file"
                    },
                    sent,
                    source: std::io::Error::from_raw_os_error(errno),
                });
            }
        },
        // A poll's result shows in the next write (an error or hang-up fails it there).
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::driver::Driver;
    use rill_send::SendJob;
    use std::os::unix::net::UnixStream;

    fn driver() -> UringDriver {
        let closed = Arc::new(crate::files::ClosedFiles::default());
        let std_disk: Arc<dyn rill_segment::disk::Disk> =
            Arc::new(rill_segment::disk::StdDisk::new());
        let disk: Arc<dyn rill_segment::disk::Disk> = Arc::new(crate::files::NotifyingDisk::new(
            std_disk,
            Arc::clone(&closed),
        ));
        let doorbell = Arc::new(Doorbell::new().unwrap());
        UringDriver::new(
            disk,
            closed,
            doorbell,
            super::super::UringOptions::default(),
        )
        .expect("io_uring is available where the tests run")
    }

    /// Issue #15, item 4: an expired transfer whose entry completes before its `AsyncCancel`
    /// does keeps its slot, and so its `user_data`, until the cancel completes; a new transfer
    /// cannot take the slot and be hit by the old cancel.
    #[test]
    fn an_expired_transfer_keeps_its_slot_until_its_cancellation_completes() {
        let mut driver = driver();
        let (tx, rx) = UnixStream::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        // A header larger than the socket holds, to a peer that does not read: an entry stays
        // in flight.
        let job = SendJob {
            socket: tx.into(),
            socket_nonblocking: true,
            file: None,
            position: 0,
            len: 0,
            header: bytes::Bytes::from(vec![7u8; 8 << 20]),
            strategy: SendStrategy::Copy,
            more_follows: false,
        };
        driver.start_send(Transfer::new(1, job));
        let mut out = Vec::new();
        // Bounded: the socket fills within a few steps.
        for _ in 0..100 {
            driver.poll(&mut out);
        }
        let (key, ops) = {
            let (key, rt) = driver.sends.transfers.iter().next().expect("still sending");
            (key, rt.ops)
        };
        assert_ne!(ops, 0, "an entry in flight");
        driver.expire_sends(true);
        // The entry's completion arrives before the cancel is even submitted.
        for kind in (0..8u64).filter(|kind| ops & (1 << kind) != 0) {
            driver.send_complete(user_data(key, kind), -libc::ECANCELED);
        }
        assert!(
            driver.sends.transfers.contains(key),
            "the slot is held while its cancel is in flight"
        );
        // The real completions (the entry's, then the cancel's) end it.
        let mut finished = Vec::new();
        for _ in 0..1000 {
            driver.poll(&mut out);
            driver.finished_sends(&mut finished);
            if !finished.is_empty() {
                break;
            }
        }
        assert_eq!(finished.len(), 1);
        assert!(finished[0].result.is_err());
        assert!(!driver.sends.transfers.contains(key));
        drop(rx);
    }

    #[test]
    fn a_lone_transfer_splices_a_pipes_worth_and_many_share_it_down_to_the_floor() {
        let pipe = 1 << 20;
        assert_eq!(splice_pair_bytes(pipe, 0), 1 << 20);
        assert_eq!(splice_pair_bytes(pipe, 1), 1 << 20);
        assert_eq!(splice_pair_bytes(pipe, 2), 512 << 10);
        assert_eq!(splice_pair_bytes(pipe, 100), MIN_SPLICE_PAIR_BYTES);
        // A pipe smaller than the floor: `Pipe::chunk_at` caps the pair at what it holds.
        assert_eq!(splice_pair_bytes(64 << 10, 1), MIN_SPLICE_PAIR_BYTES);
    }
}
