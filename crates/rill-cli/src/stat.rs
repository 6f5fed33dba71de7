//! `rill stat`: topics, partitions, offsets, sizes and segments of a log, read-only. The log
//! end comes from walking the last segment (the other segments' ends follow from the next
//! segment's base offset).

use crate::layout::{PartitionDir, partitions};
use crate::walk::walk;
use anyhow::{Context, Result};
use rill_format::{clean_point, topic_config};
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
    /// For a compacted partition (its topic's `cleanup.policy`, or a clean point on disk): the
    /// clean point and the dirty part's share of the sealed segments' bytes, in percent.
    pub compaction: Option<(i64, u32)>,
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
            compaction: None,
        });
    };
    let end = walk(disk, &partition.file(last, FileKind::Log), last, |_, _| {})?;
    let compaction = compaction(partition, first)?;
    Ok(PartitionStat {
        name,
        segments: partition.segments.len(),
        log_start: first,
        log_end: end.next_offset,
        file_bytes,
        damaged_at: end.damage.map(|stop| stop.position),
        compaction,
    })
}

/// The clean point and dirty percentage of a compacted partition (`None` if it is not one).
fn compaction(partition: &PartitionDir, log_start: i64) -> Result<Option<(i64, u32)>> {
    let clean_point = std::fs::read(partition.path.join(clean_point::CLEAN_POINT_FILE))
        .ok()
        .and_then(|bytes| clean_point::parse(&bytes).ok());
    if clean_point.is_none() && !topic_compacts(partition) {
        return Ok(None);
    }
    let clean_point = clean_point.unwrap_or(log_start);
    let (mut clean, mut dirty) = (0u64, 0u64);
    // Sealed segments: each ends where the next begins.
    for pair in partition.segments.windows(2) {
        let path = partition.file(pair[0], FileKind::Log);
        let bytes = std::fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .len();
        if pair[1] <= clean_point {
            clean += bytes;
        } else {
            dirty += bytes;
        }
    }
    let percent = (dirty * 100).checked_div(clean + dirty).unwrap_or(0);
    Ok(Some((clean_point, percent as u32)))
}

/// Whether the partition's topic is compacted, by its stored configuration
/// (`<data dir>/topic-configs/<topic>.cfg`, `cleanup.policy`: 1 compact, 2 both).
fn topic_compacts(partition: &PartitionDir) -> bool {
    let Some((topic, _)) = &partition.name else {
        return false;
    };
    let Some(data_dir) = partition.path.parent() else {
        return false;
    };
    let path = data_dir
        .join(topic_config::TOPIC_CONFIG_DIR)
        .join(topic_config::file_name(topic));
    std::fs::read(path)
        .ok()
        .and_then(|bytes| topic_config::TopicConfigRecord::parse(&bytes).ok())
        .is_some_and(|record| {
            record
                .entries
                .iter()
                .any(|&(key, value)| key == topic_config::key::CLEANUP_POLICY && value != 0)
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
        if let Some((clean_point, dirty)) = s.compaction {
            write!(out, "  compacted: clean to {clean_point}, {dirty}% dirty")?;
        }
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
