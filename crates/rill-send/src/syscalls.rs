//! The system-call engine: advances a transfer with non-blocking calls until it is done, the
//! socket is full, or its budget is spent. The epoll driver runs it on the shard thread (and
//! waits for `EPOLLOUT` when the socket is full); [`crate::BlockingSenders`] runs it on its
//! threads for sockets in blocking mode.
//!
//! Socket writes of the header and of copied bytes use `MSG_DONTWAIT`, so they never block even
//! on a blocking socket; `sendfile` and `splice` to a socket follow the socket's own mode, which
//! is why blocking sockets go to the blocking pool.

use crate::error::SendError;
use crate::pipe::PipePool;
use crate::strategy::{SendConfig, SendStrategy};
use crate::transfer::Transfer;
use rustix::io::Errno;
use rustix::net::SendFlags;
use rustix::pipe::SpliceFlags;

/// Where [`advance`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The transfer finished (its result is set: success or error); call
    /// [`Transfer::finish`].
    Done,
    /// The socket is full: call again once it is writable.
    WouldBlock,
    /// A splice transfer needs a pipe and the pool has none free: call again once one returns.
    NoPipe,
    /// The byte budget is spent (fairness between transfers): call again soon.
    Yield,
}

/// Retries of one call interrupted by a signal before it counts as an error.
const MAX_EINTR: u32 = 16;

/// Advances `t` by at most about `budget` file bytes (always at least one step).
pub fn advance(
    t: &mut Transfer,
    pipes: &mut PipePool,
    config: &SendConfig,
    budget: u64,
) -> Progress {
    let start = t.sent_total();
    let mut interrupts = 0u32;
    // Each pass makes progress, finishes, or returns; interrupts are bounded.
    loop {
        if t.failed() || t.is_complete() {
            return Progress::Done;
        }
        if t.sent_total() - start >= budget.max(1) {
            return Progress::Yield;
        }
        let step = if t.header_rest().is_empty() {
            match t.job().strategy {
                SendStrategy::Splice => splice_step(t, pipes, config),
                SendStrategy::Sendfile => sendfile_step(t, config),
                SendStrategy::Copy => copy_step(t, config),
            }
        } else {
            header_step(t)
        };
        match step {
            Step::Moved => interrupts = 0,
            Step::Blocked(p) => return p,
            Step::Interrupted if interrupts < MAX_EINTR => interrupts += 1,
            Step::Interrupted => {
                let sent = t.sent_total();
                t.fail(SendError::Io {
                    what: "send step",
                    sent,
                    source: Errno::INTR.into(),
                });
            }
        }
    }
}

enum Step {
    Moved,
    Blocked(Progress),
    Interrupted,
}

fn header_step(t: &mut Transfer) -> Step {
    let mut flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    if t.more_after_header() {
        flags |= SendFlags::MORE;
    }
    match rustix::net::send(&t.job().socket, t.header_rest(), flags) {
        Ok(0) => zero_write(t),
        Ok(n) => {
            t.record_header(n);
            Step::Moved
        }
        Err(e) => socket_error(t, e),
    }
}

fn sendfile_step(t: &mut Transfer, config: &SendConfig) -> Step {
    let mut offset = t.send_position();
    let count = t.untaken().min(config.chunk_bytes as u64) as usize;
    let Some(file) = t.file() else {
        return no_file(t);
    };
    match rustix::fs::sendfile(&t.job().socket, file, Some(&mut offset), count) {
        Ok(0) => {
            file_short(t);
            Step::Moved
        }
        Ok(n) => {
            t.record_sent_from_file(n as u64);
            Step::Moved
        }
        // sendfile reports a socket error and a file error alike; socket ones are the
        // likely ones mid-transfer.
        Err(e) => socket_error(t, e),
    }
}

