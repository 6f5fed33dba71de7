//! Where a log's files are: partition directories (`<topic>-<index>`) and their segments.

use anyhow::{Context, Result};
use rill_segment::segment::{FileKind, file_name, parse_file_name};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One partition directory.
#[derive(Debug, Clone)]
pub struct PartitionDir {
    /// Its path.
    pub path: PathBuf,
    /// Topic and index from the directory name, when it follows `<topic>-<index>`.
    pub name: Option<(String, u32)>,
    /// Base offsets of its segments (those with a `.log` file), ascending.
    pub segments: Vec<i64>,
}

impl PartitionDir {
    /// The path of one file of a segment.
    pub fn file(&self, base_offset: i64, kind: FileKind) -> PathBuf {
        self.path.join(file_name(base_offset, kind))
    }
}

/// The partitions under `dir`: `dir` itself if it holds segment files, else its
/// subdirectories that do (a data directory), sorted by topic and index.
pub fn partitions(dir: &Path) -> Result<Vec<PartitionDir>> {
    if let Some(partition) = partition(dir)? {
        return Ok(vec![partition]);
    }
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(partition) = partition(&entry.path())?
        {
            found.push(partition);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
    Ok(found)
}

/// `dir` as a partition directory, if it holds at least one segment file.
fn partition(dir: &Path) -> Result<Option<PartitionDir>> {
    let mut segments = BTreeSet::new();
    let mut any = false;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        if let Some((base, kind)) = name.to_str().and_then(parse_file_name) {
            any = true;
            if kind == FileKind::Log {
                segments.insert(base);
            }
        }
    }
    if !any {
        return Ok(None);
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('-'))
        .and_then(|(topic, index)| Some((topic.to_string(), index.parse().ok()?)));
    Ok(Some(PartitionDir {
        path: dir.to_path_buf(),
        name,
        segments: segments.into_iter().collect(),
    }))
}
