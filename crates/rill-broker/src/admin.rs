//! The admin APIs on the broker: DeleteTopics, DeleteRecords, DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs, mapped onto the engine (`Log::delete_topic`,
//! `Partition::delete_before`, `Log::topic_config` / `alter_topic_config` with Kafka's keys).
//! File work runs on blocking threads.

use crate::broker::Broker;
use crate::errors::kafka_code;
use crate::protocol::admin::{
    self, ConfigResource, ConfigsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribedResource, RESOURCE_BROKER, RESOURCE_TOPIC, op,
};
use crate::protocol::error_code as code;
use crate::topics::CreateError;
use bytes::BytesMut;
use std::sync::Arc;

impl Broker {
    /// DeleteTopics: each topic's partitions closed and removed (durably).
    pub async fn delete_topics(
        &self,
        version: i16,
        request: &DeleteTopicsRequest,
        buf: &mut BytesMut,
    ) {
        let mut results = Vec::with_capacity(request.topics.len());
        for name in &request.topics {
            let (error, message) = match self.topics.delete(name).await {
                Ok(()) => {
                    tracing::info!(topic = %name, "deleted topic");
                    (code::NONE, None)
                }
                Err(e) => (kafka_code(&e, true), Some(e.to_string())),
            };
            results.push((name.clone(), error, message));
        }
        admin::delete_topics_response(buf, version, &results);
    }

    /// CreatePartitions: topics grown to their new counts (partitions are only added; replica
    /// assignments are refused on a single broker).
    pub async fn create_partitions(
        &self,
        version: i16,
        request: &admin::CreatePartitionsRequest,
        buf: &mut BytesMut,
    ) {
        let mut results = Vec::with_capacity(request.topics.len());
        for (name, count, assignments) in &request.topics {
            let current = self.topics.get(name).map(|p| p.len());
            let result = match (current, u32::try_from(*count)) {
                (None, _) => Err((code::UNKNOWN_TOPIC_OR_PARTITION, "no such topic".to_owned())),
                (_, _) if *assignments => Err((
                    code::INVALID_REPLICA_ASSIGNMENT,
                    "manual replica assignment is not supported".to_owned(),
                )),
                (Some(current), Ok(count)) if count as usize > current => {
                    if request.validate_only {
                        Ok(())
                    } else {
                        self.topics
                            .grow(name, count, self.config.max_partitions)
                            .await
                            .map_err(|e| match e {
                                e @ CreateError::Limit { .. } => {
                                    (code::POLICY_VIOLATION, e.to_string())
                                }
                                CreateError::Engine(e) => (kafka_code(&e, true), e.to_string()),
                            })
                    }
                }
                (Some(current), _) => Err((
                    code::INVALID_PARTITIONS,
                    format!("the topic has {current} partitions; a topic only grows"),
                )),
            };
            let (error, message) = match result {
                Ok(()) => (code::NONE, None),
                Err((error, message)) => (error, Some(message)),
            };
            results.push((name.clone(), error, message));
        }
        admin::create_partitions_response(buf, version, &results);
    }

