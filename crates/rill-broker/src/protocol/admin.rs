//! The admin APIs beyond CreateTopics, their non-flexible versions, decoded with the bounded
//! reader (every array count checked against the bytes left) and encoded by hand:
//! DeleteTopics 0–3, DeleteRecords 0–1, CreatePartitions 0–1, DescribeConfigs 0–3,
//! AlterConfigs 0–1, IncrementalAlterConfigs 0.

use super::DecodeError;
use super::response::put_by_topic;
use super::wire::{Reader, WriteExt};
use bytes::{BufMut, BytesMut};

/// Kafka's resource type of a topic in the config APIs.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicsRequest {
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecordsRequest {
    /// (topic, [(partition, offset: delete every record below it; -1: the high watermark)]).
    pub topics: Vec<(String, Vec<(i32, i64)>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigResource {
    pub resource_type: i8,
    pub name: String,
    /// DescribeConfigs: the keys asked for (`None`: all). Unused by the alter APIs.
    pub keys: Option<Vec<String>>,
    /// The alter APIs: (key, operation, value); AlterConfigs' operations are all SET (0).
    pub changes: Vec<(String, i8, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigsRequest {
    pub resources: Vec<ConfigResource>,
    /// The alter APIs: check only.
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePartitionsRequest {
    /// (topic, new partition count, whether replica assignments were given).
    pub topics: Vec<(String, i32, bool)>,
    pub validate_only: bool,
}

/// Operations of IncrementalAlterConfigs.
pub mod op {
    pub const SET: i8 = 0;
    pub const DELETE: i8 = 1;
}

pub(super) fn delete_topics(r: &mut Reader<'_>) -> Result<DeleteTopicsRequest, DecodeError> {
    let topics = r.vec("topic_names", 2, |r| r.string("topic name"))?;
    r.i32("timeout_ms")?;
    Ok(DeleteTopicsRequest { topics })
}

pub(super) fn create_partitions(
    r: &mut Reader<'_>,
) -> Result<CreatePartitionsRequest, DecodeError> {
    let topics = r.vec("topics", 2 + 4 + 4, |r| {
        let name = r.string("topic name")?;
        let count = r.i32("count")?;
        let assignments = match r.array_len("assignments", 4)? {
            None => false,
            Some(n) => {
                for _ in 0..n {
                    r.skip_i32_array("broker_ids")?;
                }
                true
            }
        };
        Ok((name, count, assignments))
    })?;
    r.i32("timeout_ms")?;
    let validate_only = r.bool("validate_only")?;
    Ok(CreatePartitionsRequest {
        topics,
        validate_only,
    })
}

pub(super) fn delete_records(r: &mut Reader<'_>) -> Result<DeleteRecordsRequest, DecodeError> {
    let topics = r.vec("topics", 2 + 4, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partitions", 12, |r| {
            Ok((r.i32("partition_index")?, r.i64("offset")?))
        })?;
        Ok((name, partitions))
    })?;
    r.i32("timeout_ms")?;
    Ok(DeleteRecordsRequest { topics })
}

pub(super) fn describe_configs(r: &mut Reader<'_>, v: i16) -> Result<ConfigsRequest, DecodeError> {
    let resources = r.vec("resources", 1 + 2 + 4, |r| {
        let resource_type = r.i8("resource_type")?;
        let name = r.string("resource_name")?;
        let keys = match r.array_len("configuration_keys", 2)? {
            None => None,
            Some(count) => {
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(r.string("configuration key")?);
                }
                Some(keys)
            }
        };
        Ok(ConfigResource {
            resource_type,
            name,
            keys,
            changes: Vec::new(),
        })
    })?;
    if v >= 1 {
        r.bool("include_synonyms")?;
    }
    if v >= 3 {
        r.bool("include_documentation")?;
    }
    Ok(ConfigsRequest {
        resources,
        validate_only: false,
    })
}

/// AlterConfigs (`incremental` false) or IncrementalAlterConfigs v0 (`incremental` true).
pub(super) fn alter_configs(
    r: &mut Reader<'_>,
    incremental: bool,
) -> Result<ConfigsRequest, DecodeError> {
    let resources = r.vec("resources", 1 + 2 + 4, |r| {
        let resource_type = r.i8("resource_type")?;
        let name = r.string("resource_name")?;
        let changes = r.vec("configs", 2 + 2, |r| {
            let key = r.string("config name")?;
            let operation = if incremental {
                r.i8("config_operation")?
            } else {
                op::SET
            };
            Ok((key, operation, r.nullable_string("config value")?))
        })?;
        Ok(ConfigResource {
            resource_type,
            name,
            keys: None,
            changes,
        })
    })?;
    let validate_only = r.bool("validate_only")?;
    Ok(ConfigsRequest {
        resources,
        validate_only,
    })
}

/// DeleteTopics v0–v3: (topic, error code) each.
pub fn delete_topics_response(buf: &mut BytesMut, version: i16, results: &[(String, i16)]) {
    if version >= 1 {
        buf.put_i32(0);
    }
    buf.put_array_len(results.len());
    for (name, error) in results {
        buf.put_string(name);
        buf.put_i16(*error);
    }
}

/// A DeleteRecords partition's result: (partition, low watermark, error code).
pub type DeletedRecords = (i32, i64, i16);

/// DeleteRecords v0–v1: per topic, each partition's result.
pub fn delete_records_response(buf: &mut BytesMut, results: &[(String, Vec<DeletedRecords>)]) {
    buf.put_i32(0);
    put_by_topic(buf, results, |buf, (index, low_watermark, error)| {
        buf.put_i32(*index);
        buf.put_i64(*low_watermark);
        buf.put_i16(*error);
    });
}

/// One described setting: (name, value, whether the topic sets it itself).
pub type DescribedConfig = (&'static str, String, bool);

/// One DescribeConfigs result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedResource {
    pub error: i16,
    pub message: Option<String>,
    pub resource_type: i8,
    pub name: String,
    pub configs: Vec<DescribedConfig>,
}

/// DescribeConfigs v0–v3.
pub fn describe_configs_response(buf: &mut BytesMut, version: i16, results: &[DescribedResource]) {
    // Kafka's config sources: a topic's own setting, or the broker's default.
    const TOPIC_CONFIG: i8 = 1;
    const DEFAULT_CONFIG: i8 = 5;
    // Kafka's config types, for v3.
    const STRING_TYPE: i8 = 2;
    buf.put_i32(0);
    buf.put_array_len(results.len());
    for result in results {
        buf.put_i16(result.error);
        buf.put_nullable_string(result.message.as_deref());
        buf.put_i8(result.resource_type);
        buf.put_string(&result.name);
        buf.put_array_len(result.configs.len());
        for (name, value, overridden) in &result.configs {
            buf.put_string(name);
            buf.put_nullable_string(Some(value));
            buf.put_bool(false); // read_only
            if version == 0 {
                buf.put_bool(!overridden); // is_default
            } else {
                buf.put_i8(if *overridden {
                    TOPIC_CONFIG
                } else {
                    DEFAULT_CONFIG
                });
            }
            buf.put_bool(false); // is_sensitive
            if version >= 1 {
                buf.put_array_len(0); // synonyms
            }
            if version >= 3 {
                buf.put_i8(STRING_TYPE);
                buf.put_nullable_string(None); // documentation
            }
        }
    }
}

/// CreatePartitions v0–v1: (topic, error, message) each.
pub fn create_partitions_response(buf: &mut BytesMut, results: &[(String, i16, Option<String>)]) {
    buf.put_i32(0);
    buf.put_array_len(results.len());
    for (name, error, message) in results {
        buf.put_string(name);
        buf.put_i16(*error);
        buf.put_nullable_string(message.as_deref());
    }
}

/// AlterConfigs v0–v1 and IncrementalAlterConfigs v0: (error, message, type, name) each.
pub fn alter_configs_response(buf: &mut BytesMut, results: &[(i16, Option<String>, i8, String)]) {
    buf.put_i32(0);
    buf.put_array_len(results.len());
    for (error, message, resource_type, name) in results {
        buf.put_i16(*error);
        buf.put_nullable_string(message.as_deref());
        buf.put_i8(*resource_type);
        buf.put_string(name);
    }
}
