//! `rill-broker`: a single-node message service that embeds rill and speaks a subset of the
//! Kafka protocol, so that real Kafka clients (librdkafka, kafka-python, ...) produce to and
//! consume from a rill log.
//!
//! - [`protocol`]: request decoding and response encoding (hand-written non-flexible
//!   versions; `protocol::schema` through the `kafka-protocol` crate).
//! - [`server`]: connections, framing, bounds, shutdown.
//! - [`broker`]: ApiVersions, Metadata, CreateTopics, ListOffsets, InitProducerId; [`admin`]:
//!   DeleteTopics, DeleteRecords, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs;
//!   [`produce`]; [`fetch`] (long-polling, and batches sent from the page cache by
//!   `Partition::send`).
//! - [`config`]: flags and TOML.
//!
//! Stored batches are the producers' Kafka v2 batches byte for byte (rill assigns offsets),
//! which is what lets a fetch send them without decoding or copying.

pub mod admin;
pub mod broker;
pub mod config;
pub mod coordinator;
pub mod errors;
pub mod fetch;
pub mod groups;
pub mod membership;
pub mod metrics;
pub mod offsets;
pub mod produce;
pub mod protocol;
pub mod server;
pub mod stored;
pub mod topics;

pub use broker::Broker;
pub use config::{BrokerConfig, Flags};
pub use server::Server;
