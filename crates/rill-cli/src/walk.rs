//! Walking one segment file's batches, read-only: what `verify` and `stat` both do.

use anyhow::{Context, Result};
use rill_segment::batch::BatchHeader;
use rill_segment::disk::{Disk, OpenMode, StdDisk};
use rill_segment::scan::{Scanner, Step, Stop};
use std::path::Path;

/// Where a walk ended.
#[derive(Debug)]
pub struct WalkEnd {
    /// Offset after the last valid batch.
    pub next_offset: i64,
    /// Bytes of valid batches (a zero tail after them is not counted).
    pub written_bytes: u64,
    /// Bytes that are neither a valid batch at the expected offset nor a zero tail.
    pub damage: Option<Stop>,
}

/// Calls `on_batch(header, position)` for each valid batch of the segment at `path` (base
/// offset `base`) in order, up to its end, a zero tail, or damage.
pub fn walk(
    disk: &StdDisk,
    path: &Path,
    base: i64,
    mut on_batch: impl FnMut(&BatchHeader, u64),
) -> Result<WalkEnd> {
    let file = disk
        .open(path, OpenMode::Existing)
        .with_context(|| format!("opening {}", path.display()))?;
    let len = disk.file_len(file);
    let end = len.map(|len| {
        let mut scanner = Scanner::new(disk, file, 0, len);
        let mut next = base;
        // Bounded: each step consumes a batch or ends the loop.
        loop {
            match scanner.next(next, u64::from(u32::MAX)) {
                Step::Batch { header, position } => {
                    on_batch(&header, position);
                    next = header.next_offset();
                }
                Step::End => break (next, len, None),
                // A preallocated or zero-filled tail after the last batch is expected.
                Step::Stop(stop) if stop.zero_tail => break (next, stop.position, None),
                Step::Stop(stop) => break (next, stop.position, Some(stop)),
            }
        }
    });
    disk.close(file);
    let (next_offset, written_bytes, damage) =
        end.with_context(|| format!("stat {}", path.display()))?;
    Ok(WalkEnd {
        next_offset,
        written_bytes,
        damage,
    })
}
