//! The group APIs implemented so far, non-flexible versions, decoded with the bounded reader:
//! FindCoordinator 0–2, OffsetCommit 2–7, OffsetFetch 1–5.

use super::DecodeError;
use super::response::put_by_topic;
use super::wire::{Reader, WriteExt};
use bytes::{BufMut, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorRequest {
    pub key: String,
    /// 0: a group, 1: a transactional id.
    pub key_type: i8,
}

/// One partition of an OffsetCommit: (partition, offset, metadata).
pub type PartitionCommit = (i32, i64, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    /// (topic, [(partition, offset, metadata)]).
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    pub group_id: String,
    /// `None`: every partition the group committed (v2+).
    pub topics: Option<Vec<(String, Vec<i32>)>>,
}

pub(super) fn find_coordinator(
    r: &mut Reader<'_>,
    v: i16,
) -> Result<FindCoordinatorRequest, DecodeError> {
    let key = r.string("key")?;
    let key_type = if v >= 1 { r.i8("key_type")? } else { 0 };
    Ok(FindCoordinatorRequest { key, key_type })
}

pub(super) fn offset_commit(
    r: &mut Reader<'_>,
    v: i16,
) -> Result<OffsetCommitRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let generation_id = r.i32("generation_id")?;
    let member_id = r.string("member_id")?;
    if v >= 7 {
        r.nullable_string("group_instance_id")?;
    }
    if (2..=4).contains(&v) {
        r.i64("retention_time_ms")?;
    }
    let topics = r.vec("topics", 2 + 4, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partitions", 4 + 8 + 2, |r| {
            let index = r.i32("partition_index")?;
            let offset = r.i64("committed_offset")?;
            if v >= 6 {
                r.i32("committed_leader_epoch")?;
            }
            Ok((index, offset, r.nullable_string("committed_metadata")?))
        })?;
        Ok((name, partitions))
    })?;
    Ok(OffsetCommitRequest {
        group_id,
        generation_id,
        member_id,
        topics,
    })
}

pub(super) fn offset_fetch(r: &mut Reader<'_>) -> Result<OffsetFetchRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let topics = match r.array_len("topics", 2 + 4)? {
        None => None,
        Some(count) => {
            let mut topics = Vec::with_capacity(count);
            for _ in 0..count {
                let name = r.string("topic name")?;
                let partitions = r.vec("partition_indexes", 4, |r| r.i32("partition index"))?;
                topics.push((name, partitions));
            }
            Some(topics)
        }
    };
    Ok(OffsetFetchRequest { group_id, topics })
}

/// FindCoordinator v0–v2: this broker, or an error.
pub fn find_coordinator_response(
    buf: &mut BytesMut,
    version: i16,
    error: i16,
    message: Option<&str>,
    node: (i32, &str, i32),
) {
    if version >= 1 {
        buf.put_i32(0);
    }
    buf.put_i16(error);
    if version >= 1 {
        buf.put_nullable_string(message);
    }
    buf.put_i32(node.0);
    buf.put_string(node.1);
    buf.put_i32(node.2);
}

/// OffsetCommit v2–v7: per topic, (partition, error).
pub fn offset_commit_response(
    buf: &mut BytesMut,
    version: i16,
    topics: &[(String, Vec<(i32, i16)>)],
) {
    if version >= 3 {
        buf.put_i32(0);
    }
    put_by_topic(buf, topics, |buf, (index, error)| {
        buf.put_i32(*index);
        buf.put_i16(*error);
    });
}

/// One partition of an OffsetFetch answer: (partition, offset or -1, metadata, error).
pub type FetchedOffset = (i32, i64, Option<String>, i16);

/// OffsetFetch v1–v5.
pub fn offset_fetch_response(
    buf: &mut BytesMut,
    version: i16,
    topics: &[(String, Vec<FetchedOffset>)],
    error: i16,
) {
    if version >= 3 {
        buf.put_i32(0);
    }
    put_by_topic(
        buf,
        topics,
        |buf, (index, offset, metadata, partition_error)| {
            buf.put_i32(*index);
            buf.put_i64(*offset);
            if version >= 5 {
                buf.put_i32(-1); // committed_leader_epoch
            }
            buf.put_nullable_string(metadata.as_deref());
            buf.put_i16(*partition_error);
        },
    );
    if version >= 2 {
        buf.put_i16(error);
    }
}
