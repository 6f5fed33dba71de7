//! A topic's partition directories on disk: deleting them, finishing a deletion a crash
//! interrupted, and clearing what a failed deletion left before the name is used again.
//!
//! A deletion renames each `<topic>-<index>` to `<topic>-<index>.delete`, syncs the data
//! directory (from then on the deletion is decided) and removes the renamed directories. A
//! crash midway is finished at the next open by [`finish_deletions`]: any `.delete` directory
//! dooms every directory of its topic name, since renames not yet durable may have left some
//! partitions under their live names. That rule must never reach a topic created again under
//! the same name, so [`clear_failed_deletion`] removes a failed deletion's leftovers before a
//! name is created, and [`set_aside`] never collides with a leftover.

use crate::error::{Error, Result};
use crate::topic::{self, DELETE_SUFFIX};
use rill_segment::disk::Disk;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bound on the depth of a tree [`remove_tree`] removes (a partition directory holds files
/// only; anything deeper was put there by hand).
const MAX_TREE_DEPTH: usize = 8;

/// fsyncs a directory, so the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))
}

/// Names in `dir` that are directories.
pub(crate) fn subdirectories(disk: &dyn Disk, dir: &Path) -> Result<Vec<String>> {
    disk.list_subdirs(dir)
        .map_err(|e| Error::io("list", dir, e))
}

/// Removes `dir` and everything in it (not durable until its parent is synced).
pub(crate) fn remove_tree(disk: &dyn Disk, dir: &Path) -> Result<()> {
    remove_tree_within(disk, dir, MAX_TREE_DEPTH)
}

fn remove_tree_within(disk: &dyn Disk, dir: &Path, depth_left: usize) -> Result<()> {
    let names = disk.list_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for name in names {
        let path = dir.join(&name);
        match disk.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory && depth_left > 0 => {
                remove_tree_within(disk, &path, depth_left - 1)?;
            }
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    disk.remove_dir(dir)
        .map_err(|e| Error::io("remove", dir, e))
}

/// The directories of `data_dir` that belong to a topic: (entry name, topic, whether it is a
/// `.delete` directory).
fn topic_entries(disk: &dyn Disk, data_dir: &Path) -> Result<Vec<(String, String, bool)>> {
    let mut found = Vec::new();
    for name in subdirectories(disk, data_dir)? {
        let (live, doomed) = match name.strip_suffix(DELETE_SUFFIX) {
            Some(live) => (live, true),
            None => (name.as_str(), false),
        };
        if let Some((topic, _)) = topic::parse_dir_name(live) {
            let topic = topic.to_string();
            found.push((name, topic, doomed));
        }
    }
    Ok(found)
}

/// Finishes topic deletions a crash interrupted: a topic with any `.delete` directory was
/// being deleted, so all its directories go. Returns the topics whose deletion was finished.
pub(crate) fn finish_deletions(disk: &dyn Disk, data_dir: &Path) -> Result<Vec<String>> {
    let entries = topic_entries(disk, data_dir)?;
    let doomed: BTreeSet<&str> = entries
        .iter()
        .filter(|(_, _, doomed)| *doomed)
        .map(|(_, topic, _)| topic.as_str())
        .collect();
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    for (name, _, _) in entries
        .iter()
        .filter(|(_, t, _)| doomed.contains(t.as_str()))
    {
        remove_tree(disk, &data_dir.join(name))?;
    }
    sync_dir(disk, data_dir)?;
    Ok(doomed.into_iter().map(str::to_string).collect())
}

/// Before `topic` is created: if a deletion of an earlier topic of that name failed in this
/// process (its `.delete` directories are still here), removes all of that topic's
/// directories, durably. Otherwise the next open would take the new topic for the one being
/// deleted and remove it. Returns whether anything was removed.
pub(crate) fn clear_failed_deletion(disk: &dyn Disk, data_dir: &Path, topic: &str) -> Result<bool> {
    let entries = topic_entries(disk, data_dir)?;
    let mine: Vec<&(String, String, bool)> =
        entries.iter().filter(|(_, t, _)| t == topic).collect();
    if !mine.iter().any(|(_, _, doomed)| *doomed) {
        return Ok(false);
    }
    for (name, _, _) in mine {
        remove_tree(disk, &data_dir.join(name))?;
    }
    sync_dir(disk, data_dir)?;
    Ok(true)
}

/// Renames the partition directory `dir_name` to its `.delete` name, first removing a
/// directory already there (left by an earlier failed deletion of the same name, which a
/// rename onto it would fail on). Returns the new path.
pub(crate) fn set_aside(disk: &dyn Disk, data_dir: &Path, dir_name: &str) -> Result<PathBuf> {
    let dir = data_dir.join(dir_name);
    let to = data_dir.join(format!("{dir_name}{DELETE_SUFFIX}"));
    if disk.is_dir(&to).map_err(|e| Error::io("stat", &to, e))? {
        remove_tree(disk, &to)?;
    }
    disk.rename(&dir, &to)
        .map_err(|e| Error::io("rename", &dir, e))?;
    Ok(to)
}
