//! # rill-uring
//!
//! The I/O executors of rill's shards. The segment layer *plans* I/O: a partition log fills a
//! [`Round`] with vectored writes and fdatasyncs, and a shard collects reads as [`ReadOp`]s. A
//! [`Driver`] runs one shard's batch of plans and records each operation's result in place:
//!
//! - [`UringDriver`] submits the whole batch to one io_uring (group commit: many partitions'
//!   writes and their fdatasyncs in one `io_uring_enter`), with registered files and reads into
//!   registered (fixed) buffers;
//! - [`SyscallDriver`] is the epoll baseline: `pwritev`, `fdatasync` of different files in
//!   parallel on a small thread pool, `pread`, and epoll to sleep;
//! - [`DiskDriver`] runs plans on any [`rill_segment::disk::Disk`], for instance the simulated
//!   disk of the tests.
//!
//! A shard sleeps in [`Driver::park`] until its [`Doorbell`] rings (a new request) or a timeout.
//!
//! Buffer ownership: every buffer the kernel may touch (write payloads, iovec arrays, read
//! buffers) is owned by the in-flight operation's entry in the driver until the completion for
//! it arrives. [`Driver::run`] returns only after every operation it submitted has completed.

mod baseline;
mod buffers;
mod doorbell;
mod driver;
mod error;
mod files;
mod ring;
mod send_book;
mod sim;
mod syscall_sends;
mod uring;

pub use baseline::{SyscallDriver, SyscallOptions};
pub use buffers::{BufferPool, BufferPoolConfig, ReadBuf};
pub use doorbell::Doorbell;
pub use driver::{Driver, DriverKind, DriverStats, ReadOp};
pub use error::DriverError;
pub use files::{ClosedFiles, NotifyingDisk};
pub use ring::{RingConfig, RingFeatures, TaskrunMode};
pub use sim::DiskDriver;
pub use uring::{SyncMode, UringDriver, UringOptions};

pub use rill_send;

pub use rill_segment::plan::Round;
