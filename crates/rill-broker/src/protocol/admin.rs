//! The admin APIs beyond CreateTopics, decoded with the bounded reader (every array count
//! checked against the bytes left, with each element's least size in either encoding) and
//! encoded by hand, flexible versions included: DeleteTopics 0–5, DeleteRecords 0–2,
//! CreatePartitions 0–3, DescribeConfigs 0–4, AlterConfigs 0–2, IncrementalAlterConfigs 0–1.

use super::DecodeError;
use super::wire::{Reader, Writer};
use bytes::BytesMut;

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
    let topics = r.vec("topic_names", 1, |r| r.string("topic name"))?;
    r.i32("timeout_ms")?;
    r.tags()?;
    Ok(DeleteTopicsRequest { topics })
}

pub(super) fn create_partitions(
    r: &mut Reader<'_>,
) -> Result<CreatePartitionsRequest, DecodeError> {
    let topics = r.vec("topics", 1 + 4 + 1, |r| {
        let name = r.string("topic name")?;
        let count = r.i32("count")?;
        let assignments = match r.array_len("assignments", 1)? {
            None => false,
            Some(n) => {
                for _ in 0..n {
                    r.skip_i32_array("broker_ids")?;
                    r.tags()?;
                }
                true
            }
        };
        r.tags()?;
        Ok((name, count, assignments))
    })?;
    r.i32("timeout_ms")?;
    let validate_only = r.bool("validate_only")?;
    r.tags()?;
    Ok(CreatePartitionsRequest {
        topics,
        validate_only,
    })
}

pub(super) fn delete_records(r: &mut Reader<'_>) -> Result<DeleteRecordsRequest, DecodeError> {
    let topics = r.vec("topics", 1 + 1, |r| {
        let name = r.string("topic name")?;
        let partitions = r.vec("partitions", 12, |r| {
            let partition = (r.i32("partition_index")?, r.i64("offset")?);
            r.tags()?;
            Ok(partition)
        })?;
        r.tags()?;
        Ok((name, partitions))
    })?;
    r.i32("timeout_ms")?;
    r.tags()?;
    Ok(DeleteRecordsRequest { topics })
}

pub(super) fn describe_configs(r: &mut Reader<'_>, v: i16) -> Result<ConfigsRequest, DecodeError> {
    let resources = r.vec("resources", 1 + 1 + 1, |r| {
        let resource_type = r.i8("resource_type")?;
        let name = r.string("resource_name")?;
        let keys = match r.array_len("configuration_keys", 1)? {
            None => None,
            Some(count) => {
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(r.string("configuration key")?);
                }
                Some(keys)
            }
        };
        r.tags()?;
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
    r.tags()?;
    Ok(ConfigsRequest {
        resources,
        validate_only: false,
    })
}

/// AlterConfigs (`incremental` false) or IncrementalAlterConfigs (`incremental` true).
pub(super) fn alter_configs(
    r: &mut Reader<'_>,
    incremental: bool,
) -> Result<ConfigsRequest, DecodeError> {
    let resources = r.vec("resources", 1 + 1 + 1, |r| {
        let resource_type = r.i8("resource_type")?;
        let name = r.string("resource_name")?;
        let changes = r.vec("configs", 1 + 1, |r| {
            let key = r.string("config name")?;
            let operation = if incremental {
                r.i8("config_operation")?
            } else {
                op::SET
            };
            let value = r.nullable_string("config value")?;
            r.tags()?;
            Ok((key, operation, value))
        })?;
        r.tags()?;
        Ok(ConfigResource {
            resource_type,
            name,
            keys: None,
            changes,
        })
    })?;
    let validate_only = r.bool("validate_only")?;
    r.tags()?;
    Ok(ConfigsRequest {
        resources,
        validate_only,
    })
}

/// DeleteTopics v0–v5: (topic, error code, message) each.
pub fn delete_topics_response(
    buf: &mut BytesMut,
    version: i16,
    results: &[(String, i16, Option<String>)],
) {
    let mut w = Writer::response(buf, version >= 4);
    if version >= 1 {
        w.i32(0);
    }
    w.array_len(results.len());
    for (name, error, message) in results {
        w.string(name);
        w.i16(*error);
        if version >= 5 {
            w.nullable_string(message.as_deref());
        }
        w.tags();
    }
    w.tags();
}

/// A DeleteRecords partition's result: (partition, low watermark, error code).
pub type DeletedRecords = (i32, i64, i16);

/// DeleteRecords v0–v2: per topic, each partition's result.
pub fn delete_records_response(
    buf: &mut BytesMut,
    version: i16,
    results: &[(String, Vec<DeletedRecords>)],
) {
    let mut w = Writer::response(buf, version >= 2);
    w.i32(0);
    w.array_len(results.len());
    for (name, partitions) in results {
        w.string(name);
        w.array_len(partitions.len());
        for (index, low_watermark, error) in partitions {
            w.i32(*index);
            w.i64(*low_watermark);
            w.i16(*error);
            w.tags();
        }
        w.tags();
    }
    w.tags();
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

/// DescribeConfigs v0–v4.
pub fn describe_configs_response(buf: &mut BytesMut, version: i16, results: &[DescribedResource]) {
    // Kafka's config sources: a topic's own setting, or the broker's default.
    const TOPIC_CONFIG: i8 = 1;
    const DEFAULT_CONFIG: i8 = 5;
    // Kafka's config types, for v3.
    const STRING_TYPE: i8 = 2;
    let mut w = Writer::response(buf, version >= 4);
    w.i32(0);
    w.array_len(results.len());
    for result in results {
        w.i16(result.error);
        w.nullable_string(result.message.as_deref());
        w.i8(result.resource_type);
        w.string(&result.name);
        w.array_len(result.configs.len());
        for (name, value, overridden) in &result.configs {
            w.string(name);
            w.nullable_string(Some(value));
            w.bool(false); // read_only
            if version == 0 {
                w.bool(!overridden); // is_default
            } else {
                w.i8(if *overridden {
                    TOPIC_CONFIG
                } else {
                    DEFAULT_CONFIG
                });
            }
            w.bool(false); // is_sensitive
            if version >= 1 {
                w.array_len(0); // synonyms
            }
            if version >= 3 {
                w.i8(STRING_TYPE);
                w.nullable_string(None); // documentation
            }
            w.tags();
        }
        w.tags();
    }
    w.tags();
}

/// CreatePartitions v0–v3: (topic, error, message) each.
pub fn create_partitions_response(
    buf: &mut BytesMut,
    version: i16,
    results: &[(String, i16, Option<String>)],
) {
    let mut w = Writer::response(buf, version >= 2);
    w.i32(0);
    w.array_len(results.len());
    for (name, error, message) in results {
        w.string(name);
        w.i16(*error);
        w.nullable_string(message.as_deref());
        w.tags();
    }
    w.tags();
}

/// AlterConfigs v0–v2 and IncrementalAlterConfigs v0–v1: (error, message, type, name) each.
pub fn alter_configs_response(
    buf: &mut BytesMut,
    flexible: bool,
    results: &[(i16, Option<String>, i8, String)],
) {
    let mut w = Writer::response(buf, flexible);
    w.i32(0);
    w.array_len(results.len());
    for (error, message, resource_type, name) in results {
        w.i16(*error);
        w.nullable_string(message.as_deref());
        w.i8(*resource_type);
        w.string(name);
        w.tags();
    }
    w.tags();
}
