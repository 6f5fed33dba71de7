//! A transfer: what to send (header, then a byte range of a file) and how far it got.
//!
//! Progress is three counters: header bytes sent, file bytes taken (spliced into the pipe or
//! read into the staging buffer) and file bytes sent. `taken - sent` bytes sit in between, in
//! the pipe or the buffer; the counters only grow, and `sent <= taken <= len` always holds.

use crate::error::SendError;
use crate::pipe::{Pipe, PipePool};
use crate::strategy::SendStrategy;
use bytes::Bytes;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// What a shard asks a driver to send.
pub struct SendJob {
    /// A duplicate of the caller's socket descriptor, owned by the transfer.
    pub socket: OwnedFd,
    /// Whether the socket is in non-blocking mode.
    pub socket_nonblocking: bool,
    /// A duplicate of the segment file's descriptor, held until the transfer ends (`None`
    /// when the range is empty and only the header goes out).
    pub file: Option<OwnedFd>,
    /// First byte of the range in the file.
    pub position: u64,
    /// Bytes of the range (whole batches).
    pub len: u64,
    /// Bytes written before the range (may be empty).
    pub header: Bytes,
    /// How the range's bytes move.
    pub strategy: SendStrategy,
    /// Another send to the socket starts as soon as this one ends (an entry of a
    /// list that is not its last): its last piece too is sent with `MSG_MORE`, so the kernel
    /// may put the two in one segment and wake the receiver once. Not for `Sendfile`, which
    /// takes no flags.
    pub more_follows: bool,
}

impl fmt::Debug for SendJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendJob")
            .field("socket", &self.socket.as_raw_fd())
            .field("socket_nonblocking", &self.socket_nonblocking)
            .field("file", &self.file.as_ref().map(AsRawFd::as_raw_fd))
            .field("position", &self.position)
            .field("len", &self.len)
            .field("header_len", &self.header.len())
            .field("strategy", &self.strategy)
            .field("more_follows", &self.more_follows)
            .finish()
    }
}

/// What a driver hands back for a finished transfer.
#[derive(Debug)]
pub struct Finished {
    /// The transfer's token.
    pub token: u64,
    /// Bytes sent (header included), or why not.
    pub result: Result<u64, SendError>,
}

/// A send in progress, or finished with its [`Transfer::result`].
#[derive(Debug)]
pub struct Transfer {
    /// The shard's handle for this transfer.
    pub token: u64,
    job: SendJob,
    header_sent: usize,
    taken: u64,
    sent: u64,
    /// The pipe of a splice transfer, once it has one.
    pub pipe: Option<Pipe>,
    /// Staging buffer of a copy transfer done with system calls: `taken - sent` unsent bytes
    /// end at `staged_end`.
    pub staging: Vec<u8>,
    /// End of the staged bytes in `staging`.
    pub staged_end: usize,
    last_progress: Instant,
    result: Option<Result<u64, SendError>>,
}

