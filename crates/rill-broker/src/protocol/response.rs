//! Response encoding. A response is built in one buffer that starts with a 4-byte size
//! placeholder; [`finish_frame`] fills it in. Fetch responses are the exception: their record
//! bytes never enter the buffer (see `crate::fetch`), so the size counts bytes sent later.

use super::wire::WriteExt;
use super::{ApiKey, error_code};
use bytes::{BufMut, BytesMut};

/// A response buffer: the size placeholder, then the response header (v0: correlation id).
pub fn begin_frame(correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    buf
}

/// Writes the frame size: the buffer after the size field, plus `bytes_sent_separately`.
/// Fails if the frame would exceed the protocol's `i32` size.
pub fn finish_frame(buf: &mut BytesMut, bytes_sent_separately: u64) -> Result<(), FrameTooLarge> {
    let size = (buf.len() as u64 - 4) + bytes_sent_separately;
    let size = i32::try_from(size).map_err(|_| FrameTooLarge(size))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// A response would exceed 2 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a response of {0} bytes exceeds the protocol's limit")]
pub struct FrameTooLarge(pub u64);

/// ApiVersions v0–v3 (also the v0-format answer to an unsupported ApiVersions version). Its
/// response header is v0 at every version (no tagged fields), so that a client can read it
/// before it knows which versions the broker speaks.
pub fn api_versions(buf: &mut BytesMut, version: i16, error: i16) {
    let mut w = super::wire::Writer {
        buf,
        flexible: version >= 3,
    };
    w.i16(error);
    w.array_len(ApiKey::ALL.len());
    for api in ApiKey::ALL {
        let (min, max) = api.versions();
        w.i16(api.code());
        w.i16(min);
        w.i16(max);
        w.tags();
    }
    if version >= 1 {
        w.i32(0); // throttle_time_ms
    }
    w.tags();
}

/// The answer to a request of an API key or version this broker does not implement.
///
/// ApiVersions gets Kafka's v0-format answer (UNSUPPORTED_VERSION and the supported ranges),
/// which clients such as librdkafka use to retry with a version both sides speak. Other APIs
/// are never sent by a client that read ApiVersions; they get the error-shaped response of
/// the APIs clients commonly send unasked (SASL), and otherwise the bare error code (so the client reads the correlation
/// id and a Kafka error, not a closed socket).
pub fn unsupported(buf: &mut BytesMut, api_key: i16, version: i16) {
    const UNSUPPORTED: i16 = error_code::UNSUPPORTED_VERSION;
    match (api_key, version) {
        (18, _) => api_versions(buf, 0, UNSUPPORTED),
        // SaslHandshake v0–v1: error, mechanisms (none).
        (17, 0 | 1) => {
            buf.put_i16(UNSUPPORTED);
            buf.put_array_len(0);
        }
        _ => buf.put_i16(UNSUPPORTED),
    }
}

/// One broker, as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A topic in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub error: i16,
    pub name: String,
    /// Partition indexes, with their errors.
    pub partitions: Vec<(i32, i16)>,
}

/// Metadata v0–v8 on a single broker that leads every partition.
pub fn metadata(
    buf: &mut BytesMut,
    version: i16,
    broker: &BrokerAddress,
    cluster_id: &str,
    topics: &[TopicMetadata],
) {
    if version >= 3 {
        buf.put_i32(0); // throttle_time_ms
    }
    buf.put_array_len(1);
    buf.put_i32(broker.node_id);
    buf.put_string(&broker.host);
    buf.put_i32(broker.port);
    if version >= 1 {
        buf.put_nullable_string(None); // rack
    }
    if version >= 2 {
        buf.put_nullable_string(Some(cluster_id));
    }
    if version >= 1 {
        buf.put_i32(broker.node_id); // controller_id
    }
    buf.put_array_len(topics.len());
    for topic in topics {
        buf.put_i16(topic.error);
        buf.put_string(&topic.name);
        if version >= 1 {
            // The committed offsets' topic is Kafka's internal one.
            buf.put_bool(topic.name == "__consumer_offsets");
        }
        buf.put_array_len(topic.partitions.len());
        for &(index, error) in &topic.partitions {
            buf.put_i16(error);
            buf.put_i32(index);
            buf.put_i32(broker.node_id); // leader
            if version >= 7 {
                buf.put_i32(0); // leader_epoch
            }
            for _replicas_then_isr in 0..2 {
                buf.put_array_len(1);
                buf.put_i32(broker.node_id);
            }
            if version >= 5 {
                buf.put_array_len(0); // offline replicas
            }
        }
        if version >= 8 {
            buf.put_i32(i32::MIN); // topic_authorized_operations: not computed
        }
    }
    if version >= 8 {
        buf.put_i32(i32::MIN); // cluster_authorized_operations: not computed
    }
}

