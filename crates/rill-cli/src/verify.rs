//! `rill verify`: a read-only check of a whole log. Every batch's shape, CRC and offset,
//! offsets continuous across segments, nothing but zeros after the last batch, and every
//! offset- and time-index entry agreeing with the batches. Nothing is repaired or rewritten
//! (recovery does that at open); every problem names its file and byte range.

use crate::layout::{PartitionDir, partitions};
use crate::walk::walk;
use anyhow::Result;
use rill_segment::disk::StdDisk;
use rill_segment::index::{OffsetIndex, SegmentBounds, TimeIndex};
use rill_segment::segment::FileKind;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The bytes concerned.
    pub range: Range<u64>,
    /// The offset expected there.
    pub offset: i64,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes {}..{} (offset {}): {}",
            self.path.display(),
            self.range.start,
            self.range.end,
            self.offset,
            self.detail
        )
    }
}

/// What was checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Partition directories.
    pub partitions: usize,
    /// Segments.
    pub segments: usize,
    /// Batches with a valid CRC at their offset.
    pub batches: u64,
    /// Bytes of those batches.
    pub bytes: u64,
    /// Index entries that agree with the batches.
    pub index_entries: u64,
}

/// A batch as the scan found it.
struct Seen {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// The largest timestamp up to and including this batch.
    running_max: i64,
}

/// Checks every partition under `dir`.
pub fn verify(dir: &Path) -> Result<(Summary, Vec<Problem>)> {
    let disk = StdDisk::new();
    let mut summary = Summary::default();
    let mut problems = Vec::new();
    for partition in partitions(dir)? {
        summary.partitions += 1;
        verify_partition(&disk, &partition, &mut summary, &mut problems)?;
    }
    Ok((summary, problems))
}

fn verify_partition(
    disk: &StdDisk,
    partition: &PartitionDir,
    summary: &mut Summary,
    problems: &mut Vec<Problem>,
) -> Result<()> {
    let mut expected_base: Option<i64> = None;
    for &base in &partition.segments {
        let path = partition.file(base, FileKind::Log);
        if let Some(expected) = expected_base
            && expected != base
        {
            problems.push(Problem {
                path: path.clone(),
                range: 0..0,
                offset: expected,
                detail: format!(
                    "segment starts at offset {base}, the previous one ends at {expected}"
                ),
            });
        }
        summary.segments += 1;
        let Some((batches, bounds)) = scan_segment(disk, &path, base, summary, problems)? else {
            // Damaged: what follows cannot be checked against it.
            expected_base = None;
            continue;
        };
        check_indexes(partition, &batches, bounds, summary, problems);
        expected_base = Some(bounds.next_offset);
    }
    Ok(())
}

/// Scans a segment's batches; `None` (with a problem recorded) if they stop at damage.
fn scan_segment(
    disk: &StdDisk,
    path: &Path,
    base: i64,
    summary: &mut Summary,
    problems: &mut Vec<Problem>,
) -> Result<Option<(HashMap<u64, Seen>, SegmentBounds)>> {
    let mut batches = HashMap::new();
    let mut running_max = i64::MIN;
    let end = walk(disk, path, base, |header, position| {
        running_max = running_max.max(header.max_timestamp);
        batches.insert(
            position,
            Seen {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                max_timestamp: header.max_timestamp,
                running_max,
            },
        );
        summary.batches += 1;
        summary.bytes += header.total_bytes();
    })?;
    if let Some(stop) = end.damage {
        let range = stop.position..stop.damage_end;
        problems.push(problem(path, range, end.next_offset, stop.detail));
        return Ok(None);
    }
    let bounds = SegmentBounds {
        base_offset: base,
        next_offset: end.next_offset,
        size_bytes: end.written_bytes,
    };
    Ok(Some((batches, bounds)))
}

fn check_indexes(
    partition: &PartitionDir,
    batches: &HashMap<u64, Seen>,
    bounds: SegmentBounds,
    summary: &mut Summary,
    problems: &mut Vec<Problem>,
) {
    let base = bounds.base_offset;
    let by_last: HashMap<i64, &Seen> = batches.values().map(|s| (s.last_offset, s)).collect();
    let path = partition.file(base, FileKind::OffsetIndex);
    if let Some(bytes) = read_index(&path, base, problems) {
        match OffsetIndex::parse(&bytes, bounds, usize::MAX) {
            Ok(index) => {
                for entry in index.entries() {
                    let offset = base + i64::from(entry.relative_offset);
                    let at = u64::from(entry.position);
                    match batches.get(&at) {
                        Some(seen) if seen.base_offset == offset => summary.index_entries += 1,
                        _ => problems.push(problem(
                            &path,
                            at..at,
                            offset,
                            "offset index entry is not the start of the batch with that offset"
                                .into(),
                        )),
                    }
                }
            }
            Err(e) => problems.push(problem(&path, 0..bytes.len() as u64, base, e.to_string())),
        }
    }
    let path = partition.file(base, FileKind::TimeIndex);
    if let Some(bytes) = read_index(&path, base, problems) {
        match TimeIndex::parse(&bytes, bounds, usize::MAX) {
            Ok(index) => {
                for entry in index.entries() {
                    let offset = base + i64::from(entry.relative_offset);
                    match by_last.get(&offset) {
                        Some(seen)
                            if seen.running_max == entry.timestamp
                                && seen.max_timestamp == entry.timestamp =>
                        {
                            summary.index_entries += 1;
                        }
                        _ => problems.push(problem(
                            &path,
                            0..0,
                            offset,
                            format!(
                                "time index entry ({} ms, offset {offset}) disagrees with the batches",
                                entry.timestamp
                            ),
                        )),
                    }
                }
            }
            Err(e) => problems.push(problem(&path, 0..bytes.len() as u64, base, e.to_string())),
        }
    }
}

/// An index file's bytes; a missing one is a problem (recovery rebuilds it at open).
fn read_index(path: &Path, base: i64, problems: &mut Vec<Problem>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            problems.push(problem(path, 0..0, base, format!("cannot read: {e}")));
            None
        }
    }
}

fn problem(path: &Path, range: Range<u64>, offset: i64, detail: String) -> Problem {
    Problem {
        path: path.to_path_buf(),
        range,
        offset,
        detail,
    }
}
