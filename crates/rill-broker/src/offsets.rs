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

use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;

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

/// The committed offsets, in memory and in the log.
#[derive(Debug)]
pub struct Offsets {
    partition: rill::Partition,
    committed: Mutex<HashMap<Key, (i64, Option<String>)>>,
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

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
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
    match metadata {
        Some(m) => put_str(&mut out, m),
        None => out.put_u16(u16::MAX),
    }
    out.to_vec()
}

fn take_str(buf: &mut &[u8]) -> Option<String> {
    let (len, rest) = buf.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let s = rest.get(..len)?;
    *buf = &rest[len..];
    String::from_utf8(s.to_vec()).ok()
}

fn encode_group_key(group: &str) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + group.len());
    out.put_u16(GROUP_KEY_MARK);
    put_str(&mut out, group);
    out.to_vec()
}

fn decode_key(mut buf: &[u8]) -> Option<StoredKey> {
    if let Some(rest) = buf.strip_prefix(&GROUP_KEY_MARK.to_be_bytes()) {
        let mut rest = rest;
        let group = take_str(&mut rest)?;
        return rest.is_empty().then_some(StoredKey::Group(group));
    }
    let group = take_str(&mut buf)?;
    let topic = take_str(&mut buf)?;
    let partition = i32::from_be_bytes(*buf.first_chunk::<4>()?);
    (buf.len() == 4).then_some(StoredKey::Offset((group, topic, partition)))
}

fn decode_value(buf: &[u8]) -> Option<(i64, Option<String>)> {
    let (offset, mut rest) = buf.split_first_chunk::<8>()?;
    let offset = i64::from_be_bytes(*offset);
    if rest == u16::MAX.to_be_bytes() {
        return Some((offset, None));
    }
    let metadata = take_str(&mut rest)?;
    rest.is_empty().then_some((offset, Some(metadata)))
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
        let mut committed = HashMap::new();
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
                        Some(StoredKey::Offset(key)) => {
                            match record.value.and_then(decode_value) {
                                Some(value) => committed.insert(key, value),
                                None => committed.remove(&key),
                            };
                        }
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
            let new_keys = commits
                .iter()
                .filter(|c| !committed.contains_key(&(group.to_owned(), c.0.clone(), c.1)))
                .count();
            if committed.len() + new_keys > self.max_keys {
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
        self.append(&encoded).await?;
        let mut committed = self.committed.lock();
        for (topic, partition, offset, metadata) in commits {
            committed.insert(
                (group.to_owned(), topic.clone(), *partition),
                (*offset, metadata.clone()),
            );
        }
        Ok(())
    }

    /// Appends records (key, value or tombstone) as one batch, durably.
    async fn append(&self, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), rill::Error> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let records: Vec<rill::Record<'_>> = records
            .iter()
            .map(|(key, value)| rill::Record {
                key: Some(key.as_slice()),
                value: value.as_deref(),
                ..rill::Record::value(now_ms, &[])
            })
            .collect();
        self.partition
            .append_records_with(&records, rill::Durability::Durable)
            .await?;
        Ok(())
    }

    /// The groups' stored generations read at open (taken: the second call gets none).
    pub fn take_group_snapshots(&self) -> Vec<(String, Vec<u8>)> {
        self.snapshots.lock().drain().collect()
    }

    /// Stores groups' generations (`None`: deleted), as one batch, durably.
    pub async fn store_groups(
        &self,
        groups: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), rill::Error> {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = groups
            .iter()
            .map(|(group, value)| (encode_group_key(group), value.clone()))
            .collect();
        for chunk in records.chunks(1000) {
            self.append(chunk).await?;
        }
        Ok(())
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
        // In slices: a batch stays far below any batch size limit.
        for chunk in keys.chunks(1000) {
            self.append(chunk).await?;
        }
        self.committed.lock().retain(|(g, _, _), _| g != group);
        Ok(true)
    }

    /// Every group with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .committed
            .lock()
            .keys()
            .map(|(g, _, _)| g.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether `group` has committed offsets.
    pub fn has_group(&self, group: &str) -> bool {
        self.committed.lock().keys().any(|(g, _, _)| g == group)
    }

    /// Every committed offset: (group, topic, partition, offset), sorted.
    pub fn all(&self) -> Vec<(String, String, i32, i64)> {
        let mut all: Vec<_> = self
            .committed
            .lock()
            .iter()
            .map(|((g, t, p), (o, _))| (g.clone(), t.clone(), *p, *o))
            .collect();
        all.sort();
        all
    }

    /// `group`'s committed offset of a partition, if any.
    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<(i64, Option<String>)> {
        self.committed
            .lock()
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .cloned()
    }

    /// Every partition `group` committed, by topic.
    pub fn of_group(&self, group: &str) -> Vec<(String, i32, i64, Option<String>)> {
        let mut out: Vec<_> = self
            .committed
            .lock()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), (o, m))| (t.clone(), *p, *o, m.clone()))
            .collect();
        out.sort();
        out
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
