//! A segment's index files on disk (FORMAT.md: `.index`, `.timeindex`): written whole and
//! synced, at a seal, at recovery and for a cleaning's new segments. Reading them back is the
//! index cache's (`partition/indexes`).

use crate::disk::{self, Disk, OpenMode};
use crate::index::{OffsetIndex, TimeIndex};
use crate::segment::{self, FileKind, Segment};
use std::path::{Path, PathBuf};

/// Writes a resident segment's two index files whole and syncs them (a segment whose indexes
/// are on disk has them written already).
pub(crate) fn write_index_files(
    disk: &dyn Disk,
    dir: &Path,
    segment: &Segment,
) -> Result<(), (PathBuf, std::io::Error)> {
    let Some(indexes) = segment.resident() else {
        return Ok(());
    };
    write_indexes(
        disk,
        dir,
        segment.base_offset,
        &indexes.offset,
        &indexes.time,
    )
}

/// Writes the index files of the segment at `base_offset` whole and syncs them.
pub(crate) fn write_indexes(
    disk: &dyn Disk,
    dir: &Path,
    base_offset: i64,
    offset_index: &OffsetIndex,
    time_index: &TimeIndex,
) -> Result<(), (PathBuf, std::io::Error)> {
    write_indexes_named(disk, dir, base_offset, offset_index, time_index, "")
}

/// [`write_indexes`] under the segment's names followed by `suffix` (a cleaning's files).
pub(crate) fn write_indexes_named(
    disk: &dyn Disk,
    dir: &Path,
    base_offset: i64,
    offset_index: &OffsetIndex,
    time_index: &TimeIndex,
    suffix: &str,
) -> Result<(), (PathBuf, std::io::Error)> {
    let files = [
        (FileKind::OffsetIndex, offset_index.encode()),
        (FileKind::TimeIndex, time_index.encode()),
    ];
    for (kind, bytes) in files {
        let path = dir.join(format!("{}{suffix}", segment::file_name(base_offset, kind)));
        let file = disk
            .open(&path, OpenMode::Create)
            .map_err(|e| (path.clone(), e))?;
        let result = disk::write_all_at(disk, file, 0, &[&bytes])
            .and_then(|()| disk.set_len(file, bytes.len() as u64))
            .and_then(|()| disk.fdatasync(file));
        disk.close(file);
        result.map_err(|e| (path, e))?;
    }
    Ok(())
}
