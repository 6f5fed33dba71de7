//! # rill-uring
//!
//! The I/O executors of rill's shards. The segment layer writes appends into the page cache
//! itself and asks for fdatasyncs ([`rill_segment::partition::SyncTicket`]); a shard starts
//! those fdatasyncs, its reads and its transfers to sockets on a [`Driver`], which hands back
//! each operation's [`Completion`] on its own, as it arrives:
//!
//! - [`UringDriver`] puts everything on one io_uring (group commit: the fdatasyncs of many
//!   partitions in one `io_uring_enter`), with registered files and reads into registered
//!   (fixed) buffers;
//! - [`SyscallDriver`] is the epoll baseline: `fdatasync` on a small thread pool (one inline
//!   when it is alone), `pread`, and epoll to sleep;
//! - [`DiskDriver`] runs the operations on any [`rill_segment::disk::Disk`], for instance the
//!   simulated disk of the tests.
//!
//! A shard sleeps in [`Driver::park`] until an operation completes, its [`Doorbell`] rings (a
//! new request) or a timeout.
//!
//! Buffer ownership: every buffer the kernel may touch (read buffers, transfer headers and
//! staging buffers) is owned by the in-flight operation's entry in the driver until the
//! completion for it arrives, whatever the caller does meanwhile.

mod baseline;
mod buffers;
mod doorbell;
mod driver;
mod error;
mod files;
mod probe;
mod ring;
mod send_book;
mod sim;
mod syscall_sends;
mod uring;

pub use baseline::{SyscallDriver, SyscallOptions};
pub use buffers::{BufferPool, BufferPoolConfig, ReadBuf};
pub use doorbell::Doorbell;
pub use driver::{Completion, Driver, DriverKind, DriverStats, ReadOp};
pub use error::DriverError;
pub use files::{ClosedFiles, NotifyingDisk};
pub use probe::buffered_writes_complete_inline;
pub use ring::{RingConfig, RingFeatures, TaskrunMode};
pub use sim::DiskDriver;
pub use uring::{UringDriver, UringOptions};

pub use rill_send;
