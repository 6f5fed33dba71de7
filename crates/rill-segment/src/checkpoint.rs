//! The per-partition checkpoint file (docs/FORMAT.md §4): read, and written atomically (temp
//! file, fdatasync, rename, directory fsync). Its encoding is `rill_format::checkpoint`. A torn
//! or missing checkpoint means "scan", never "trust".

use crate::disk::{self, Disk};
use crate::error::LogError;
pub use rill_format::checkpoint::{
    CHECKPOINT_BYTES, CHECKPOINT_FILE, CHECKPOINT_TEMP_FILE, Checkpoint, CheckpointError,
};
use std::path::Path;

/// Reads the checkpoint of the partition in `dir`: `Ok(None)` if there is none, the parse
/// error if it is damaged.
pub fn read(
    disk: &dyn Disk,
    dir: &Path,
) -> Result<Option<Result<Checkpoint, CheckpointError>>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    // A checkpoint longer than this is damaged; read just enough to say so.
    let bytes = disk::read_small_file(disk, &path, CHECKPOINT_BYTES)
        .map_err(|e| LogError::io("read", path, e))?;
    Ok(bytes.map(|b| Checkpoint::parse(&b)))
}

/// Writes the checkpoint atomically and durably.
pub fn write(disk: &dyn Disk, dir: &Path, checkpoint: &Checkpoint) -> Result<(), LogError> {
    let bytes = checkpoint.encode();
    disk::write_file_atomically(disk, dir, CHECKPOINT_FILE, CHECKPOINT_TEMP_FILE, &bytes)
        .map_err(|(op, path, e)| LogError::io(op, path, e))
}
