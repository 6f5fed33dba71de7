//! # rill-format
//!
//! rill's on-disk formats as I/O-free codecs (docs/FORMAT.md): Kafka RecordBatch v2 batches
//! ([`batch`]: the header, validation on append and on read, records, the builder), the sparse
//! offset and time indexes ([`index`]), and the checkpoint and durable-watermark encodings
//! ([`checkpoint`], [`watermark`]), a topic's stored configuration ([`topic_config`]), and a partition's idempotent-producer
//! state ([`producer_snapshot`]) and the producer ids handed out ([`producer_ids`]). Nothing here opens a file: each codec works on bytes, so it
//! can be read, tested and fuzzed alone (`fuzz`, feature `fuzzing`). The partition state
//! machine, recovery and the files themselves are `rill-segment`'s.

pub mod batch;
pub mod checkpoint;
pub mod clean_point;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod index;
pub mod producer_ids;
pub mod producer_snapshot;
pub mod topic_config;
pub mod value_file;
pub mod watermark;
