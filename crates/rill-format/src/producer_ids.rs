//! The producer-id file (docs/FORMAT.md §9): the first producer id not yet handed out by any
//! run of the log, as a [`crate::value_file`] with magic `"RILLPIDS"`. `rill`'s `producer_ids`
//! module allocates ids in blocks and writes the file (atomically: temp file, fdatasync,
//! rename, directory fsync) before it hands out an id of a new block, so an id is never handed
//! out twice, across crashes too.

use crate::value_file::{self, VALUE_FILE_BYTES, ValueFileError};

/// File name in the data directory.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// File name while it is written.
pub const PRODUCER_IDS_TEMP_FILE: &str = "producer-ids.tmp";
/// Size of the file.
pub const PRODUCER_IDS_BYTES: usize = VALUE_FILE_BYTES;
const MAGIC: &[u8; 8] = b"RILLPIDS";

/// Encodes the next unallocated id.
pub fn encode(next_id: i64) -> [u8; PRODUCER_IDS_BYTES] {
    value_file::encode(MAGIC, next_id)
}

/// Parses the file: the next unallocated id.
pub fn parse(buf: &[u8]) -> Result<i64, ValueFileError> {
    value_file::parse(MAGIC, buf)
}
