//! `rill stat`: topics, partitions, offsets, sizes and segments of a log, read-only. The log
//! end comes from walking the last segment (the other segments' ends follow from the next
//! segment's base offset).

use crate::layout::{PartitionDir, partitions};
use crate::walk::walk;
use anyhow::{Context, Result};
use rill_segment::disk::StdDisk;
use rill_segment::segment::FileKind;
use std::io::Write;
use std::path::Path;

/// One partition's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStat {
    /// Directory name.
    pub name: String,
    /// Segments.
    pub segments: usize,
    /// First offset (the first segment's base).
    pub log_start: i64,
    /// Offset after the last valid batch of the last segment.
    pub log_end: i64,
    /// Bytes of the segment files on disk (preallocated tails included).
    pub file_bytes: u64,
    /// Where the last segment stops at damage, if it does.
    pub damaged_at: Option<u64>,
}

/// Describes every partition under `dir`.
pub fn stat(dir: &Path) -> Result<Vec<PartitionStat>> {
    let disk = StdDisk::new();
    partitions(dir)?
        .iter()
        .map(|p| partition_stat(&disk, p))
        .collect()
}

fn partition_stat(disk: &StdDisk, partition: &PartitionDir) -> Result<PartitionStat> {
    let mut file_bytes = 0;
    for &base in &partition.segments {
        let path = partition.file(base, FileKind::Log);
        file_bytes += std::fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .len();
    }
    let name = partition
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (Some(&first), Some(&last)) = (partition.segments.first(), partition.segments.last())
    else {
        return Ok(PartitionStat {
            name,
            segments: 0,
            log_start: 0,
            log_end: 0,
            file_bytes,
            damaged_at: None,
        });
    };
    let end = walk(disk, &partition.file(last, FileKind::Log), last, |_, _| {})?;
    Ok(PartitionStat {
        name,
        segments: partition.segments.len(),
        log_start: first,
        log_end: end.next_offset,
        file_bytes,
        damaged_at: end.damage.map(|stop| stop.position),
    })
}

/// Prints `stats` as a table.
pub fn print(stats: &[PartitionStat], out: &mut impl Write) -> Result<()> {
    writeln!(
        out,
        "{:<32} {:>8} {:>14} {:>14} {:>14}",
        "partition", "segments", "log start", "log end", "bytes"
    )?;
    for s in stats {
        write!(
            out,
            "{:<32} {:>8} {:>14} {:>14} {:>14}",
            s.name, s.segments, s.log_start, s.log_end, s.file_bytes
        )?;
        if let Some(at) = s.damaged_at {
            write!(
                out,
                "  last segment damaged at byte {at} (see `rill verify`)"
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
