//! Request decoding: the header, then the body of each implemented API at each implemented
//! version. Decoding borrows nothing from the frame except produce records, which are
//! returned as ranges so the log can take them without a copy.

use super::membership;
use super::wire::Reader;
use super::{ApiKey, DecodeError};
use std::ops::Range;

/// The request header (v1; v2, for flexible versions, adds tagged fields, skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Not read for requests this broker does not implement.
    pub client_id: Option<String>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    ApiVersions,
    Metadata(MetadataRequest),
    CreateTopics(CreateTopicsRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    InitProducerId(super::schema::InitProducerIdRequest),
    DeleteTopics(super::admin::DeleteTopicsRequest),
    DeleteRecords(super::admin::DeleteRecordsRequest),
    DescribeConfigs(super::admin::ConfigsRequest),
    FindCoordinator(super::groups::FindCoordinatorRequest),
    OffsetCommit(super::groups::OffsetCommitRequest),
    OffsetFetch(super::groups::OffsetFetchRequest),
    JoinGroup(membership::JoinGroupRequest),
    SyncGroup(membership::SyncGroupRequest),
    Heartbeat(membership::HeartbeatRequest),
    LeaveGroup(membership::LeaveGroupRequest),
    ListGroups(membership::ListGroupsRequest),
    DescribeGroups(membership::GroupsRequest),
    DeleteGroups(membership::GroupsRequest),
    CreatePartitions(super::admin::CreatePartitionsRequest),
    /// AlterConfigs (`incremental` false) or IncrementalAlterConfigs.
    AlterConfigs {
        request: super::admin::ConfigsRequest,
        incremental: bool,
    },
    /// An API key or version this broker does not implement: answered with
    /// UNSUPPORTED_VERSION. Its body is not read.
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRequest {
    /// `None`: every topic.
    pub topics: Option<Vec<String>>,
    /// Implicitly true before v4.
    pub allow_auto_topic_creation: bool,
    pub include_cluster_authorized_operations: bool,
    pub include_topic_authorized_operations: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    pub timeout_ms: i32,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatableTopic {
    pub name: String,
    /// `-1`: the broker's default (v4+).
    pub num_partitions: i32,
    /// `-1`: the broker's default (v4+).
    pub replication_factor: i16,
    /// Manual replica assignments given (unsupported on a single broker unless trivial).
    pub assignments: usize,
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceTopic {
    pub name: String,
    pub partitions: Vec<ProducePartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    pub index: i32,
    /// Where the record batches sit in the frame; `None` if null.
    pub records: Option<Range<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub replica_id: i32,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub isolation_level: i8,
    pub session_id: i32,
    pub session_epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten_topics: usize,
    pub rack_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopic {
    pub name: String,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartition {
    pub index: i32,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsRequest {
    pub replica_id: i32,
    pub isolation_level: i8,
    pub topics: Vec<ListOffsetsTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsTopic {
    pub name: String,
    pub partitions: Vec<ListOffsetsPartition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetsPartition {
    pub index: i32,
    pub current_leader_epoch: i32,
    /// `-1` latest, `-2` earliest, else a time in ms.
    pub timestamp: i64,
}

/// Decodes one request frame (the bytes after the size prefix). A frame shorter than the
/// fixed part of the header (8 bytes) cannot be answered, having no correlation id.
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = Reader::new(frame, 0);
    let api_key = r.i16("api_key")?;
    let api_version = r.i16("api_version")?;
    let correlation_id = r.i32("correlation_id")?;
    let mut header = RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id: None,
    };
    let Some(api) = ApiKey::from_code(api_key).filter(|api| api.supports(api_version)) else {
        return Ok((header, Request::Unsupported));
    };
    header.client_id = r.nullable_string("client_id")?;
    let v = api_version;
    if api.flexible_from().is_some_and(|from| v >= from) {
        // Request header v2: the client id stays a plain string; tagged fields follow it.
        r.tags_of_flexible()?;
        r.set_flexible(true);
    }
    let request = match api {
        ApiKey::ApiVersions => {
            if v >= 3 {
                r.string("client_software_name")?;
                r.string("client_software_version")?;
                r.tags()?;
            }
            Request::ApiVersions
        }
        ApiKey::Metadata => Request::Metadata(metadata(&mut r, v)?),
        ApiKey::CreateTopics => Request::CreateTopics(create_topics(&mut r, v)?),
        ApiKey::Produce => Request::Produce(produce(&mut r, v)?),
        ApiKey::Fetch => Request::Fetch(fetch(&mut r, v)?),
        ApiKey::ListOffsets => Request::ListOffsets(list_offsets(&mut r, v)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(super::admin::delete_topics(&mut r)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(super::admin::delete_records(&mut r)?),
        ApiKey::DescribeConfigs => {
            Request::DescribeConfigs(super::admin::describe_configs(&mut r, v)?)
        }
        ApiKey::FindCoordinator => {
            Request::FindCoordinator(super::groups::find_coordinator(&mut r, v)?)
        }
        ApiKey::OffsetCommit => Request::OffsetCommit(super::groups::offset_commit(&mut r, v)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(super::groups::offset_fetch(&mut r, v)?),
        ApiKey::JoinGroup => Request::JoinGroup(membership::join_group(&mut r, v)?),
        ApiKey::SyncGroup => Request::SyncGroup(membership::sync_group(&mut r, v)?),
        ApiKey::Heartbeat => Request::Heartbeat(membership::heartbeat(&mut r, v)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(membership::leave_group(&mut r, v)?),
        ApiKey::ListGroups => Request::ListGroups(membership::list_groups(&mut r, v)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(membership::describe_groups(&mut r, v)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(membership::delete_groups(&mut r)?),
        ApiKey::CreatePartitions => {
            Request::CreatePartitions(super::admin::create_partitions(&mut r)?)
        }
        ApiKey::AlterConfigs => Request::AlterConfigs {
            request: super::admin::alter_configs(&mut r, false)?,
            incremental: false,
        },
        ApiKey::IncrementalAlterConfigs => Request::AlterConfigs {
            request: super::admin::alter_configs(&mut r, true)?,
            incremental: true,
        },
        ApiKey::InitProducerId => {
            // The whole frame, header included, is the schema's (flexible from v2).
            let (header, request) = super::schema::init_producer_id(frame, api_version)?;
            return Ok((header, Request::InitProducerId(request)));
        }
    };
    r.finish()?;
    Ok((header, request))
}

fn metadata(r: &mut Reader<'_>, v: i16) -> Result<MetadataRequest, DecodeError> {
    let topics = match r.array_len("topics", 2)? {
        None => None,
        Some(count) => {
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                names.push(r.string("topic name")?);
            }
            Some(names)
        }
    };
    // v0 has no null: an empty list means every topic.
    let topics = topics.filter(|names| v >= 1 || !names.is_empty());
    let allow_auto_topic_creation = if v >= 4 {
        r.bool("allow_auto_topic_creation")?
    } else {
        true
    };
    let (cluster_ops, topic_ops) = if v >= 8 {
        (
            r.bool("include_cluster_authorized_operations")?,
            r.bool("include_topic_authorized_operations")?,
        )
    } else {
        (false, false)
    };
    Ok(MetadataRequest {
        topics,
        allow_auto_topic_creation,
        include_cluster_authorized_operations: cluster_ops,
        include_topic_authorized_operations: topic_ops,
    })
}

fn create_topics(r: &mut Reader<'_>, v: i16) -> Result<CreateTopicsRequest, DecodeError> {
    let topics = r.vec("topics", 1 + 4 + 2 + 1 + 1, |r| {
        let name = r.string("topic name")?;
        let num_partitions = r.i32("num_partitions")?;
        let replication_factor = r.i16("replication_factor")?;
        let assignments = r.vec("assignments", 4 + 1, |r| {
            r.i32("partition_index")?;
            let count = r.skip_i32_array("broker_ids")?;
            r.tags()?;
            Ok(count)
        })?;
        let configs = r.vec("configs", 1 + 1, |r| {
            let config = (r.string("config name")?, r.nullable_string("config value")?);
            r.tags()?;
            Ok(config)
        })?;
        r.tags()?;
        Ok(CreatableTopic {
            name,
            num_partitions,
            replication_factor,
            assignments: assignments.len(),
            configs,
        })
    })?;
    let timeout_ms = r.i32("timeout_ms")?;
    let validate_only = if v >= 1 {
        r.bool("validate_only")?
    } else {
        false
    };
    r.tags()?;
    Ok(CreateTopicsRequest {
        topics,
        timeout_ms,
        validate_only,
    })
}

fn produce(r: &mut Reader<'_>, _v: i16) -> Result<ProduceRequest, DecodeError> {
    let transactional_id = r.nullable_string("transactional_id")?;
    let acks = r.i16("acks")?;
    let timeout_ms = r.i32("timeout_ms")?;
    let topics = r.vec("topic_data", 1 + 1, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partition_data", 4 + 1, |r| {
            let partition = ProducePartition {
                index: r.i32("partition index")?,
                records: r.nullable_bytes("records")?,
            };
            r.tags()?;
            Ok(partition)
        })?;
        r.tags()?;
        Ok(ProduceTopic { name, partitions })
    })?;
    r.tags()?;
    Ok(ProduceRequest {
        transactional_id,
        acks,
        timeout_ms,
        topics,
    })
}

fn fetch(r: &mut Reader<'_>, v: i16) -> Result<FetchRequest, DecodeError> {
    let replica_id = r.i32("replica_id")?;
    let max_wait_ms = r.i32("max_wait_ms")?;
    let min_bytes = r.i32("min_bytes")?;
    let max_bytes = r.i32("max_bytes")?;
    let isolation_level = r.i8("isolation_level")?;
    let (session_id, session_epoch) = if v >= 7 {
        (r.i32("session_id")?, r.i32("session_epoch")?)
    } else {
        (0, -1)
    };
    let partition_bytes = 4 + 8 + 4 + if v >= 9 { 4 } else { 0 } + if v >= 5 { 8 } else { 0 };
    let topics = r.vec("topics", 2 + 4, |r| {
        let name = r.string("topic")?;
        let partitions = r.vec("partitions", partition_bytes, |r| {
            let index = r.i32("partition")?;
            let current_leader_epoch = if v >= 9 {
                r.i32("current_leader_epoch")?
            } else {
                -1
            };
            let fetch_offset = r.i64("fetch_offset")?;
            let log_start_offset = if v >= 5 {
                r.i64("log_start_offset")?
            } else {
                -1
            };
            Ok(FetchPartition {
                index,
                current_leader_epoch,
                fetch_offset,
                log_start_offset,
                partition_max_bytes: r.i32("partition_max_bytes")?,
            })
        })?;
        Ok(FetchTopic { name, partitions })
    })?;
    let forgotten_topics = if v >= 7 {
        r.vec("forgotten_topics_data", 2 + 4, |r| {
            r.string("topic")?;
            r.skip_i32_array("partitions")
        })?
        .len()
    } else {
        0
    };
    let rack_id = if v >= 11 {
        Some(r.string("rack_id")?)
    } else {
        None
    };
    Ok(FetchRequest {
        replica_id,
        max_wait_ms,
        min_bytes,
        max_bytes,
        isolation_level,
        session_id,
        session_epoch,
        topics,
        forgotten_topics,
        rack_id,
    })
}

fn list_offsets(r: &mut Reader<'_>, v: i16) -> Result<ListOffsetsRequest, DecodeError> {
    let replica_id = r.i32("replica_id")?;
    let isolation_level = if v >= 2 { r.i8("isolation_level")? } else { 0 };
    let partition_bytes = 4 + 8 + if v >= 4 { 4 } else { 0 };
    let topics = r.vec("topics", 2 + 4, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partitions", partition_bytes, |r| {
            let index = r.i32("partition_index")?;
            let current_leader_epoch = if v >= 4 {
                r.i32("current_leader_epoch")?
            } else {
                -1
            };
            Ok(ListOffsetsPartition {
                index,
                current_leader_epoch,
                timestamp: r.i64("timestamp")?,
            })
        })?;
        Ok(ListOffsetsTopic { name, partitions })
    })?;
    Ok(ListOffsetsRequest {
        replica_id,
        isolation_level,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::WriteExt;
    use bytes::{BufMut, BytesMut};
    use proptest::prelude::*;

    fn fetch_frame(topics: &[(&str, &[i32])]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i16(11);
        b.put_i32(42);
        b.put_nullable_string(Some("client"));
        b.put_i32(-1);
        b.put_i32(500);
        b.put_i32(1);
        b.put_i32(1 << 20);
        b.put_i8(0);
        b.put_i32(0);
        b.put_i32(-1);
        b.put_array_len(topics.len());
        for (name, partitions) in topics {
            b.put_string(name);
            b.put_array_len(partitions.len());
            for &p in *partitions {
                b.put_i32(p);
                b.put_i32(-1);
                b.put_i64(i64::from(p) * 10);
                b.put_i64(-1);
                b.put_i32(4096);
            }
        }
        b.put_array_len(0);
        b.put_string("rack");
        b
    }

    #[test]
    fn decodes_a_fetch() {
        let frame = fetch_frame(&[("a", &[0, 1]), ("b", &[5])]);
        let (header, request) = decode_request(&frame).unwrap();
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.as_deref(), Some("client"));
        let Request::Fetch(f) = request else {
            panic!("not a fetch: {request:?}")
        };
        assert_eq!(f.topics.len(), 2);
        assert_eq!(f.topics[1].partitions[0].fetch_offset, 50);
        assert_eq!(f.rack_id.as_deref(), Some("rack"));
    }

    #[test]
    fn unsupported_requests_are_not_parsed_further() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i16(12); // Fetch v12 (flexible) is not implemented
        b.put_i32(7);
        b.put_slice(&[0xde, 0xad]);
        let (header, request) = decode_request(&b).unwrap();
        assert_eq!((header.correlation_id, request), (7, Request::Unsupported));
    }

    #[test]
    fn every_truncation_of_a_valid_frame_is_an_error() {
        let frame = fetch_frame(&[("topic", &[0, 1, 2])]);
        for cut in 0..frame.len() {
            assert!(decode_request(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
        }

        #[test]
        fn corrupted_frames_never_panic(at in 0usize..200, value in any::<u8>()) {
            let mut frame = fetch_frame(&[("topic", &[0, 1]), ("other", &[3])]);
            let at = at % frame.len();
            frame[at] = value;
            let _ = decode_request(&frame);
        }
    }
}