    /// DeleteRecords: the log start of each partition moved to the offset given (-1: the high
    /// watermark); the new low watermark answered.
    pub async fn delete_records(
        &self,
        version: i16,
        request: &DeleteRecordsRequest,
        buf: &mut BytesMut,
    ) {
        let mut results = Vec::with_capacity(request.topics.len());
        for (topic, partitions) in &request.topics {
            let mut out = Vec::with_capacity(partitions.len());
            for &(index, offset) in partitions {
                let Some(handle) = self.topics.partition(topic, index) else {
                    out.push((index, -1, code::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                };
                let partition = &handle.partition;
                let offset = if offset == -1 {
                    let o = partition.offsets();
                    self.visible_end(o.log_end, o.durable)
                } else {
                    offset
                };
                match partition.delete_before(offset).await {
                    Ok(low) => out.push((index, low, code::NONE)),
                    Err(e) => out.push((index, -1, kafka_code(&e, true))),
                }
            }
            results.push((topic.clone(), out));
        }
        admin::delete_records_response(buf, version, &results);
    }

    /// DescribeConfigs: a topic's every setting (its own or the broker's default); a broker
    /// resource has none to describe here.
    pub fn describe_configs(&self, version: i16, request: &ConfigsRequest, buf: &mut BytesMut) {
        let log = self.topics.log();
        let results: Vec<DescribedResource> = request
            .resources
            .iter()
            .map(|resource| {
                let mut result = DescribedResource {
                    error: code::NONE,
                    message: None,
                    resource_type: resource.resource_type,
                    name: resource.name.clone(),
                    configs: Vec::new(),
                };
                match resource.resource_type {
                    RESOURCE_TOPIC => match log
                        .topic_config(&resource.name)
                        .and_then(|config| config.describe(&log.config().log))
                    {
                        Ok(described) => {
                            result.configs = described
                                .into_iter()
                                .filter(|(name, _, _)| {
                                    resource
                                        .keys
                                        .as_ref()
                                        .is_none_or(|keys| keys.iter().any(|k| k == name))
                                })
                                .collect();
                        }
                        Err(e) => {
                            result.error = kafka_code(&e, true);
                            result.message = Some(e.to_string());
                        }
                    },
                    RESOURCE_BROKER => {}
                    _ => {
                        result.error = code::INVALID_REQUEST;
                        result.message = Some("only topic and broker resources".into());
                    }
                }
                result
            })
            .collect();
        admin::describe_configs_response(buf, version, &results);
    }

    /// AlterConfigs (the topic's settings become exactly those given) and
    /// IncrementalAlterConfigs (SET and DELETE on the topic's current settings). A key the
    /// engine does not know or a value out of range is refused with INVALID_CONFIG naming it,
    /// and nothing of that resource changes.
    pub async fn alter_configs(
        &self,
        version: i16,
        request: &ConfigsRequest,
        incremental: bool,
        buf: &mut BytesMut,
    ) {
        let mut results = Vec::with_capacity(request.resources.len());
        for resource in &request.resources {
            let (error, message) = match self
                .alter_one(resource, incremental, request.validate_only)
                .await
            {
                Ok(()) => (code::NONE, None),
                Err((error, message)) => (error, Some(message)),
            };
            results.push((
                error,
                message,
                resource.resource_type,
                resource.name.clone(),
            ));
        }
        let flexible = version >= if incremental { 1 } else { 2 };
        admin::alter_configs_response(buf, flexible, &results);
    }

    async fn alter_one(
        &self,
        resource: &ConfigResource,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if resource.resource_type != RESOURCE_TOPIC {
            return Err((
                code::INVALID_CONFIG,
                "only topic configs can be changed at run time".into(),
            ));
        }
        let log = Arc::clone(self.topics.log());
        let refused = |e: rill::Error| match e {
            rill::Error::InvalidTopicConfig { key, reason } => {
                (code::INVALID_CONFIG, format!("{key}: {reason}"))
            }
            other => (kafka_code(&other, true), other.to_string()),
        };
        let mut config = if incremental {
            log.topic_config(&resource.name).map_err(refused)?
        } else {
            rill::TopicConfig::default()
        };
        for (key, operation, value) in &resource.changes {
            match (*operation, value) {
                (op::SET, Some(value)) => config.set(key, value).map_err(refused)?,
                // AlterConfigs' null and IncrementalAlterConfigs' DELETE: the default.
                (op::SET, None) | (op::DELETE, _) => config.unset(key).map_err(refused)?,
                _ => {
                    return Err((
                        code::INVALID_CONFIG,
                        format!("{key}: only SET and DELETE apply to these settings"),
                    ));
                }
            }
        }
        if validate_only {
            log.topic_config(&resource.name).map_err(refused)?;
            return config.apply(&log.config().log).map(|_| ()).map_err(refused);
        }
        let name = resource.name.clone();
        tokio::task::spawn_blocking(move || log.alter_topic_config(&name, &config))
            .await
            .unwrap_or(Err(rill::Error::ShuttingDown))
            .map_err(refused)
    }
}
