//! The subset of the Kafka protocol this broker speaks: request decoding, response encoding,
//! API keys, supported versions and error codes. Produce, Fetch, Metadata, ListOffsets and the
//! admin APIs (`request.rs`, `response.rs`, `admin.rs`) speak non-flexible versions; the group
//! APIs (`groups.rs`, `membership.rs`) speak the flexible ones too, through the same bounded
//! reader in its compact mode; the APIs of `schema.rs` are decoded and encoded with the
//! `kafka-protocol` crate, flexible versions included.
//!
//! Framing: every request and response is an `i32` size followed by that many bytes. A
//! request starts with the header `api_key: i16, api_version: i16, correlation_id: i32,
//! client_id: nullable string`; a response with `correlation_id: i32`.

pub mod admin;
pub mod groups;
pub mod membership;
mod request;
mod response;
pub mod schema;
#[cfg(test)]
mod schema_checks;
pub mod wire;

pub use request::{
    CreatableTopic, CreateTopicsRequest, FetchPartition, FetchRequest, FetchTopic,
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, MetadataRequest, ProducePartition,
    ProduceRequest, ProduceTopic, Request, RequestHeader, decode_request,
};
pub use response::*;

/// A request's API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKey {
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    OffsetCommit,
    OffsetFetch,
    FindCoordinator,
    JoinGroup,
    Heartbeat,
    LeaveGroup,
    SyncGroup,
    DescribeGroups,
    ListGroups,
    ApiVersions,
    CreateTopics,
    DeleteTopics,
    DeleteRecords,
    InitProducerId,
    DescribeConfigs,
    AlterConfigs,
    CreatePartitions,
    DeleteGroups,
    IncrementalAlterConfigs,
}

impl ApiKey {
    /// Every implemented API, in key order.
    pub const ALL: [Self; 23] = [
        Self::Produce,
        Self::Fetch,
        Self::ListOffsets,
        Self::Metadata,
        Self::OffsetCommit,
        Self::OffsetFetch,
        Self::FindCoordinator,
        Self::JoinGroup,
        Self::Heartbeat,
        Self::LeaveGroup,
        Self::SyncGroup,
        Self::DescribeGroups,
        Self::ListGroups,
        Self::ApiVersions,
        Self::CreateTopics,
        Self::DeleteTopics,
        Self::DeleteRecords,
        Self::InitProducerId,
        Self::DescribeConfigs,
        Self::AlterConfigs,
        Self::CreatePartitions,
        Self::DeleteGroups,
        Self::IncrementalAlterConfigs,
    ];

    /// The key on the wire.
    pub fn code(self) -> i16 {
        match self {
            Self::Produce => 0,
            Self::Fetch => 1,
            Self::ListOffsets => 2,
            Self::Metadata => 3,
            Self::OffsetCommit => 8,
            Self::OffsetFetch => 9,
            Self::FindCoordinator => 10,
            Self::JoinGroup => 11,
            Self::Heartbeat => 12,
            Self::LeaveGroup => 13,
            Self::SyncGroup => 14,
            Self::DescribeGroups => 15,
            Self::ListGroups => 16,
            Self::ApiVersions => 18,
            Self::CreateTopics => 19,
            Self::DeleteTopics => 20,
            Self::DeleteRecords => 21,
            Self::InitProducerId => 22,
            Self::DescribeConfigs => 32,
            Self::AlterConfigs => 33,
            Self::CreatePartitions => 37,
            Self::DeleteGroups => 42,
            Self::IncrementalAlterConfigs => 44,
        }
    }

