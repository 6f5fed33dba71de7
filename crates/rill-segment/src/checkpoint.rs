//! The per-partition checkpoint file (docs/FORMAT.md §4): read, and written atomically (temp
//! file, fdatasync, rename, directory fsync). Its encoding is `rill_format::checkpoint`. A torn
//! or missing checkpoint means "scan", never "trust".

use crate::disk::{self, Disk, OpenMode};
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
    let file = match disk.open(&path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("open", path, e)),
    };
    let result = (|| {
        let len = disk.file_len(file)?;
        // A checkpoint longer than this is damaged; read just enough to say so.
        let mut buf = vec![0u8; len.min(CHECKPOINT_BYTES as u64 + 1) as usize];
        disk::read_exact_at(disk, file, 0, &mut buf)?;
        Ok(buf)
    })();
    disk.close(file);
    let bytes = result.map_err(|e| LogError::io("read", path, e))?;
    Ok(Some(Checkpoint::parse(&bytes)))
}

/// Writes the checkpoint atomically and durably.
pub fn write(disk: &dyn Disk, dir: &Path, checkpoint: &Checkpoint) -> Result<(), LogError> {
    let temp = dir.join(CHECKPOINT_TEMP_FILE);
    let file = disk
        .open(&temp, OpenMode::Create)
        .map_err(|e| LogError::io("open", &temp, e))?;
    let bytes = checkpoint.encode();
    let written = disk::write_all_at(disk, file, 0, &[&bytes])
        .and_then(|()| disk.set_len(file, CHECKPOINT_BYTES as u64))
        .and_then(|()| disk.fdatasync(file));
    disk.close(file);
    written.map_err(|e| LogError::io("write checkpoint", &temp, e))?;
    let path = dir.join(CHECKPOINT_FILE);
    disk.rename(&temp, &path)
        .map_err(|e| LogError::io("rename", &path, e))?;
    disk.sync_dir(dir)
        .map_err(|e| LogError::io("sync dir", dir, e))
}