/// CreateTopics v0–v4: per topic, its name, error and message.
/// A CreateTopics result: (topic, error, message, partitions or -1).
pub type CreatedTopic = (String, i16, Option<String>, i32);

/// CreateTopics v0–v7 (v5+: the topic's partition count and replication factor; its configs
/// are left null, which the schema allows, for the client to describe).
pub fn create_topics(buf: &mut BytesMut, version: i16, results: &[CreatedTopic]) {
    let mut w = super::wire::Writer::response(buf, version >= 5);
    if version >= 2 {
        w.i32(0);
    }
    w.array_len(results.len());
    for (name, error, message, partitions) in results {
        w.string(name);
        if version >= 7 {
            w.uuid_zero(); // topic_id: none
        }
        w.i16(*error);
        if version >= 1 {
            w.nullable_string(message.as_deref());
        }
        if version >= 5 {
            w.i32(*partitions);
            w.i16(if *error == error_code::NONE { 1 } else { -1 });
            w.null_array(); // configs
        }
        w.tags();
    }
    w.tags();
}

/// A partition's result in a Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartitionResult {
    pub index: i32,
    pub error: i16,
    pub base_offset: i64,
    /// The append time a log-append-time topic stamped the batch with, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub message: Option<String>,
}

/// Produce v3–v10 (flexible from v9; v10's tagged fields, the new leader on
/// NOT_LEADER_OR_FOLLOWER, are never needed on a single broker).
pub fn produce(buf: &mut BytesMut, version: i16, topics: &[(String, Vec<ProducePartitionResult>)]) {
    let mut w = super::wire::Writer::response(buf, version >= 9);
    w.array_len(topics.len());
    for (name, partitions) in topics {
        w.string(name);
        w.array_len(partitions.len());
        for p in partitions {
            w.i32(p.index);
            w.i16(p.error);
            w.i64(p.base_offset);
            w.i64(p.log_append_time_ms);
            if version >= 5 {
                w.i64(p.log_start_offset);
            }
            if version >= 8 {
                w.array_len(0); // record_errors
                w.nullable_string(p.message.as_deref());
            }
            w.tags();
        }
        w.tags();
    }
    w.i32(0); // throttle_time_ms
    w.tags();
}

/// The `[topic name, [partition]]` nesting of Produce and ListOffsets responses.
pub(super) fn put_by_topic<T>(
    buf: &mut BytesMut,
    topics: &[(String, Vec<T>)],
    mut put_partition: impl FnMut(&mut BytesMut, &T),
) {
    buf.put_array_len(topics.len());
    for (name, partitions) in topics {
        buf.put_string(name);
        buf.put_array_len(partitions.len());
        for p in partitions {
            put_partition(buf, p);
        }
    }
}

/// A partition's result in a ListOffsets response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetsResult {
    pub index: i32,
    pub error: i16,
    pub timestamp: i64,
    pub offset: i64,
}

/// ListOffsets v1–v5.
pub fn list_offsets(buf: &mut BytesMut, version: i16, topics: &[(String, Vec<ListOffsetsResult>)]) {
    if version >= 2 {
        buf.put_i32(0);
    }
    put_by_topic(buf, topics, |buf, p| {
        buf.put_i32(p.index);
        buf.put_i16(p.error);
        buf.put_i64(p.timestamp);
        buf.put_i64(p.offset);
        if version >= 4 {
            buf.put_i32(0); // leader_epoch
        }
    });
}

/// The start of a Fetch v4–v11 response body, up to the topic count.
pub fn fetch_prefix(buf: &mut BytesMut, version: i16, error: i16, topics: usize) {
    buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        buf.put_i16(error);
        buf.put_i32(0); // session_id: fetch sessions are not kept; clients send full fetches
    }
    buf.put_array_len(topics);
}

/// A topic's name and partition count in a Fetch response.
pub fn fetch_topic(buf: &mut BytesMut, name: &str, partitions: usize) {
    buf.put_string(name);
    buf.put_array_len(partitions);
}

/// A partition's fields in a Fetch response, up to and including the records' length. The
/// `records_bytes` record bytes follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartitionHeader {
    pub index: i32,
    pub error: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records_bytes: u32,
}

/// Writes a partition's header (Fetch v4–v11).
pub fn fetch_partition(buf: &mut BytesMut, version: i16, p: &FetchPartitionHeader) {
    buf.put_i32(p.index);
    buf.put_i16(p.error);
    buf.put_i64(p.high_watermark);
    buf.put_i64(p.high_watermark); // last_stable_offset: no transactions
    if version >= 5 {
        buf.put_i64(p.log_start_offset);
    }
    buf.put_array_len(0); // aborted_transactions
    if version >= 11 {
        buf.put_i32(-1); // preferred_read_replica
    }
    buf.put_u32(p.records_bytes);
}