    /// Kafka's name of the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Produce => "Produce",
            Self::Fetch => "Fetch",
            Self::ListOffsets => "ListOffsets",
            Self::Metadata => "Metadata",
            Self::OffsetCommit => "OffsetCommit",
            Self::OffsetFetch => "OffsetFetch",
            Self::FindCoordinator => "FindCoordinator",
            Self::JoinGroup => "JoinGroup",
            Self::Heartbeat => "Heartbeat",
            Self::LeaveGroup => "LeaveGroup",
            Self::SyncGroup => "SyncGroup",
            Self::DescribeGroups => "DescribeGroups",
            Self::ListGroups => "ListGroups",
            Self::ApiVersions => "ApiVersions",
            Self::CreateTopics => "CreateTopics",
            Self::DeleteTopics => "DeleteTopics",
            Self::DeleteRecords => "DeleteRecords",
            Self::InitProducerId => "InitProducerId",
            Self::DescribeConfigs => "DescribeConfigs",
            Self::AlterConfigs => "AlterConfigs",
            Self::CreatePartitions => "CreatePartitions",
            Self::DeleteGroups => "DeleteGroups",
            Self::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        }
    }

    /// The API of a key, if implemented.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The versions implemented: exactly what ApiVersions advertises.
    pub fn versions(self) -> (i16, i16) {
        match self {
            Self::Produce => (3, 10),
            Self::Fetch => (4, 11),
            Self::ListOffsets => (1, 5),
            Self::OffsetFetch => (1, 8),
            Self::Metadata => (0, 8),
            Self::OffsetCommit => (2, 8),
            Self::JoinGroup => (0, 9),
            Self::ApiVersions | Self::CreatePartitions => (0, 3),
            Self::DeleteGroups | Self::DeleteRecords | Self::AlterConfigs => (0, 2),
            Self::FindCoordinator
            | Self::Heartbeat
            | Self::ListGroups
            | Self::InitProducerId
            | Self::DescribeConfigs => (0, 4),
            Self::SyncGroup | Self::LeaveGroup | Self::DescribeGroups | Self::DeleteTopics => {
                (0, 5)
            }
            Self::CreateTopics => (0, 7),
            Self::IncrementalAlterConfigs => (0, 1),
        }
    }

    /// The first flexible (tagged-field) version this broker implements with the hand-written
    /// [`wire::Reader`]; `None` where it implements none that way (InitProducerId's are the
    /// `kafka-protocol` crate's, `schema.rs`).
    pub fn flexible_from(self) -> Option<i16> {
        match self {
            Self::IncrementalAlterConfigs => Some(1),
            Self::DeleteGroups
            | Self::DeleteRecords
            | Self::CreatePartitions
            | Self::AlterConfigs => Some(2),
            Self::ListGroups | Self::FindCoordinator | Self::ApiVersions => Some(3),
            Self::SyncGroup
            | Self::Heartbeat
            | Self::LeaveGroup
            | Self::DeleteTopics
            | Self::DescribeConfigs => Some(4),
            Self::CreateTopics | Self::DescribeGroups => Some(5),
            Self::JoinGroup | Self::OffsetFetch => Some(6),
            Self::OffsetCommit => Some(8),
            Self::Produce => Some(9),
            _ => None,
        }
    }

    /// Whether `version` is implemented.
    pub fn supports(self, version: i16) -> bool {
        let (min, max) = self.versions();
        (min..=max).contains(&version)
    }
}

/// Kafka error codes this broker answers with.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a request frame could not be decoded. The connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame ends inside this field (or declares more elements than it could hold).
    #[error("truncated at {0}")]
    Truncated(&'static str),
    /// A length below -1, or -1 where null is not allowed.
    #[error("negative length in {0}")]
    NegativeLength(&'static str),
    /// Null where the schema has no null.
    #[error("unexpected null {0}")]
    UnexpectedNull(&'static str),
    /// A string that is not UTF-8.
    #[error("{0} is not UTF-8")]
    InvalidUtf8(&'static str),
    /// Bytes after the last field of the request.
    #[error("{0} bytes after the request")]
    TrailingBytes(usize),
    /// A message decoded by its schema (`schema.rs`) does not match it.
    #[error("does not match its schema: {0}")]
    Schema(String),
}
