//! The broker's state and the handlers of the small requests: ApiVersions, Metadata,
//! CreateTopics and ListOffsets. Produce and Fetch have modules of their own.

use crate::config::{BrokerConfig, Visibility};
use crate::errors::kafka_code;
use crate::protocol::{
    self, BrokerAddress, CreateTopicsRequest, ListOffsetsRequest, ListOffsetsResult,
    MetadataRequest, TopicMetadata, error_code as code,
};
use crate::topics::{CreateError, Topics};
use bytes::BytesMut;
use std::sync::Arc;

/// Everything the connections share.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub topics: Topics,
    /// What Metadata tells clients to connect to.
    pub address: BrokerAddress,
    pub cluster_id: String,
    /// Consumer groups' committed offsets.
    pub offsets: crate::offsets::Offsets,
    /// Consumer groups' membership.
    pub coordinator: Arc<crate::coordinator::Coordinator>,
    /// Produce requests handled, for the test-only fault
    /// (`BrokerConfig::fault_time_out_produces`).
    pub produce_requests: std::sync::atomic::AtomicU64,
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        log: Arc<rill::Log>,
        address: BrokerAddress,
        offsets: crate::offsets::Offsets,
    ) -> Self {
        let coordinator = crate::coordinator::Coordinator::new(config.coordinator());
        for (group, stored) in offsets.take_group_snapshots() {
            match crate::coordinator::snapshot::GroupSnapshot::decode(&stored) {
                Some(snapshot) => coordinator.restore(&group, snapshot),
                None => {
                    tracing::warn!(group = %group, "a stored group generation is unreadable; its members will join again");
                }
            }
        }
        Self {
            offsets,
            coordinator: Arc::new(coordinator),
            cluster_id: format!("rill-{}", address.node_id),
            topics: Topics::new(log),
            config,
            address,
            produce_requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether the test-only fault answers this produce request as timed out.
    pub fn time_out_this_produce(&self) -> bool {
        let every = u64::from(self.config.fault_time_out_produces);
        if every == 0 {
            return false;
        }
        let n = self
            .produce_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        n.is_multiple_of(every)
    }

    /// The end of what consumers see (the high watermark), given a partition's log end and
    /// durable offset.
    pub fn visible_end(&self, log_end: i64, durable: i64) -> i64 {
        match self.config.visibility {
            Visibility::Written => log_end,
            Visibility::Durable => durable,
        }
    }

    /// Metadata: the broker, and the topics asked for (all when `None`), created on first use
    /// if allowed.
    pub async fn metadata(&self, version: i16, request: &MetadataRequest, buf: &mut BytesMut) {
        let mut topics = Vec::new();
        match &request.topics {
            None => {
                for info in self.topics.log().topics() {
                    topics.push(topic_metadata(code::NONE, info.name, info.partitions));
                }
            }
            Some(names) => {
                for name in names {
                    topics.push(self.describe_or_create(name, request).await);
                }
            }
        }
        protocol::metadata(buf, version, &self.address, &self.cluster_id, &topics);
    }

    async fn describe_or_create(&self, name: &str, request: &MetadataRequest) -> TopicMetadata {
        if let Some(partitions) = self.topics.get(name) {
            return topic_metadata(code::NONE, name.to_owned(), partitions.len() as u32);
        }
        if let Err(e) = rill::validate_topic_name(name) {
            return topic_metadata(kafka_code(&e, true), name.to_owned(), 0);
        }
        if !(request.allow_auto_topic_creation && self.config.auto_create_topics) {
            return topic_metadata(code::UNKNOWN_TOPIC_OR_PARTITION, name.to_owned(), 0);
        }
        match self
            .topics
            .create(
                name,
                self.config.default_partitions,
                self.config.max_partitions,
            )
            .await
        {
            Ok(()) | Err(CreateError::Engine(rill::Error::TopicExists(_))) => {
                tracing::info!(
                    topic = name,
                    partitions = self.config.default_partitions,
                    "auto-created topic"
                );
            }
            Err(CreateError::Limit { held, max }) => {
                tracing::warn!(
                    topic = name,
                    held,
                    max,
                    "not auto-creating a topic: partition limit"
                );
                return topic_metadata(code::POLICY_VIOLATION, name.to_owned(), 0);
            }
            Err(CreateError::Engine(e)) => {
                tracing::warn!(topic = name, error = %e, "auto-creating a topic failed");
                return topic_metadata(kafka_code(&e, true), name.to_owned(), 0);
            }
        }
        match self.topics.get(name) {
            Some(partitions) => {
                topic_metadata(code::NONE, name.to_owned(), partitions.len() as u32)
            }
            None => topic_metadata(code::UNKNOWN_TOPIC_OR_PARTITION, name.to_owned(), 0),
        }
    }

    /// CreateTopics: one result per topic; a single broker cannot replicate, and per-topic
    /// configs are not supported (every topic uses the broker's log settings).
    pub async fn create_topics(
        &self,
        version: i16,
        request: &CreateTopicsRequest,
        buf: &mut BytesMut,
    ) {
        let mut results = Vec::with_capacity(request.topics.len());
        // Partitions this request has asked for so far (bounded by max_partitions_per_request).
        let mut requested: u64 = 0;
        for topic in &request.topics {
            let fail =
                |error: i16, message: &str| (topic.name.clone(), error, Some(message.to_owned()));
            let partitions = match topic.num_partitions {
                -1 => self.config.default_partitions,
                n => u32::try_from(n).unwrap_or(0),
            };
            let result = if request
                .topics
                .iter()
                .filter(|t| t.name == topic.name)
                .count()
                > 1
            {
                fail(code::INVALID_REQUEST, "topic named more than once")
            } else if partitions == 0 || partitions > rill::MAX_PARTITIONS {
                fail(code::INVALID_PARTITIONS, "partition count out of range")
            } else if requested + u64::from(partitions)
                > u64::from(self.config.max_partitions_per_request)
            {
                fail(
                    code::POLICY_VIOLATION,
                    &format!(
                        "a request may create at most {} partitions",
                        self.config.max_partitions_per_request
                    ),
                )
            } else if !matches!(topic.replication_factor, -1 | 1) {
                fail(
                    code::INVALID_REPLICATION_FACTOR,
                    "a single broker stores one replica",
                )
            } else if topic.assignments > 0 {
                fail(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    "manual replica assignment is not supported",
                )
            } else if let Err((key, reason)) = self.topic_config(&topic.configs) {
                fail(code::INVALID_CONFIG, &format!("{key}: {reason}"))
            } else if let Err(e) = rill::validate_topic_name(&topic.name) {
                fail(kafka_code(&e, true), &e.to_string())
            } else if self.topics.get(&topic.name).is_some() {
                fail(code::TOPIC_ALREADY_EXISTS, "topic exists")
            } else {
                requested += u64::from(partitions);
                let config = self.topic_config(&topic.configs).unwrap_or_default();
                self.create_checked(&topic.name, partitions, config, request.validate_only)
                    .await
            };
            let (name, error, message) = result;
            let count = if error == code::NONE {
                i32::try_from(partitions).unwrap_or(-1)
            } else {
                -1
            };
            results.push((name, error, message, count));
        }
        protocol::create_topics(buf, version, &results);
    }

    /// InitProducerId: a new producer id from the engine (durable: never handed out twice),
    /// or, for a producer that names its id and epoch (KIP-360, v3+), the next epoch of it
    /// (a new id once the epoch is exhausted). Transactions are not supported: a transactional
    /// id is refused.
    pub async fn init_producer_id(
        &self,
        version: i16,
        request: &protocol::schema::InitProducerIdRequest,
        buf: &mut BytesMut,
    ) {
        let answer = |buf: &mut BytesMut, error, id, epoch| {
            protocol::schema::init_producer_id_response(buf, version, error, id, epoch);
        };
        if request.transactional_id.is_some() {
            answer(buf, code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1);
            return;
        }
        if request.producer_id >= 0 && (0..i16::MAX - 1).contains(&request.producer_epoch) {
            answer(
                buf,
                code::NONE,
                request.producer_id,
                request.producer_epoch + 1,
            );
            return;
        }
        let log = Arc::clone(self.topics.log());
        // A new block of ids is written and synced first: off the connection's task.
        let allocated = tokio::task::spawn_blocking(move || log.init_producer_id()).await;
        match allocated {
            Ok(Ok(producer)) => answer(buf, code::NONE, producer.id, producer.epoch),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "allocating a producer id");
                answer(buf, kafka_code(&e, false), -1, -1);
            }
            Err(e) => {
                tracing::error!(error = %e, "the producer id task failed");
                answer(buf, code::UNKNOWN_SERVER_ERROR, -1, -1);
            }
        }
    }

    /// A CreateTopics topic's configs as the engine's `TopicConfig` (Kafka's names; a null
    /// value keeps the default), checked against the log's defaults: the key and reason of the
    /// first one refused.
    fn topic_config(
        &self,
        configs: &[(String, Option<String>)],
    ) -> Result<rill::TopicConfig, (String, String)> {
        let mut config = rill::TopicConfig::default();
        let refused = |e: rill::Error| match e {
            rill::Error::InvalidTopicConfig { key, reason } => (key, reason),
            other => ("config".to_owned(), other.to_string()),
        };
        for (key, value) in configs {
            if let Some(value) = value {
                config.set(key, value).map_err(refused)?;
            }
        }
        config
            .apply(&self.topics.log().config().log)
            .map_err(refused)?;
        Ok(config)
    }

    /// Creates a topic that passed CreateTopics' checks (or only says it would, for
    /// `validate_only`): its result as (name, error code, message).
    async fn create_checked(
        &self,
        name: &str,
        partitions: u32,
        config: rill::TopicConfig,
        validate_only: bool,
    ) -> (String, i16, Option<String>) {
        if validate_only {
            return (name.to_owned(), code::NONE, None);
        }
        let created = self
            .topics
            .create_with(name, partitions, self.config.max_partitions, config)
            .await;
        let (error, message) = match created {
            Ok(()) => {
                tracing::info!(topic = %name, partitions, "created topic");
                return (name.to_owned(), code::NONE, None);
            }
            Err(e @ CreateError::Limit { .. }) => (code::POLICY_VIOLATION, e.to_string()),
            Err(CreateError::Engine(e)) => (kafka_code(&e, true), e.to_string()),
        };
        (name.to_owned(), error, Some(message))
    }

    /// ListOffsets: earliest (-2), latest (-1), or the first offset at or after a time.
    pub async fn list_offsets(
        &self,
        version: i16,
        request: &ListOffsetsRequest,
        buf: &mut BytesMut,
    ) {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let (error, timestamp, offset) =
                    self.list_offset(&topic.name, p.index, p.timestamp).await;
                partitions.push(ListOffsetsResult {
                    index: p.index,
                    error,
                    timestamp,
                    offset,
                });
            }
            topics.push((topic.name.clone(), partitions));
        }
        protocol::list_offsets(buf, version, &topics);
    }

    /// `(error, timestamp, offset)` of one partition.
    async fn list_offset(&self, topic: &str, index: i32, timestamp: i64) -> (i16, i64, i64) {
        let Some(handle) = self.topics.partition(topic, index) else {
            return (code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
        };
        let p = &handle.partition;
        let offsets = p.offsets();
        let high_watermark = self.visible_end(offsets.log_end, offsets.durable);
        match timestamp {
            -1 => (code::NONE, -1, high_watermark),
            -2 => (code::NONE, -1, offsets.log_start),
            t if t < 0 => (code::INVALID_REQUEST, -1, -1),
            t => match p.offset_for_timestamp(t).await {
                Ok(Some(offset)) if offset < high_watermark => {
                    let found = record_timestamp(p, offset).await.unwrap_or(t);
                    (code::NONE, found, offset)
                }
                Ok(_) => (code::NONE, -1, -1),
                Err(e) => (kafka_code(&e, true), -1, -1),
            },
        }
    }
}

fn topic_metadata(error: i16, name: String, partitions: u32) -> TopicMetadata {
    TopicMetadata {
        error,
        name,
        partitions: (0..partitions as i32).map(|i| (i, code::NONE)).collect(),
    }
}

/// The timestamp of the record at `offset` (ListOffsets answers with it): the record's own,
/// or, in a compressed batch, the batch's largest.
async fn record_timestamp(p: &rill::Partition, offset: i64) -> Option<i64> {
    let read = p.read(offset, 1).await.ok()?;
    let batch = read.batches().next()?;
    let header = rill::batch::BatchHeader::parse(batch).ok()?;
    let found = rill::batch::records(batch).ok().and_then(|mut records| {
        records.find_map(|r| r.ok().filter(|r| r.offset == offset).map(|r| r.timestamp))
    });
    Some(found.unwrap_or(header.max_timestamp))
}