impl Transfer {
    /// A transfer of `job`, not started.
    pub fn new(token: u64, job: SendJob) -> Self {
        let missing_file = job.file.is_none() && job.len > 0;
        let mut t = Self {
            token,
            job,
            header_sent: 0,
            taken: 0,
            sent: 0,
            pipe: None,
            staging: Vec::new(),
            staged_end: 0,
            last_progress: Instant::now(),
            result: None,
        };
        if missing_file {
            t.fail(SendError::Io {
                what: "send set-up",
                sent: 0,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a non-empty range needs a file",
                ),
            });
        }
        t
    }

    /// What is being sent.
    pub fn job(&self) -> &SendJob {
        &self.job
    }

    /// The segment file. A non-empty range always has one ([`Transfer::new`] fails it
    /// otherwise), so body steps can rely on it.
    pub fn file(&self) -> Option<&OwnedFd> {
        self.job.file.as_ref()
    }

    /// Header bytes not yet sent.
    pub fn header_rest(&self) -> &[u8] {
        &self.job.header[self.header_sent..]
    }

    /// Whether bytes of the file range are still to be sent (after the header).
    pub fn body_follows(&self) -> bool {
        self.sent < self.job.len
    }

    /// Whether the socket gets more bytes right after a piece of the header (`MSG_MORE`):
    /// the file range, or the next send (`SendJob::more_follows`).
    pub fn more_after_header(&self) -> bool {
        self.body_follows() || self.job.more_follows
    }

    /// Whether the socket gets more bytes right after a piece of the range that leaves
    /// `untaken_after` bytes of it to take (`MSG_MORE`).
    pub fn more_after(&self, untaken_after: u64) -> bool {
        untaken_after > 0 || self.job.more_follows
    }

    /// Bytes taken from the file and not yet sent (in the pipe or staging buffer).
    pub fn in_between(&self) -> u64 {
        self.taken - self.sent
    }

    /// Bytes of the range not yet taken from the file.
    pub fn untaken(&self) -> u64 {
        self.job.len - self.taken
    }

    /// File position of the next byte to take.
    pub fn take_position(&self) -> u64 {
        self.job.position + self.taken
    }

    /// File position of the next byte to send (sendfile sends straight from the file).
    pub fn send_position(&self) -> u64 {
        self.job.position + self.sent
    }

    /// Bytes of the range sent.
    pub fn body_sent(&self) -> u64 {
        self.sent
    }

    /// Bytes written to the socket so far, header included.
    pub fn sent_total(&self) -> u64 {
        self.header_sent as u64 + self.sent
    }

    /// Whether every byte reached the socket.
    pub fn is_complete(&self) -> bool {
        self.header_sent == self.job.header.len() && self.sent == self.job.len
    }

    /// Records `n` header bytes sent.
    pub fn record_header(&mut self, n: usize) {
        debug_assert!(n <= self.header_rest().len());
        self.header_sent += n.min(self.header_rest().len());
        self.last_progress = Instant::now();
    }

    /// Records `n` file bytes taken into the pipe or buffer.
    pub fn record_taken(&mut self, n: u64) {
        debug_assert!(n <= self.untaken());
        self.taken += n.min(self.untaken());
        self.last_progress = Instant::now();
    }

    /// Records `n` file bytes sent from the pipe or buffer.
    pub fn record_sent(&mut self, n: u64) {
        debug_assert!(n <= self.in_between());
        self.sent += n.min(self.in_between());
        self.last_progress = Instant::now();
    }

    /// Records `n` bytes sent straight from the file (`sendfile`: taken and sent at once).
    pub fn record_sent_from_file(&mut self, n: u64) {
        debug_assert!(self.in_between() == 0 && n <= self.untaken());
        let n = n.min(self.untaken());
        self.taken += n;
        self.sent += n;
        self.last_progress = Instant::now();
    }

    /// When the transfer last moved a byte (or started).
    pub fn last_progress(&self) -> Instant {
        self.last_progress
    }

    /// Ends the transfer with `error` (the first error wins).
    pub fn fail(&mut self, error: SendError) {
        if self.result.is_none() {
            self.result = Some(Err(error));
        }
    }

    /// Ends the transfer with `error`, replacing whatever was recorded (an error that was a
    /// consequence of this one, or a success made void by it).
    pub fn fail_instead(&mut self, error: SendError) {
        self.result = Some(Err(error));
    }

    /// Whether an error was recorded (the transfer stops at its next step).
    pub fn failed(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }

    /// Ends the transfer: records success if nothing failed, and returns its pipe to `pipes`
    /// (closed instead if bytes were left in it).
    pub fn finish(&mut self, pipes: &mut PipePool) {
        if self.result.is_none() {
            debug_assert!(self.is_complete());
            self.result = Some(Ok(self.sent_total()));
        }
        if let Some(pipe) = self.pipe.take() {
            pipes.give_back(pipe, self.in_between());
        }
        self.staging = Vec::new();
    }

    /// The outcome: bytes sent (header included), or why not. `None` until finished.
    pub fn result(&self) -> Option<&Result<u64, SendError>> {
        self.result.as_ref()
    }

    /// The outcome of a finished transfer (its descriptors close here). A transfer without a
    /// result was never finished: it counts as cancelled.
    pub fn into_finished(mut self) -> Finished {
        let sent = self.sent_total();
        Finished {
            token: self.token,
            result: self
                .result
                .take()
                .unwrap_or(Err(SendError::Cancelled { sent })),
        }
    }
}
