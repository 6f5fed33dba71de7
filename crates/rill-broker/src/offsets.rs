//! Committed offsets of consumer groups, stored durably in the compacted topic
//! `__consumer_offsets` (one partition), as Kafka stores them: a commit is one batch of records
//! keyed by (group, topic, partition), appended durably before it is acknowledged; compaction
//! keeps the last commit of each key. At start the map is rebuilt by reading the topic.
//!
//! Record key: `group` (u16 length + UTF-8), `topic` (same), `partition` (i32); value: the
//! offset (i64) and the metadata (u16 length + UTF-8, 0xFFFF for null). Big-endian.
//!
//! The same topic stores each group's last stable generation (`crate::coordinator::snapshot`):
//! key `0xFFFF` (a length no group id can have: Kafka strings are at most 32,767 bytes)
//! followed by the group (u16 length + UTF-8); value: the snapshot.
//!
//! A deleted group's keys get tombstones (a null value), which compaction removes after
//! `delete.retention.ms`. Whether a commit may be stored (the member's generation) is the
//! coordinator's decision (`crate::coordinator`), made before it gets here.

use crate::stored::{Cursor, put_nullable_str, put_str};
use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// The internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offset.metadata.max.bytes`.
pub const MAX_METADATA_BYTES: usize = 4096;

/// (group, topic, partition).
type Key = (String, String, i32);

/// The first two bytes of a group-metadata key.
const GROUP_KEY_MARK: u16 = u16::MAX;

/// A stored record's key.
#[derive(Debug, PartialEq, Eq)]
enum StoredKey {
    Offset(Key),
    Group(String),
}

/// A committed offset and its metadata.
type Committed = (i64, Option<String>);

/// The committed offsets by group, then by (topic, partition), in order: what is asked of one
/// group (OffsetFetch, DescribeGroups, DeleteGroups) costs that group's size, not every key's.
#[derive(Debug, Default)]
struct ByGroup {
    groups: BTreeMap<String, BTreeMap<(String, i32), Committed>>,
    /// Keys over all groups.
    keys: usize,
}

impl ByGroup {
    fn insert(&mut self, (group, topic, partition): Key, value: Committed) {
        let of_group = self.groups.entry(group).or_default();
        if of_group.insert((topic, partition), value).is_none() {
            self.keys += 1;
        }
    }

    fn remove(&mut self, (group, topic, partition): &Key) {
        let Some(of_group) = self.groups.get_mut(group) else {
            return;
        };
        if of_group.remove(&(topic.clone(), *partition)).is_some() {
            self.keys -= 1;
        }
        if of_group.is_empty() {
            self.groups.remove(group);
        }
    }

    fn remove_group(&mut self, group: &str) {
        if let Some(of_group) = self.groups.remove(group) {
            self.keys -= of_group.len();
        }
    }
}

/// The committed offsets, in memory and in the log.
#[derive(Debug)]
pub struct Offsets {
    partition: rill::Partition,
    committed: Mutex<ByGroup>,
    /// Groups' stored generations read at open, until the coordinator takes them.
    snapshots: Mutex<HashMap<String, Vec<u8>>>,
    /// Keys held at most: what clients can make the broker hold.
    max_keys: usize,
}

/// Why a commit was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    #[error("offset metadata longer than {MAX_METADATA_BYTES} bytes")]
    MetadataTooLarge,
    #[error("the broker holds {0} committed offsets, its limit")]
    TooManyKeys(usize),
    #[error(transparent)]
    Engine(#[from] rill::Error),
}

fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(8 + group.len() + topic.len());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out.to_vec()
}

fn encode_value(offset: i64, metadata: Option<&str>) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(10 + metadata.map_or(0, str::len));
    out.put_i64(offset);
    put_nullable_str(&mut out, metadata);
    out.to_vec()
}

fn encode_group_key(group: &str) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_u16(GROUP_KEY_MARK);
    put_str(&mut out, group);
    out.to_vec()
}

fn decode_key(buf: &[u8]) -> Option<StoredKey> {
    let mut r = Cursor::new(buf);
    let key = if let Some(rest) = buf.strip_prefix(&GROUP_KEY_MARK.to_be_bytes()) {
        r = Cursor::new(rest);
        StoredKey::Group(r.string()?)
    } else {
        StoredKey::Offset((r.string()?, r.string()?, r.i32()?))
    };
    r.is_empty().then_some(key)
}

fn decode_value(buf: &[u8]) -> Option<Committed> {
    let mut r = Cursor::new(buf);
    let value = (r.i64()?, r.nullable_string()?);
    r.is_empty().then_some(value)
}

impl Offsets {
    /// Opens the store: creates the topic (compacted) if missing, and reads every commit in it
    /// (bounded by what compaction keeps: one record per key). Blocking: file work.
    pub fn open(log: &rill::Log, max_keys: usize) -> Result<Self, rill::Error> {
        if log.partitions(OFFSETS_TOPIC).is_err() {
            let config = rill::TopicConfig {
                cleanup_policy: Some(rill::CleanupPolicy::Compact),
                retention_ms: Some(None),
                ..rill::TopicConfig::default()
            };
            log.create_topic_with(OFFSETS_TOPIC, 1, &config)?;
        }
        let partition = log.partition(OFFSETS_TOPIC, 0)?;
        let mut committed = ByGroup::default();
        let mut snapshots = HashMap::new();
        let end = partition.offsets().log_end;
        let mut at = partition.offsets().log_start;
        // Bounded: each read returns at least one batch and advances.
        while at < end {
            let read = partition.read(at, 1 << 20).wait()?;
            for batch in read.batches() {
                let Ok(records) = rill::batch::records(batch) else {
                    continue;
                };
                for record in records.flatten() {
                    match record.key.and_then(decode_key) {
                        Some(StoredKey::Offset(key)) => match record.value.and_then(decode_value) {
                            Some(value) => committed.insert(key, value),
                            None => committed.remove(&key),
                        },
                        Some(StoredKey::Group(group)) => {
                            match record.value {
                                Some(value) => snapshots.insert(group, value.to_vec()),
                                None => snapshots.remove(&group),
                            };
                        }
                        None => {}
                    }
                }
            }
            at = read.next_offset;
        }
        Ok(Self {
            partition,
            committed: Mutex::new(committed),
            snapshots: Mutex::new(snapshots),
            max_keys,
        })
    }

