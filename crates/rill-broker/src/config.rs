//! The broker's configuration: a TOML file and/or command-line flags (flags win), with
//! defaults that run a single local broker.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// When a produce is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityPolicy {
    /// As the producer asks: `acks=-1` waits for fdatasync, `acks=1` for the write.
    Acks,
    /// Every produce is synced before it is acknowledged, whatever its acks.
    Always,
}

/// How far consumers see (Fetch, and the high watermark that ListOffsets reports as latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everything written, like a single-replica Kafka partition (its high watermark is its
    /// log end, synced or not).
    Written,
    /// Only what is on disk: a consumer never sees a record that a crash could take back.
    Durable,
}

/// The I/O executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// io_uring where the kernel allows it, else the syscall baseline.
    Auto,
    Uring,
    Syscall,
}

/// Everything the broker is configured by. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Address to accept clients on.
    pub listen: SocketAddr,
    /// Host clients are told to connect to (Metadata); default: the listen address, or
    /// 127.0.0.1 when listening on every interface.
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to; default: the listen port.
    pub advertised_port: Option<u16>,
    /// This broker's node id.
    pub node_id: i32,
    /// Where the log lives; default: a new temporary directory, removed at shutdown.
    pub data_dir: Option<PathBuf>,
    /// Partitions of a topic created on first use or without a count.
    pub default_partitions: u32,
    /// Create unknown topics a Metadata request names (when the client allows it).
    pub auto_create_topics: bool,
    /// Partitions the broker holds at most, over all topics: every partition holds files and
    /// takes fsyncs, so a client must not be able to create without bound. Creation beyond it
    /// (CreateTopics, auto-creation) is refused with POLICY_VIOLATION.
    pub max_partitions: u32,
    /// Partitions one CreateTopics request may create in all.
    pub max_partitions_per_request: u32,
    pub durability: DurabilityPolicy,
    pub visibility: Visibility,
    /// Segment file size before rolling.
    pub segment_bytes: u64,
    /// Delete segments older than this; -1 keeps them forever.
    pub retention_ms: i64,
    /// Delete the oldest segments while a partition is larger than this; -1: no limit.
    pub retention_bytes: i64,
    /// Largest request frame accepted; a larger size prefix closes the connection.
    pub max_request_bytes: usize,
    /// Request bytes held in memory across all connections at once.
    pub max_inflight_request_bytes: usize,
    pub max_connections: usize,
    /// Close a connection that sends nothing for this long.
    pub idle_timeout_ms: u64,
    /// Upper bound on a fetch's `max_wait_ms`.
    pub max_fetch_wait_ms: u64,
    /// rill shards (threads that own partitions); 0: rill's default.
    pub shards: usize,
    pub driver: Driver,
    /// How long shutdown waits for connections to finish their request.
    pub shutdown_timeout_ms: u64,
    /// Sync partitions holding unsynced (acks=1) data this often; 0: never (they are synced
    /// by later durable produces, the unsynced-bytes bound and shutdown).
    pub flush_interval_ms: u64,
    /// Committed offsets (group, topic, partition) the broker holds at most; commits of new
    /// ones beyond it are refused.
    pub max_committed_offsets: usize,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest record batch a produce may carry, in bytes (Kafka's `message.max.bytes`): the
    /// log-wide default a topic's `max.message.bytes` overrides; at most `segment_bytes`.
    pub message_max_bytes: usize,
    /// Test-only fault: every Nth produce request is stored, then answered REQUEST_TIMED_OUT,
    /// so the client retries what it cannot know was stored (0: off).
    pub fault_time_out_produces: u32,
    /// Session timeouts a group member may ask for (Kafka's `group.min.session.timeout.ms`
    /// and `group.max.session.timeout.ms`); others are refused with INVALID_SESSION_TIMEOUT.
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// How long a group's first rebalance waits for more members to join (Kafka's
    /// `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Members of one group at most (Kafka's `group.max.size`).
    pub group_max_size: usize,
    /// Groups with members the broker holds at most.
    pub max_groups: usize,
    /// Bytes of group members' metadata and assignments the broker holds at most, over all
    /// groups; joins and assignments beyond it are answered COORDINATOR_NOT_AVAILABLE.
    pub max_group_metadata_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: None,
            advertised_port: None,
            node_id: 0,
            data_dir: None,
            default_partitions: 1,
            auto_create_topics: true,
            max_partitions: 10_000,
            max_partitions_per_request: 1_000,
            durability: DurabilityPolicy::Acks,
            visibility: Visibility::Written,
            segment_bytes: 1 << 30,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_request_bytes: 100 << 20,
            max_inflight_request_bytes: 256 << 20,
            max_connections: 1024,
            idle_timeout_ms: 600_000,
            max_fetch_wait_ms: 30_000,
            shards: 0,
            driver: Driver::Auto,
            shutdown_timeout_ms: 10_000,
            flush_interval_ms: 1000,
            metrics_listen: None,
            max_committed_offsets: 1_000_000,
            message_max_bytes: 1_048_588,
            fault_time_out_produces: 0,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: 1_000,
            max_groups: 10_000,
            max_group_metadata_bytes: 256 << 20,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Command-line flags; each overrides the same key of the TOML file.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "rill-broker",
    version,
    about = "A single-node Kafka-protocol broker on the rill log engine"
)]
pub struct Flags {
    /// TOML file with any of the keys below (snake_case).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Host advertised to clients in Metadata.
    #[arg(long)]
    pub advertised_host: Option<String>,
    /// Port advertised to clients in Metadata.
    #[arg(long)]
    pub advertised_port: Option<u16>,
    /// Data directory [default: a temporary directory, removed at shutdown].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long)]
    pub default_partitions: Option<u32>,
    /// Do not create topics on first use.
    #[arg(long)]
    pub no_auto_create_topics: bool,
    /// Partitions the broker holds at most [default: 10000].
    #[arg(long)]
    pub max_partitions: Option<u32>,
    /// Partitions one CreateTopics request may create [default: 1000].
    #[arg(long)]
    pub max_partitions_per_request: Option<u32>,
    /// When produces are acknowledged [default: acks].
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityPolicy>,
    /// How far consumers see [default: written].
    #[arg(long, value_enum)]
    pub visibility: Option<Visibility>,
    /// Segment size in bytes [default: 1 GiB].
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Retention by age in ms, -1 for none [default: 7 days].
    #[arg(long, allow_negative_numbers = true)]
    pub retention_ms: Option<i64>,
    /// Retention by size per partition in bytes, -1 for none [default: -1].
    #[arg(long, allow_negative_numbers = true)]
    pub retention_bytes: Option<i64>,
    /// Largest request accepted, in bytes [default: 100 MiB].
    #[arg(long)]
    pub max_request_bytes: Option<usize>,
    /// Maximum concurrent connections [default: 1024].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// rill shard threads [default: rill's].
    #[arg(long)]
    pub shards: Option<usize>,
    /// I/O executor [default: auto].
    #[arg(long, value_enum)]
    pub driver: Option<Driver>,
    /// Sync unsynced data this often, in ms; 0 never [default: 1000].
    #[arg(long)]
    pub flush_interval_ms: Option<u64>,
    /// Serve Prometheus metrics on this address (GET /metrics) [default: off].
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Largest record batch in bytes (Kafka's message.max.bytes) [default: 1048588].
    #[arg(long)]
    pub message_max_bytes: Option<usize>,
    /// Test-only fault: answer every Nth produce request REQUEST_TIMED_OUT after storing it
    /// [default: 0, off].
    #[arg(long, hide = true)]
    pub fault_time_out_produces: Option<u32>,
    /// Least session timeout a group member may ask for, in ms [default: 6000].
    #[arg(long)]
    pub group_min_session_timeout_ms: Option<u64>,
    /// How long a group's first rebalance waits for more members, in ms [default: 3000].
    #[arg(long)]
    pub group_initial_rebalance_delay_ms: Option<u64>,
}

impl BrokerConfig {
    /// The TOML file named by `flags` (if any), overridden by the flags.
    pub fn from_flags(flags: &Flags) -> Result<Self, ConfigError> {
        let mut config = match &flags.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = flags.$field.clone() {
                    config.$field = value.into();
                }
            )*};
        }
        set!(
            listen,
            durability,
            visibility,
            segment_bytes,
            retention_ms,
            retention_bytes,
            max_request_bytes,
            max_connections,
            shards,
            driver,
            default_partitions,
            flush_interval_ms,
            max_partitions,
            max_partitions_per_request,
            message_max_bytes,
            fault_time_out_produces,
            group_min_session_timeout_ms,
            group_initial_rebalance_delay_ms
        );
        if flags.advertised_host.is_some() {
            config.advertised_host.clone_from(&flags.advertised_host);
        }
        if flags.metrics_listen.is_some() {
            config.metrics_listen = flags.metrics_listen;
        }
        if flags.advertised_port.is_some() {
            config.advertised_port = flags.advertised_port;
        }
        if flags.data_dir.is_some() {
            config.data_dir.clone_from(&flags.data_dir);
        }
        if flags.no_auto_create_topics {
            config.auto_create_topics = false;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Checks what rill would not catch itself.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        if self.default_partitions == 0 || self.default_partitions > rill::MAX_PARTITIONS {
            return bad("default_partitions must be between 1 and rill::MAX_PARTITIONS");
        }
        if self.max_request_bytes < 64 || self.max_request_bytes > i32::MAX as usize {
            return bad("max_request_bytes must be between 64 and 2^31-1");
        }
        if self.max_inflight_request_bytes < self.max_request_bytes {
            return bad("max_inflight_request_bytes must be at least max_request_bytes");
        }
        if self.max_partitions == 0 || self.max_partitions_per_request == 0 {
            return bad("max_partitions and max_partitions_per_request must be at least 1");
        }
        if self.max_committed_offsets == 0 {
            return bad("max_committed_offsets must be at least 1");
        }
        if self.message_max_bytes < 61 {
            return bad("message_max_bytes must be at least a batch header (61 bytes)");
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return bad(
                "group_min_session_timeout_ms must not exceed group_max_session_timeout_ms",
            );
        }
        if self.group_max_size == 0 || self.max_groups == 0 {
            return bad("group_max_size and max_groups must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return bad("retention_ms and retention_bytes are -1 (none) or non-negative");
        }
        Ok(())
    }

    /// The host and port clients are told to connect to.
    pub fn advertised(&self, bound: SocketAddr) -> (String, u16) {
        let host = self.advertised_host.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                bound.ip().to_string()
            }
        });
        (host, self.advertised_port.unwrap_or(bound.port()))
    }

    /// The group coordinator's settings.
    pub fn coordinator(&self) -> crate::coordinator::CoordinatorConfig {
        crate::coordinator::CoordinatorConfig {
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            max_group_size: self.group_max_size,
            max_groups: self.max_groups,
            max_held_bytes: self.max_group_metadata_bytes,
        }
    }

    /// The rill configuration for `data_dir`.
    pub fn log_config(&self, data_dir: &Path) -> rill::Config {
        let mut config = rill::Config::new(data_dir);
        if self.shards > 0 {
            config.shards = self.shards;
        }
        config.driver = match self.driver {
            Driver::Auto => rill::DriverChoice::Auto,
            Driver::Uring => rill::DriverChoice::Uring,
            Driver::Syscall => rill::DriverChoice::Syscall,
        };
        config.log.segment_bytes = self.segment_bytes;
        config.log.max_batch_bytes = self
            .message_max_bytes
            .min(usize::try_from(self.segment_bytes).unwrap_or(usize::MAX));
        config.log.retention_ms = (self.retention_ms >= 0).then_some(self.retention_ms);
        config.log.retention_bytes = u64::try_from(self.retention_bytes).ok();
        config.read_limit = match self.visibility {
            Visibility::Written => rill::ReadLimit::Written,
            Visibility::Durable => rill::ReadLimit::Durable,
        };
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:19092\"\ndefault_partitions = 4\ndurability = \"always\"\nretention_ms = -1\n",
        )
        .unwrap();
        let flags = Flags::parse_from([
            "rill-broker",
            "--config",
            path.to_str().unwrap(),
            "--default-partitions",
            "8",
        ]);
        let config = BrokerConfig::from_flags(&flags).unwrap();
        assert_eq!(config.listen, "0.0.0.0:19092".parse().unwrap());
        assert_eq!(config.default_partitions, 8);
        assert_eq!(config.durability, DurabilityPolicy::Always);
        assert_eq!(config.log_config(dir.path()).log.retention_ms, None);
        assert_eq!(
            config.advertised(config.listen),
            ("127.0.0.1".to_owned(), 19092)
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, "listen_adress = \"x\"\n").unwrap();
        assert!(matches!(
            BrokerConfig::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        let config = BrokerConfig {
            default_partitions: 0,
            ..BrokerConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
