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
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// fsyncs a directory, so the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}

/// The directories of `data_dir` that belong to a topic: (entry name, topic, whether it is a
/// `.delete` directory).
fn topic_entries(data_dir: &Path) -> Result<Vec<(String, String, bool)>> {
    let entries = std::fs::read_dir(data_dir).map_err(|e| Error::io("list", data_dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", data_dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
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
pub(crate) fn finish_deletions(data_dir: &Path) -> Result<Vec<String>> {
    let entries = topic_entries(data_dir)?;
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
        let dir = data_dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
    }
    sync_dir(data_dir)?;
    Ok(doomed.into_iter().map(str::to_string).collect())
}

/// Before `topic` is created: if a deletion of an earlier topic of that name failed in this
/// process (its `.delete` directories are still here), removes all of that topic's
/// directories, durably. Otherwise the next open would take the new topic for the one being
/// deleted and remove it. Returns whether anything was removed.
pub(crate) fn clear_failed_deletion(data_dir: &Path, topic: &str) -> Result<bool> {
    let entries = topic_entries(data_dir)?;
    let mine: Vec<&(String, String, bool)> =
        entries.iter().filter(|(_, t, _)| t == topic).collect();
    if !mine.iter().any(|(_, _, doomed)| *doomed) {
        return Ok(false);
    }
    for (name, _, _) in mine {
        let dir = data_dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
    }
    sync_dir(data_dir)?;
    Ok(true)
}

/// Renames the partition directory `dir_name` to its `.delete` name, first removing a
/// directory already there (left by an earlier failed deletion of the same name, which a
/// rename onto it would fail on). Returns the new path.
pub(crate) fn set_aside(data_dir: &Path, dir_name: &str) -> Result<PathBuf> {
    let dir = data_dir.join(dir_name);
    let to = data_dir.join(format!("{dir_name}{DELETE_SUFFIX}"));
    match std::fs::remove_dir_all(&to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &to, e)),
    }
    std::fs::rename(&dir, &to).map_err(|e| Error::io("rename", &dir, e))?;
    Ok(to)
}