fn splice_step(t: &mut Transfer, pipes: &mut PipePool, config: &SendConfig) -> Step {
    if t.pipe.is_none() {
        match pipes.take() {
            Ok(Some(pipe)) => t.pipe = Some(pipe),
            Ok(None) => return Step::Blocked(Progress::NoPipe),
            Err(e) => {
                let sent = t.sent_total();
                t.fail(SendError::Io {
                    what: "pipe creation",
                    sent,
                    source: e,
                });
                return Step::Moved;
            }
        }
    }
    let Some(pipe) = t.pipe.as_ref() else {
        return Step::Blocked(Progress::NoPipe);
    };
    if t.in_between() == 0 {
        // Fill the empty pipe from the file.
        let mut offset = t.take_position();
        let len = pipe.chunk_at(offset, t.untaken().min(config.chunk_bytes as u64));
        let Some(file) = t.file() else {
            return no_file(t);
        };
        match rustix::pipe::splice(
            file,
            Some(&mut offset),
            &pipe.write,
            None,
            len,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        ) {
            Ok(0) => file_short(t),
            Ok(n) => t.record_taken(n as u64),
            Err(Errno::INTR) => return Step::Interrupted,
            Err(e) => {
                let sent = t.sent_total();
                t.fail(SendError::Io {
                    what: "splice from the segment file",
                    sent,
                    source: e.into(),
                });
            }
        }
        return Step::Moved;
    }
    let mut flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    if t.more_after(t.untaken()) {
        flags |= SpliceFlags::MORE;
    }
    let len = t.in_between() as usize;
    match rustix::pipe::splice(&pipe.read, None, &t.job().socket, None, len, flags) {
        Ok(0) => zero_write(t),
        Ok(n) => {
            t.record_sent(n as u64);
            Step::Moved
        }
        Err(e) => socket_error(t, e),
    }
}

fn copy_step(t: &mut Transfer, config: &SendConfig) -> Step {
    if t.in_between() == 0 {
        let len = t.untaken().min(config.chunk_bytes as u64) as usize;
        if t.staging.len() < len {
            t.staging.resize(len, 0);
        }
        let position = t.take_position();
        let mut staging = std::mem::take(&mut t.staging);
        let Some(file) = t.file() else {
            t.staging = staging;
            return no_file(t);
        };
        let read = rustix::io::pread(file, &mut staging[..len], position);
        t.staging = staging;
        match read {
            Ok(0) => file_short(t),
            Ok(n) => {
                t.staged_end = n;
                t.record_taken(n as u64);
            }
            Err(Errno::INTR) => return Step::Interrupted,
            Err(e) => {
                let sent = t.sent_total();
                t.fail(SendError::Io {
                    what: "read of the segment file",
                    sent,
                    source: e.into(),
                });
            }
        }
        return Step::Moved;
    }
    let start = t.staged_end - t.in_between() as usize;
    let mut flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    if t.more_after(t.untaken()) {
        flags |= SendFlags::MORE;
    }
    match rustix::net::send(&t.job().socket, &t.staging[start..t.staged_end], flags) {
        Ok(0) => zero_write(t),
        Ok(n) => {
            t.record_sent(n as u64);
            Step::Moved
        }
        Err(e) => socket_error(t, e),
    }
}

/// A socket write that moved nothing without an error: fail rather than loop.
fn zero_write(t: &mut Transfer) -> Step {
    let sent = t.sent_total();
    t.fail(SendError::Io {
        what: "socket write",
        sent,
        source: std::io::ErrorKind::WriteZero.into(),
    });
    Step::Moved
}

/// Unreachable by construction ([`Transfer::new`] fails a non-empty range without a file).
fn no_file(t: &mut Transfer) -> Step {
    file_short(t);
    Step::Moved
}

fn file_short(t: &mut Transfer) {
    let sent = t.sent_total();
    let missing = t.untaken();
    t.fail(SendError::FileShort { sent, missing });
}

fn socket_error(t: &mut Transfer, e: Errno) -> Step {
    match e {
        Errno::AGAIN => Step::Blocked(Progress::WouldBlock),
        Errno::INTR => Step::Interrupted,
        e => {
            let sent = t.sent_total();
            t.fail(SendError::socket(e.raw_os_error(), sent));
            Step::Moved
        }
    }
}
