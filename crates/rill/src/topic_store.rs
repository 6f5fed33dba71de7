//! Topics' stored configurations: one file per topic in `<data_dir>/topic-configs/`
//! (`<topic>.cfg`, docs/FORMAT.md §7), written atomically (temp file, fdatasync, rename,
//! directory fsync) through the log's `Disk`.
//!
//! A topic is its partition directories; the file records its partition count and the
//! settings that differ from the log's defaults. The order of writes keeps the two consistent
//! after a crash at any point (`Log::open` reconciles them, see [`reconcile`]):
//! - creation writes the file (durably) before any partition directory, so a partition
//!   directory never exists without its topic's settings;
//! - deletion sets the directories aside (the decision) before removing the file;
//! - so a file without any partition directory is an unfinished creation or deletion, and is
//!   removed; a topic with fewer partitions than its file records is an unfinished creation,
//!   and the missing partitions are created empty; a topic without a file predates the files
//!   (or had its file removed by hand) and gets one with the log's defaults.

use crate::error::{Error, Result};
use crate::topic_config::TopicConfig;
use rill_format::topic_config::{
    self as format, MAX_FILE_BYTES, TOPIC_CONFIG_DIR, TopicConfigRecord,
};
use rill_segment::disk::{self, Disk};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A topic's stored configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredTopic {
    /// Partitions the topic was created with.
    pub(crate) partitions: u32,
    /// Its settings that differ from the log's defaults.
    pub(crate) config: TopicConfig,
}

/// The directory of topic configurations under `data_dir`.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TOPIC_CONFIG_DIR)
}

/// Creates the directory (durably) if it is missing, and removes temp files an interrupted
/// write left.
pub(crate) fn prepare(disk: &dyn Disk, data_dir: &Path) -> Result<()> {
    let dir = dir(data_dir);
    disk::create_dir_durably(disk, &dir).map_err(|e| Error::io("create", &dir, e))?;
    let mut removed = false;
    for name in disk
        .list_dir(&dir)
        .map_err(|e| Error::io("list", &dir, e))?
    {
        if name.ends_with(format::TEMP_SUFFIX) {
            let path = dir.join(&name);
            disk.remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            removed = true;
        }
    }
    if removed {
        sync(disk, &dir)?;
    }
    Ok(())
}

