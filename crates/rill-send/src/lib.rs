//! # rill-send
//!
//! The send path: a byte range of a segment file (whole record batches), optionally preceded by
//! a header, moved to a stream socket. Three [`SendStrategy`]s put the same bytes on the wire:
//!
//! - [`SendStrategy::Splice`]: file → pipe → socket with `splice`, so the bytes go from the page
//!   cache to the socket without a copy through user space. The io_uring driver links the two
//!   splices of each pipe-sized chunk in one submission;
//! - [`SendStrategy::Sendfile`]: `sendfile(2)`, what Kafka does (the baseline);
//! - [`SendStrategy::Copy`]: `pread` into a buffer, then `send` (for comparison).
//!
//! This crate holds what every executor shares: the [`Transfer`] (a send's progress and
//! result), the bounded [`PipePool`], the non-blocking system-call engine ([`advance`]) that the
//! epoll driver runs on the shard thread, and [`BlockingSenders`], the small thread pool for
//! sockets in blocking mode (whose `sendfile`/`splice` would otherwise block a shard). The
//! io_uring form lives in `rill-uring`, which runs it on the shard's ring.
//!
//! A transfer owns duplicates of the socket and segment file descriptors, so a caller that
//! closes its socket or retention that deletes the segment cannot make the kernel touch a
//! reused descriptor; the deleted segment's pages stay readable until the transfer ends.

mod blocking;
mod error;
mod pipe;
mod socket;
mod strategy;
mod syscalls;
mod transfer;

pub use blocking::{BLOCKING_CHUNK_BYTES, BlockingSenders};
pub use error::SendError;
pub use pipe::{Pipe, PipePool, PipeStats};
pub use socket::{SocketId, check_stream_socket, is_nonblocking};
pub use strategy::{SendConfig, SendStrategy};
pub use syscalls::{Progress, advance};
pub use transfer::{Finished, SendJob, Transfer};
