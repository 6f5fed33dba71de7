//! The cleaner's progress in a compacted partition (docs/FORMAT.md §10): `cleaner.checkpoint`,
//! the first offset not yet cleaned (the clean point), as a [`crate::value_file`] with magic
//! `"RILLCLNP"`. Written atomically after each cleaning is installed; a missing or damaged
//! file means "clean from the start" (more work, never wrong).

use crate::value_file::{self, VALUE_FILE_BYTES, ValueFileError};

/// File name in the partition directory.
pub const CLEAN_POINT_FILE: &str = "cleaner.checkpoint";
/// File name while it is written.
pub const CLEAN_POINT_TEMP_FILE: &str = "cleaner.checkpoint.tmp";
/// Size of the file.
pub const CLEAN_POINT_BYTES: usize = VALUE_FILE_BYTES;
const MAGIC: &[u8; 8] = b"RILLCLNP";

/// Encodes the clean point.
pub fn encode(clean_point: i64) -> [u8; CLEAN_POINT_BYTES] {
    value_file::encode(MAGIC, clean_point)
}

/// Parses the file: the clean point.
pub fn parse(buf: &[u8]) -> Result<i64, ValueFileError> {
    value_file::parse(MAGIC, buf)
}