/// Every topic's stored configuration, by topic. A damaged file fails with
/// [`Error::DamagedTopicConfig`], or with `repair` is taken as the log's defaults with the
/// partition count unknown (0: the directories found decide).
pub(crate) fn read_all(
    disk: &dyn Disk,
    data_dir: &Path,
    repair: bool,
) -> Result<BTreeMap<String, StoredTopic>> {
    let dir = dir(data_dir);
    let mut topics = BTreeMap::new();
    for name in disk
        .list_dir(&dir)
        .map_err(|e| Error::io("list", &dir, e))?
    {
        let Some(topic) = format::topic_of(&name) else {
            continue;
        };
        if crate::topic::validate_name(topic).is_err() {
            continue;
        }
        let path = dir.join(&name);
        match read_one(disk, &path) {
            Ok(stored) => {
                topics.insert(topic.to_string(), stored);
            }
            Err(Error::DamagedTopicConfig { detail, .. }) if repair => {
                tracing::warn!(path = %path.display(), %detail, "damaged topic config: the log's defaults replace it (repair)");
                topics.insert(
                    topic.to_string(),
                    StoredTopic {
                        partitions: 0,
                        config: TopicConfig::default(),
                    },
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(topics)
}

fn read_one(disk: &dyn Disk, path: &Path) -> Result<StoredTopic> {
    // A longer file is damaged: read just enough to say so.
    let bytes = disk::read_small_file(disk, path, MAX_FILE_BYTES)
        .map_err(|e| Error::io("read", path, e))?
        .ok_or_else(|| Error::io("read", path, std::io::ErrorKind::NotFound.into()))?;
    let damaged = |detail: String| Error::DamagedTopicConfig {
        path: path.to_path_buf(),
        detail,
    };
    let record = TopicConfigRecord::parse(&bytes).map_err(|e| damaged(e.to_string()))?;
    let config = TopicConfig::from_entries(&record.entries).map_err(|e| damaged(e.to_string()))?;
    Ok(StoredTopic {
        partitions: record.partitions,
        config,
    })
}

/// Writes `topic`'s configuration atomically and durably (replacing any before it).
pub(crate) fn write(
    disk: &dyn Disk,
    data_dir: &Path,
    topic: &str,
    stored: &StoredTopic,
) -> Result<()> {
    let dir = dir(data_dir);
    let record = TopicConfigRecord {
        partitions: stored.partitions,
        entries: stored.config.to_entries(),
    };
    let bytes = record.encode().map_err(|e| Error::InvalidTopicConfig {
        key: "(file)".to_string(),
        reason: e.to_string(),
    })?;
    disk::write_file_atomically(
        disk,
        &dir,
        &format::file_name(topic),
        &format::temp_file_name(topic),
        &bytes,
    )
    .map_err(|(op, path, e)| Error::io(op, path, e))
}

/// Removes `topic`'s configuration, durably; nothing to do if there is none.
pub(crate) fn remove(disk: &dyn Disk, data_dir: &Path, topic: &str) -> Result<()> {
    let dir = dir(data_dir);
    let path = dir.join(format::file_name(topic));
    match disk.remove_file(&path) {
        Ok(()) => sync(disk, &dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &path, e)),
    }
}

fn sync(disk: &dyn Disk, dir: &Path) -> Result<()> {
    disk.sync_dir(dir).map_err(|e| Error::io("fsync", dir, e))
}

/// What open does with a topic, from its partition directories and its stored configuration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// Open the topic's partitions `0..partitions` (creating missing ones empty) with
    /// `config`; `rewrite` if the file must be written (missing, or recording another count).
    Open {
        partitions: u32,
        config: TopicConfig,
        rewrite: bool,
    },
    /// A stored configuration with no partition directory: an unfinished creation or
    /// deletion. Remove the file.
    RemoveFile,
}

/// Decides what open does with a topic whose directories end at index `highest` (none:
/// `None`) and whose stored configuration is `stored`.
pub(crate) fn reconcile(highest: Option<u32>, stored: Option<&StoredTopic>) -> Reconciled {
    match (highest, stored) {
        (None, _) => Reconciled::RemoveFile,
        (Some(highest), None) => Reconciled::Open {
            partitions: highest + 1,
            config: TopicConfig::default(),
            rewrite: true,
        },
        (Some(highest), Some(stored)) => {
            let partitions = stored.partitions.max(highest + 1);
            Reconciled::Open {
                partitions,
                config: stored.config.clone(),
                rewrite: partitions != stored.partitions,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use rill_segment::disk::OpenMode;
    use rill_sim::SimDisk;

    #[test]
    fn write_read_remove_on_a_disk() {
        let disk = SimDisk::new(1);
        let data = Path::new("/data");
        disk::create_dir_durably(&disk, data).unwrap();
        prepare(&disk, data).unwrap();
        let stored = StoredTopic {
            partitions: 4,
            config: TopicConfig {
                retention_ms: Some(None),
                ..TopicConfig::default()
            },
        };
        write(&disk, data, "orders", &stored).unwrap();
        // A leftover temp file is removed by the next prepare and never read as a topic.
        let temp = dir(data).join(format::temp_file_name("other"));
        disk.open(&temp, OpenMode::Create)
            .map(|f| disk.close(f))
            .unwrap();
        assert_eq!(read_all(&disk, data, false).unwrap().len(), 1);
        prepare(&disk, data).unwrap();
        assert_eq!(
            disk.list_dir(&dir(data)).unwrap(),
            vec!["orders.cfg".to_string()]
        );
        assert_eq!(read_all(&disk, data, false).unwrap()["orders"], stored);
        remove(&disk, data, "orders").unwrap();
        remove(&disk, data, "orders").unwrap();
        assert!(read_all(&disk, data, false).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_file_fails_the_open_unless_repairing() {
        let disk = SimDisk::new(2);
        let data = Path::new("/data");
        disk::create_dir_durably(&disk, data).unwrap();
        prepare(&disk, data).unwrap();
        let path = dir(data).join("t.cfg");
        let file = disk.open(&path, OpenMode::Create).unwrap();
        disk::write_all_at(&disk, file, 0, &[b"RILLTOPC garbage"]).unwrap();
        disk.close(file);
        assert!(matches!(
            read_all(&disk, data, false),
            Err(Error::DamagedTopicConfig { .. })
        ));
        let repaired = read_all(&disk, data, true).unwrap();
        assert_eq!(repaired["t"].config, TopicConfig::default());
    }

    #[test]
    fn reconcile_rules() {
        let stored = StoredTopic {
            partitions: 3,
            config: TopicConfig {
                segment_bytes: Some(4096),
                ..TopicConfig::default()
            },
        };
        assert_eq!(reconcile(None, Some(&stored)), Reconciled::RemoveFile);
        assert_eq!(
            reconcile(Some(0), Some(&stored)),
            Reconciled::Open {
                partitions: 3,
                config: stored.config.clone(),
                rewrite: false
            }
        );
        assert_eq!(
            reconcile(Some(4), Some(&stored)),
            Reconciled::Open {
                partitions: 5,
                config: stored.config.clone(),
                rewrite: true
            }
        );
        assert_eq!(
            reconcile(Some(1), None),
            Reconciled::Open {
                partitions: 2,
                config: TopicConfig::default(),
                rewrite: true
            }
        );
    }
}
