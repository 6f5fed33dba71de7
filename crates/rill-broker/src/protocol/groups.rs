//! The coordinator and offset APIs, every version through the flexible ones (the [`Reader`]
//! and [`Writer`] switch encodings per message): FindCoordinator 0–4, OffsetCommit 2–8,
//! OffsetFetch 1–8. Group membership is `membership.rs`.

use super::DecodeError;
use super::wire::{Reader, Writer};
use bytes::BytesMut;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorRequest {
    /// The groups (or transactional ids) asked about: one before v4, a batch from v4.
    pub keys: Vec<String>,
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
    pub group_instance_id: Option<String>,
    /// (topic, [(partition, offset, metadata)]).
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

/// The partitions asked for, by topic; `None`: every partition the group committed.
pub type FetchTopics = Option<Vec<(String, Vec<i32>)>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// One group before v8, a batch from v8.
    pub groups: Vec<(String, FetchTopics)>,
}

pub(super) fn find_coordinator(
    r: &mut Reader<'_>,
    v: i16,
) -> Result<FindCoordinatorRequest, DecodeError> {
    let request = if v >= 4 {
        let key_type = r.i8("key_type")?;
        let keys = r.vec("coordinator_keys", 1, |r| r.string("key"))?;
        FindCoordinatorRequest { keys, key_type }
    } else {
        let key = r.string("key")?;
        let key_type = if v >= 1 { r.i8("key_type")? } else { 0 };
        FindCoordinatorRequest {
            keys: vec![key],
            key_type,
        }
    };
    r.tags()?;
    Ok(request)
}

pub(super) fn offset_commit(
    r: &mut Reader<'_>,
    v: i16,
) -> Result<OffsetCommitRequest, DecodeError> {
    let group_id = r.string("group_id")?;
    let generation_id = r.i32("generation_id")?;
    let member_id = r.string("member_id")?;
    let group_instance_id = if v >= 7 {
        r.nullable_string("group_instance_id")?
    } else {
        None
    };
    if (2..=4).contains(&v) {
        r.i64("retention_time_ms")?;
    }
    let topics = r.vec("topics", 2, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partitions", 4 + 8 + 1, |r| {
            let index = r.i32("partition_index")?;
            let offset = r.i64("committed_offset")?;
            if v >= 6 {
                r.i32("committed_leader_epoch")?;
            }
            let metadata = r.nullable_string("committed_metadata")?;
            r.tags()?;
            Ok((index, offset, metadata))
        })?;
        r.tags()?;
        Ok((name, partitions))
    })?;
    r.tags()?;
    Ok(OffsetCommitRequest {
        group_id,
        generation_id,
        member_id,
        group_instance_id,
        topics,
    })
}

fn fetch_topics(r: &mut Reader<'_>) -> Result<FetchTopics, DecodeError> {
    let Some(count) = r.array_len("topics", 2)? else {
        return Ok(None);
    };
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.string("topic name")?;
        let partitions = r.vec("partition_indexes", 4, |r| r.i32("partition index"))?;
        r.tags()?;
        topics.push((name, partitions));
    }
    Ok(Some(topics))
}

pub(super) fn offset_fetch(r: &mut Reader<'_>, v: i16) -> Result<OffsetFetchRequest, DecodeError> {
    let groups = if v >= 8 {
        r.vec("groups", 2, |r| {
            let group_id = r.string("group_id")?;
            let topics = fetch_topics(r)?;
            r.tags()?;
            Ok((group_id, topics))
        })?
    } else {
        vec![(r.string("group_id")?, fetch_topics(r)?)]
    };
    if v >= 7 {
        r.bool("require_stable")?;
    }
    r.tags()?;
    Ok(OffsetFetchRequest { groups })
}

/// A FindCoordinator answer for one key: (key, error, message, (node id, host, port)).
pub type Coordinator<'a> = (&'a str, i16, Option<&'a str>, (i32, &'a str, i32));

/// FindCoordinator v0–v4: before v4, the first (only) key's answer.
pub fn find_coordinator_response(buf: &mut BytesMut, v: i16, answers: &[Coordinator<'_>]) {
    let mut w = Writer::response(buf, v >= 3);
    if v >= 1 {
        w.i32(0); // throttle_time_ms
    }
    let put_node = |w: &mut Writer<'_>, (id, host, port): (i32, &str, i32)| {
        w.i32(id);
        w.string(host);
        w.i32(port);
    };
    if v >= 4 {
        w.array_len(answers.len());
        for &(key, error, message, node) in answers {
            w.string(key);
            put_node(&mut w, node);
            w.i16(error);
            w.nullable_string(message);
            w.tags();
        }
    } else {
        let (_, error, message, node) = answers.first().copied().unwrap_or((
            "",
            super::error_code::INVALID_REQUEST,
            None,
            (-1, "", -1),
        ));
        w.i16(error);
        if v >= 1 {
            w.nullable_string(message);
        }
        put_node(&mut w, node);
    }
    w.tags();
}

/// OffsetCommit v2–v8: per topic, (partition, error).
pub fn offset_commit_response(buf: &mut BytesMut, v: i16, topics: &[(String, Vec<(i32, i16)>)]) {
    let mut w = Writer::response(buf, v >= 8);
    if v >= 3 {
        w.i32(0);
    }
    w.array_len(topics.len());
    for (name, partitions) in topics {
        w.string(name);
        w.array_len(partitions.len());
        for (index, error) in partitions {
            w.i32(*index);
            w.i16(*error);
            w.tags();
        }
        w.tags();
    }
    w.tags();
}

/// One partition of an OffsetFetch answer: (partition, offset or -1, metadata, error).
pub type FetchedOffset = (i32, i64, Option<String>, i16);

/// One group's OffsetFetch answer: (group, topics, error).
pub type FetchedGroup = (String, Vec<(String, Vec<FetchedOffset>)>, i16);

fn put_fetched_topics(w: &mut Writer<'_>, v: i16, topics: &[(String, Vec<FetchedOffset>)]) {
    w.array_len(topics.len());
    for (name, partitions) in topics {
        w.string(name);
        w.array_len(partitions.len());
        for (index, offset, metadata, error) in partitions {
            w.i32(*index);
            w.i64(*offset);
            if v >= 5 {
                w.i32(-1); // committed_leader_epoch
            }
            w.nullable_string(metadata.as_deref());
            w.i16(*error);
            w.tags();
        }
        w.tags();
    }
}

/// OffsetFetch v1–v8: before v8, the first (only) group's answer.
pub fn offset_fetch_response(buf: &mut BytesMut, v: i16, groups: &[FetchedGroup]) {
    let mut w = Writer::response(buf, v >= 6);
    if v >= 3 {
        w.i32(0);
    }
    if v >= 8 {
        w.array_len(groups.len());
        for (group_id, topics, error) in groups {
            w.string(group_id);
            put_fetched_topics(&mut w, v, topics);
            w.i16(*error);
            w.tags();
        }
    } else {
        let empty = (
            String::new(),
            Vec::new(),
            super::error_code::INVALID_REQUEST,
        );
        let (_, topics, error) = groups.first().unwrap_or(&empty);
        put_fetched_topics(&mut w, v, topics);
        if v >= 2 {
            w.i16(*error);
        }
    }
    w.tags();
}