    /// Stores `commits` of `group` (topic, partition, offset, metadata) durably, as one batch,
    /// then in memory.
    pub async fn commit(
        &self,
        group: &str,
        commits: &[(String, i32, i64, Option<String>)],
    ) -> Result<(), CommitError> {
        if commits
            .iter()
            .any(|c| c.3.as_ref().is_some_and(|m| m.len() > MAX_METADATA_BYTES))
        {
            return Err(CommitError::MetadataTooLarge);
        }
        {
            let committed = self.committed.lock();
            let of_group = committed.groups.get(group);
            let new_keys = commits
                .iter()
                .filter(|c| of_group.is_none_or(|g| !g.contains_key(&(c.0.clone(), c.1))))
                .count();
            if committed.keys + new_keys > self.max_keys {
                return Err(CommitError::TooManyKeys(self.max_keys));
            }
        }
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = commits
            .iter()
            .map(|(topic, partition, offset, metadata)| {
                (
                    encode_key(group, topic, *partition),
                    Some(encode_value(*offset, metadata.as_deref())),
                )
            })
            .collect();
        self.append(encoded).await?;
        let mut committed = self.committed.lock();
        for (topic, partition, offset, metadata) in commits {
            committed.insert(
                (group.to_owned(), topic.clone(), *partition),
                (*offset, metadata.clone()),
            );
        }
        Ok(())
    }

    /// Appends records (key, value or tombstone) durably, in batches of at most
    /// [`RECORDS_PER_BATCH`] (so that no batch nears the topic's batch size limit).
    async fn append(&self, records: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), rill::Error> {
        const RECORDS_PER_BATCH: usize = 1000;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for chunk in records.chunks(RECORDS_PER_BATCH) {
            let batch: Vec<rill::Record<'_>> = chunk
                .iter()
                .map(|(key, value)| rill::Record {
                    key: Some(key.as_slice()),
                    value: value.as_deref(),
                    ..rill::Record::value(now_ms, &[])
                })
                .collect();
            self.partition
                .append_records_with(&batch, rill::Durability::Durable)
                .await?;
        }
        Ok(())
    }

    /// The groups' stored generations read at open (taken: the second call gets none).
    pub fn take_group_snapshots(&self) -> Vec<(String, Vec<u8>)> {
        self.snapshots.lock().drain().collect()
    }

    /// Stores groups' generations (`None`: deleted), durably.
    pub async fn store_groups(
        &self,
        groups: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), rill::Error> {
        let records = groups
            .into_iter()
            .map(|(group, value)| (encode_group_key(&group), value))
            .collect();
        self.append(records).await
    }

    /// Deletes every committed offset of `group` (tombstones, durably, with one for its stored
    /// generation); whether it had any offsets.
    pub async fn delete_group(&self, group: &str) -> Result<bool, rill::Error> {
        let mut keys: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .of_group(group)
            .iter()
            .map(|(topic, partition, _, _)| (encode_key(group, topic, *partition), None))
            .collect();
        if keys.is_empty() {
            return Ok(false);
        }
        keys.push((encode_group_key(group), None));
        self.append(keys).await?;
        self.committed.lock().remove_group(group);
        Ok(true)
    }

    /// Every group with committed offsets, in order.
    pub fn groups(&self) -> Vec<String> {
        self.committed.lock().groups.keys().cloned().collect()
    }

    /// Whether `group` has committed offsets.
    pub fn has_group(&self, group: &str) -> bool {
        self.committed.lock().groups.contains_key(group)
    }

    /// The first `limit` committed offsets in (group, topic, partition) order, and how many
    /// there are in all.
    pub fn first(&self, limit: usize) -> (Vec<(String, String, i32, i64)>, usize) {
        let committed = self.committed.lock();
        let first = committed
            .groups
            .iter()
            .flat_map(|(g, of_group)| {
                of_group
                    .iter()
                    .map(move |((t, p), (o, _))| (g.clone(), t.clone(), *p, *o))
            })
            .take(limit)
            .collect();
        (first, committed.keys)
    }

    /// `group`'s committed offset of a partition, if any.
    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.committed
            .lock()
            .groups
            .get(group)?
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// Every partition `group` committed, in (topic, partition) order.
    pub fn of_group(&self, group: &str) -> Vec<(String, i32, i64, Option<String>)> {
        self.committed
            .lock()
            .groups
            .get(group)
            .map(|of_group| {
                of_group
                    .iter()
                    .map(|((t, p), (o, m))| (t.clone(), *p, *o, m.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = encode_key("g", "orders", 7);
        assert_eq!(
            decode_key(&key),
            Some(StoredKey::Offset(("g".into(), "orders".into(), 7)))
        );
        assert_eq!(
            decode_key(&encode_group_key("g")),
            Some(StoredKey::Group("g".into()))
        );
        assert_eq!(
            decode_value(&encode_value(42, Some("m"))),
            Some((42, Some("m".into())))
        );
        assert_eq!(decode_value(&encode_value(42, None)), Some((42, None)));
        assert_eq!(decode_key(&key[..key.len() - 1]), None);
        assert_eq!(decode_value(&[0; 3]), None);
    }
}
