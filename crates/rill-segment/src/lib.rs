//! # rill-segment
//!
//! The storage format and the single-partition log logic of rill: Kafka RecordBatch v2 batches
//! ([`batch`]), segment files with sparse offset and time indexes ([`index`], [`segment`]),
//! checkpoints ([`checkpoint`]), crash recovery ([`recovery`]), and the partition log itself
//! ([`partition`]), which writes appends at once into the page cache and leaves the
//! fdatasyncs that make them durable to an executor ([`partition::SyncTicket`]).
//!
//! All file access goes through the [`disk::Disk`] trait (the `rill-disk` crate), with a real
//! implementation ([`disk::StdDisk`]) and, as test equipment in the `rill-sim` crate, a
//! deterministic simulated one with power cuts and a fault model, on which recovery is
//! property-tested. See `docs/ARCHITECTURE.md` and `docs/FORMAT.md`.

/// Kafka RecordBatch v2 (the `rill-format` crate's codec, re-exported).
pub use rill_format::batch;
pub mod checkpoint;
pub mod compaction;
pub mod config;
/// The file-system boundary (the `rill-disk` crate), re-exported where the segment layer's users
/// have always found it.
pub use rill_disk as disk;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod index;
mod index_files;
pub mod partition;
pub mod producers;
pub mod recovery;
pub mod scan;
pub mod segment;
pub mod watermark;

pub use config::{CleanupPolicy, LogConfig, Preallocate};
pub use error::{Corruption, FailReason, LogError};
pub use partition::{AppendInfo, Durability, Offsets, PartitionLog};
pub use recovery::{OpenOptions, RecoveryReport};
