//! Per-topic configuration: the settings in which a topic differs from the log's defaults
//! ([`crate::Config::log`]), by Kafka's names, and how they become a partition's
//! [`LogConfig`]. Stored with the topic (`topic_store`, docs/FORMAT.md §7) as numbered keys.

use crate::error::{Error, Result};
use rill_segment::batch::{HEADER_BYTES, TimestampType};
use rill_segment::{CleanupPolicy, LogConfig};

/// A topic's settings that differ from the log's defaults. `None` leaves a setting at the
/// log's default ([`crate::Config::log`]), so a later change of that default reaches the topic,
/// as in Kafka; for the settings that can be unlimited, `Some(None)` sets "unlimited" for the
/// topic alone.
///
/// ```
/// use rill::TopicConfig;
/// let mut config = TopicConfig {
///     retention_ms: Some(Some(86_400_000)),
///     ..TopicConfig::default()
/// };
/// config.set("max.message.bytes", "65536")?;
/// assert_eq!(config.max_batch_bytes, Some(65_536));
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// `segment.bytes`: roll before a segment would pass this size (1024..=i32::MAX).
    pub segment_bytes: Option<u64>,
    /// `segment.ms`: roll a segment this old (positive), or never (`Some(None)`).
    pub segment_ms: Option<Option<i64>>,
    /// `index.interval.bytes`: bytes of log between two index entries (positive).
    pub index_interval_bytes: Option<u64>,
    /// `max.message.bytes`: the largest batch an append accepts (a batch header up to
    /// `segment.bytes`).
    pub max_batch_bytes: Option<usize>,
    /// `retention.bytes`: delete the oldest sealed segments while the partition is larger, or
    /// never (`Some(None)`).
    pub retention_bytes: Option<Option<u64>>,
    /// `retention.ms`: delete sealed segments whose newest timestamp is older (non-negative),
    /// or never (`Some(None)`).
    pub retention_ms: Option<Option<i64>>,
    /// `message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    pub timestamp_type: Option<TimestampType>,
    /// `message.timestamp.after.max.ms`: refuse a batch whose timestamps lie further ahead of
    /// the clock (non-negative), or unlimited (`Some(None)`).
    pub max_timestamp_ahead_ms: Option<Option<i64>>,
    /// `message.timestamp.before.max.ms`: refuse a batch with a record timestamp further
    /// behind the clock (non-negative), or unlimited (`Some(None)`).
    pub max_timestamp_behind_ms: Option<Option<i64>>,
    /// `cleanup.policy`: `delete`, `compact`, or `compact,delete`.
    pub cleanup_policy: Option<CleanupPolicy>,
    /// `delete.retention.ms`: how long a compacted topic keeps tombstones (non-negative).
    pub delete_retention_ms: Option<i64>,
    /// `min.cleanable.dirty.ratio`, in thousandths (0..=1000; the string form is Kafka's
    /// decimal, `0.5`).
    pub min_cleanable_dirty_permille: Option<u32>,
}

/// One per-topic setting: its number in the stored file, and its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TopicKey {
    /// `segment.bytes`.
    SegmentBytes,
    /// `segment.ms`.
    SegmentMs,
    /// `index.interval.bytes`.
    IndexIntervalBytes,
    /// `max.message.bytes`.
    MaxBatchBytes,
    /// `retention.bytes`.
    RetentionBytes,
    /// `retention.ms`.
    RetentionMs,
    /// `message.timestamp.type`.
    TimestampType,
    /// `message.timestamp.after.max.ms`.
    MaxTimestampAheadMs,
    /// `message.timestamp.before.max.ms`.
    MaxTimestampBehindMs,
    /// `cleanup.policy`.
    CleanupPolicy,
    /// `delete.retention.ms`.
    DeleteRetentionMs,
    /// `min.cleanable.dirty.ratio`.
    MinCleanableDirtyRatio,
}

impl TopicKey {
    /// Every key, in file order.
    pub const ALL: [TopicKey; 12] = [
        Self::SegmentBytes,
        Self::SegmentMs,
        Self::IndexIntervalBytes,
        Self::MaxBatchBytes,
        Self::RetentionBytes,
        Self::RetentionMs,
        Self::TimestampType,
        Self::MaxTimestampAheadMs,
        Self::MaxTimestampBehindMs,
        Self::CleanupPolicy,
        Self::DeleteRetentionMs,
        Self::MinCleanableDirtyRatio,
    ];

    /// Kafka's name of the setting.
    pub fn name(self) -> &'static str {
        match self {
            Self::SegmentBytes => "segment.bytes",
            Self::SegmentMs => "segment.ms",
            Self::IndexIntervalBytes => "index.interval.bytes",
            Self::MaxBatchBytes => "max.message.bytes",
            Self::RetentionBytes => "retention.bytes",
            Self::RetentionMs => "retention.ms",
            Self::TimestampType => "message.timestamp.type",
            Self::MaxTimestampAheadMs => "message.timestamp.after.max.ms",
            Self::MaxTimestampBehindMs => "message.timestamp.before.max.ms",
            Self::CleanupPolicy => "cleanup.policy",
            Self::DeleteRetentionMs => "delete.retention.ms",
            Self::MinCleanableDirtyRatio => "min.cleanable.dirty.ratio",
        }
    }

    /// The key with Kafka's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.name() == name)
    }

    /// The key's number in the stored file (docs/FORMAT.md §7). Never reused.
    fn id(self) -> u16 {
        use rill_format::topic_config::key;
        match self {
            Self::SegmentBytes => key::SEGMENT_BYTES,
            Self::SegmentMs => key::SEGMENT_MS,
            Self::IndexIntervalBytes => key::INDEX_INTERVAL_BYTES,
            Self::MaxBatchBytes => key::MAX_MESSAGE_BYTES,
            Self::RetentionBytes => key::RETENTION_BYTES,
            Self::RetentionMs => key::RETENTION_MS,
            Self::TimestampType => key::TIMESTAMP_TYPE,
            Self::MaxTimestampAheadMs => key::TIMESTAMP_AFTER_MAX_MS,
            Self::MaxTimestampBehindMs => key::TIMESTAMP_BEFORE_MAX_MS,
            Self::CleanupPolicy => key::CLEANUP_POLICY,
            Self::DeleteRetentionMs => key::DELETE_RETENTION_MS,
            Self::MinCleanableDirtyRatio => key::MIN_CLEANABLE_DIRTY_RATIO,
        }
    }

    fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.id() == id)
    }
}

/// "Unlimited" in the stored file and in Kafka's string values.
const UNLIMITED: i64 = -1;

fn invalid(key: TopicKey, reason: impl Into<String>) -> Error {
    Error::InvalidTopicConfig {
        key: key.name().to_string(),
        reason: reason.into(),
    }
}

impl TopicConfig {
    /// Sets the setting Kafka names `name` from its string form (numbers in decimal, `-1` for
    /// unlimited where a setting can be; `CreateTime` or `LogAppendTime`). The value's range is
    /// checked when the configuration is applied to a topic.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let key = TopicKey::from_name(name).ok_or_else(|| Error::InvalidTopicConfig {
            key: name.to_string(),
            reason: "not a setting a topic can have".to_string(),
        })?;
        let number = if key == TopicKey::TimestampType {
            match value {
                "CreateTime" => 0,
                "LogAppendTime" => 1,
                _ => return Err(invalid(key, "must be CreateTime or LogAppendTime")),
            }
        } else if key == TopicKey::CleanupPolicy {
            let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
            parts.sort_unstable();
            parts.dedup();
            match parts[..] {
                ["delete"] => 0,
                ["compact"] => 1,
                ["compact", "delete"] => 2,
                _ => return Err(invalid(key, "must be delete, compact, or compact,delete")),
            }
        } else if key == TopicKey::MinCleanableDirtyRatio {
            let ratio: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(key, format!("{value:?} is not a decimal number")))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid(key, "must be in 0..=1"));
            }
            (ratio * 1000.0).round() as i64
        } else {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid(key, format!("{value:?} is not a whole number")))?
        };
        self.set_number(key, number)
    }

    /// Returns the setting Kafka names `name` to the log's default.
    pub fn unset(&mut self, name: &str) -> Result<()> {
        let key = TopicKey::from_name(name).ok_or_else(|| Error::InvalidTopicConfig {
            key: name.to_string(),
            reason: "not a setting a topic can have".to_string(),
        })?;
        match key {
            TopicKey::SegmentBytes => self.segment_bytes = None,
            TopicKey::SegmentMs => self.segment_ms = None,
            TopicKey::IndexIntervalBytes => self.index_interval_bytes = None,
            TopicKey::MaxBatchBytes => self.max_batch_bytes = None,
            TopicKey::RetentionBytes => self.retention_bytes = None,
            TopicKey::RetentionMs => self.retention_ms = None,
            TopicKey::TimestampType => self.timestamp_type = None,
            TopicKey::MaxTimestampAheadMs => self.max_timestamp_ahead_ms = None,
            TopicKey::MaxTimestampBehindMs => self.max_timestamp_behind_ms = None,
            TopicKey::CleanupPolicy => self.cleanup_policy = None,
            TopicKey::DeleteRetentionMs => self.delete_retention_ms = None,
            TopicKey::MinCleanableDirtyRatio => self.min_cleanable_dirty_permille = None,
        }
        Ok(())
    }

    /// The settings this configuration overrides, by Kafka's name, with their string values.
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        self.numbers()
            .into_iter()
            .map(|(key, number)| (key.name(), display(key, number)))
            .collect()
    }

    /// Every setting of a topic with this configuration on a log with defaults `base`: (Kafka's
    /// name, string value, whether the topic overrides it).
    pub fn describe(&self, base: &LogConfig) -> Result<Vec<(&'static str, String, bool)>> {
        let effective = self.apply(base)?;
        let overridden: Vec<TopicKey> = self.numbers().into_iter().map(|(k, _)| k).collect();
        Ok(TopicKey::ALL
            .into_iter()
            .map(|key| {
                let number = number_of(&effective, key);
                (key.name(), display(key, number), overridden.contains(&key))
            })
            .collect())
    }

    /// The partition settings of a topic with this configuration on a log with defaults
    /// `base`, checked: each override in its range, naming the first that is not.
    pub fn apply(&self, base: &LogConfig) -> Result<LogConfig> {
        let mut config = base.clone();
        if let Some(bytes) = self.segment_bytes {
            if !(1024..=i32::MAX as u64).contains(&bytes) {
                return Err(invalid(
                    TopicKey::SegmentBytes,
                    "must be in 1024..=2147483647",
                ));
            }
            config.segment_bytes = bytes;
        }
        if let Some(ms) = self.segment_ms {
            if ms.is_some_and(|ms| ms <= 0) {
                return Err(invalid(TopicKey::SegmentMs, "must be positive or -1"));
            }
            config.segment_ms = ms;
        }
        if let Some(bytes) = self.index_interval_bytes {
            if bytes == 0 || bytes > i32::MAX as u64 {
                return Err(invalid(
                    TopicKey::IndexIntervalBytes,
                    "must be in 1..=2147483647",
                ));
            }
            config.index_interval_bytes = bytes;
        }
        if let Some(bytes) = self.max_batch_bytes {
            config.max_batch_bytes = bytes;
        }
        if config.max_batch_bytes < HEADER_BYTES
            || config.max_batch_bytes as u64 > config.segment_bytes
        {
            return Err(invalid(
                TopicKey::MaxBatchBytes,
                format!(
                    "must be at least a batch header ({HEADER_BYTES}) and at most segment.bytes ({})",
                    config.segment_bytes
                ),
            ));
        }
        if let Some(bytes) = self.retention_bytes {
            if bytes.is_some_and(|b| b > i64::MAX as u64) {
                return Err(invalid(TopicKey::RetentionBytes, "too large"));
            }
            config.retention_bytes = bytes;
        }
        let non_negative = |key, ms: Option<i64>| match ms {
            Some(ms) if ms < 0 => Err(invalid(key, "must be non-negative or -1")),
            _ => Ok(ms),
        };
        if let Some(ms) = self.retention_ms {
            config.retention_ms = non_negative(TopicKey::RetentionMs, ms)?;
        }
        if let Some(kind) = self.timestamp_type {
            config.timestamp_type = kind;
        }
        if let Some(ms) = self.max_timestamp_ahead_ms {
            config.max_timestamp_ahead_ms = non_negative(TopicKey::MaxTimestampAheadMs, ms)?;
        }
        if let Some(ms) = self.max_timestamp_behind_ms {
            config.max_timestamp_behind_ms = non_negative(TopicKey::MaxTimestampBehindMs, ms)?;
        }
        if let Some(policy) = self.cleanup_policy {
            config.cleanup_policy = policy;
        }
        if let Some(ms) = self.delete_retention_ms {
            if ms < 0 {
                return Err(invalid(TopicKey::DeleteRetentionMs, "must be non-negative"));
            }
            config.delete_retention_ms = ms;
        }
        if let Some(permille) = self.min_cleanable_dirty_permille {
            if permille > 1000 {
                return Err(invalid(
                    TopicKey::MinCleanableDirtyRatio,
                    "must be in 0..=1",
                ));
            }
            config.min_cleanable_dirty_permille = permille;
        }
        // Every override is checked above; this catches a combination the log's own rules
        // refuse.
        config.validate().map_err(|e| Error::InvalidTopicConfig {
            key: "(combination)".to_string(),
            reason: e.to_string(),
        })?;
        Ok(config)
    }

    /// The overrides as stored: (key number, value), ascending.
    pub(crate) fn to_entries(&self) -> Vec<(u16, i64)> {
        self.numbers()
            .into_iter()
            .map(|(key, number)| (key.id(), number))
            .collect()
    }

    /// The configuration stored as `entries`; fails on a key this version does not know.
    pub(crate) fn from_entries(entries: &[(u16, i64)]) -> Result<Self> {
        let mut config = Self::default();
        for &(id, number) in entries {
            let key = TopicKey::from_id(id).ok_or_else(|| Error::InvalidTopicConfig {
                key: format!("#{id}"),
                reason: "a setting this version of rill does not know".to_string(),
            })?;
            config.set_number(key, number)?;
        }
        Ok(config)
    }

    /// The overrides as numbers, in key order.
    fn numbers(&self) -> Vec<(TopicKey, i64)> {
        let limit = |v: Option<i64>| v.unwrap_or(UNLIMITED);
        let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let fields = [
            (TopicKey::SegmentBytes, self.segment_bytes.map(bytes)),
            (TopicKey::SegmentMs, self.segment_ms.map(limit)),
            (
                TopicKey::IndexIntervalBytes,
                self.index_interval_bytes.map(bytes),
            ),
            (
                TopicKey::MaxBatchBytes,
                self.max_batch_bytes.map(|b| bytes(b as u64)),
            ),
            (
                TopicKey::RetentionBytes,
                self.retention_bytes.map(|b| limit(b.map(bytes))),
            ),
            (TopicKey::RetentionMs, self.retention_ms.map(limit)),
            (
                TopicKey::TimestampType,
                self.timestamp_type.map(timestamp_type_number),
            ),
            (
                TopicKey::MaxTimestampAheadMs,
                self.max_timestamp_ahead_ms.map(limit),
            ),
            (
                TopicKey::MaxTimestampBehindMs,
                self.max_timestamp_behind_ms.map(limit),
            ),
            (
                TopicKey::CleanupPolicy,
                self.cleanup_policy.map(policy_number),
            ),
            (TopicKey::DeleteRetentionMs, self.delete_retention_ms),
            (
                TopicKey::MinCleanableDirtyRatio,
                self.min_cleanable_dirty_permille.map(i64::from),
            ),
        ];
        fields
            .into_iter()
            .filter_map(|(key, number)| number.map(|n| (key, n)))
            .collect()
    }

    fn set_number(&mut self, key: TopicKey, number: i64) -> Result<()> {
        let limit = |n: i64| if n == UNLIMITED { None } else { Some(n) };
        let positive = |n: i64| u64::try_from(n).map_err(|_| invalid(key, "must not be negative"));
        match key {
            TopicKey::SegmentBytes => self.segment_bytes = Some(positive(number)?),
            TopicKey::SegmentMs => self.segment_ms = Some(limit(number)),
            TopicKey::IndexIntervalBytes => self.index_interval_bytes = Some(positive(number)?),
            TopicKey::MaxBatchBytes => {
                let bytes = usize::try_from(number).map_err(|_| invalid(key, "out of range"))?;
                self.max_batch_bytes = Some(bytes);
            }
            TopicKey::RetentionBytes => {
                self.retention_bytes = Some(match limit(number) {
                    None => None,
                    Some(n) => Some(positive(n)?),
                });
            }
            TopicKey::RetentionMs => self.retention_ms = Some(limit(number)),
            TopicKey::TimestampType => {
                self.timestamp_type = Some(match number {
                    0 => TimestampType::CreateTime,
                    1 => TimestampType::LogAppendTime,
                    _ => return Err(invalid(key, "must be CreateTime (0) or LogAppendTime (1)")),
                });
            }
            TopicKey::MaxTimestampAheadMs => self.max_timestamp_ahead_ms = Some(limit(number)),
            TopicKey::MaxTimestampBehindMs => self.max_timestamp_behind_ms = Some(limit(number)),
            TopicKey::CleanupPolicy => {
                self.cleanup_policy = Some(match number {
                    0 => CleanupPolicy::Delete,
                    1 => CleanupPolicy::Compact,
                    2 => CleanupPolicy::CompactDelete,
                    _ => return Err(invalid(key, "must be delete (0), compact (1) or both (2)")),
                });
            }
            TopicKey::DeleteRetentionMs => self.delete_retention_ms = Some(number),
            TopicKey::MinCleanableDirtyRatio => {
                let permille = u32::try_from(number).map_err(|_| invalid(key, "out of range"))?;
                self.min_cleanable_dirty_permille = Some(permille);
            }
        }
        Ok(())
    }
}

fn policy_number(policy: CleanupPolicy) -> i64 {
    match policy {
        CleanupPolicy::Delete => 0,
        CleanupPolicy::Compact => 1,
        CleanupPolicy::CompactDelete => 2,
    }
}

fn timestamp_type_number(kind: TimestampType) -> i64 {
    match kind {
        TimestampType::CreateTime => 0,
        TimestampType::LogAppendTime => 1,
    }
}

/// A setting's value in `config`, as a number.
fn number_of(config: &LogConfig, key: TopicKey) -> i64 {
    let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let limit = |v: Option<i64>| v.unwrap_or(UNLIMITED);
    match key {
        TopicKey::SegmentBytes => bytes(config.segment_bytes),
        TopicKey::SegmentMs => limit(config.segment_ms),
        TopicKey::IndexIntervalBytes => bytes(config.index_interval_bytes),
        TopicKey::MaxBatchBytes => bytes(config.max_batch_bytes as u64),
        TopicKey::RetentionBytes => limit(config.retention_bytes.map(bytes)),
        TopicKey::RetentionMs => limit(config.retention_ms),
        TopicKey::TimestampType => timestamp_type_number(config.timestamp_type),
        TopicKey::MaxTimestampAheadMs => limit(config.max_timestamp_ahead_ms),
        TopicKey::MaxTimestampBehindMs => limit(config.max_timestamp_behind_ms),
        TopicKey::CleanupPolicy => policy_number(config.cleanup_policy),
        TopicKey::DeleteRetentionMs => config.delete_retention_ms,
        TopicKey::MinCleanableDirtyRatio => i64::from(config.min_cleanable_dirty_permille),
    }
}

fn display(key: TopicKey, number: i64) -> String {
    match (key, number) {
        (TopicKey::TimestampType, 1) => "LogAppendTime".to_string(),
        (TopicKey::TimestampType, _) => "CreateTime".to_string(),
        (TopicKey::CleanupPolicy, 1) => "compact".to_string(),
        (TopicKey::CleanupPolicy, 2) => "compact,delete".to_string(),
        (TopicKey::CleanupPolicy, _) => "delete".to_string(),
        (TopicKey::MinCleanableDirtyRatio, n) => {
            // Kafka's decimal form: 500 thousandths is "0.5".
            let fraction = format!("{:03}", n.rem_euclid(1000));
            let fraction = fraction.trim_end_matches('0');
            let fraction = if fraction.is_empty() { "0" } else { fraction };
            format!("{}.{fraction}", n.div_euclid(1000))
        }
        (_, n) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
    use super::*;

    fn full() -> TopicConfig {
        TopicConfig {
            segment_bytes: Some(1 << 20),
            segment_ms: Some(None),
            index_interval_bytes: Some(1024),
            max_batch_bytes: Some(4096),
            retention_bytes: Some(Some(1 << 30)),
            retention_ms: Some(None),
            timestamp_type: Some(TimestampType::LogAppendTime),
            max_timestamp_ahead_ms: Some(Some(0)),
            max_timestamp_behind_ms: Some(Some(60_000)),
            cleanup_policy: Some(CleanupPolicy::CompactDelete),
            delete_retention_ms: Some(3_600_000),
            min_cleanable_dirty_permille: Some(250),
        }
    }

    #[test]
    fn entries_round_trip() {
        for config in [TopicConfig::default(), full()] {
            let entries = config.to_entries();
            assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(TopicConfig::from_entries(&entries).unwrap(), config);
        }
        assert_eq!(full().to_entries().len(), TopicKey::ALL.len());
    }

    #[test]
    fn strings_round_trip_and_unset() {
        let mut config = TopicConfig::default();
        for (name, value) in full().overrides() {
            config.set(name, &value).unwrap();
        }
        assert_eq!(config, full());
        for key in TopicKey::ALL {
            config.unset(key.name()).unwrap();
        }
        assert_eq!(config, TopicConfig::default());
    }

    #[test]
    fn apply_overrides_and_keeps_the_rest() {
        let base = LogConfig::default();
        let effective = full().apply(&base).unwrap();
        assert_eq!(effective.segment_bytes, 1 << 20);
        assert_eq!(effective.segment_ms, None);
        assert_eq!(effective.retention_bytes, Some(1 << 30));
        assert_eq!(effective.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(effective.max_timestamp_behind_ms, Some(60_000));
        assert_eq!(effective.max_unsynced_bytes, base.max_unsynced_bytes);
        assert_eq!(TopicConfig::default().apply(&base).unwrap(), base);
        let described = full().describe(&base).unwrap();
        assert_eq!(described.len(), TopicKey::ALL.len());
        assert!(described.iter().all(|(_, _, overridden)| *overridden));
        let described = TopicConfig::default().describe(&base).unwrap();
        assert!(described.iter().all(|(_, _, overridden)| !*overridden));
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = LogConfig::default();
        let key_of = |e: Error| match e {
            Error::InvalidTopicConfig { key, .. } => key,
            other => panic!("{other}"),
        };
        let cases: [(TopicConfig, &str); 5] = [
            (
                TopicConfig {
                    segment_bytes: Some(10),
                    ..TopicConfig::default()
                },
                "segment.bytes",
            ),
            (
                TopicConfig {
                    segment_bytes: Some(4096),
                    ..TopicConfig::default()
                },
                "max.message.bytes",
            ),
            (
                TopicConfig {
                    segment_ms: Some(Some(0)),
                    ..TopicConfig::default()
                },
                "segment.ms",
            ),
            (
                TopicConfig {
                    retention_ms: Some(Some(-5)),
                    ..TopicConfig::default()
                },
                "retention.ms",
            ),
            (
                TopicConfig {
                    max_batch_bytes: Some(10),
                    ..TopicConfig::default()
                },
                "max.message.bytes",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(key_of(config.apply(&base).unwrap_err()), key);
        }
        let mut config = TopicConfig::default();
        assert_eq!(
            key_of(config.set("cleanup.policy.x", "1").unwrap_err()),
            "cleanup.policy.x"
        );
        assert_eq!(
            key_of(config.set("retention.ms", "soon").unwrap_err()),
            "retention.ms"
        );
        assert_eq!(
            key_of(config.set("message.timestamp.type", "Now").unwrap_err()),
            "message.timestamp.type"
        );
        assert_eq!(
            key_of(TopicConfig::from_entries(&[(999, 0)]).unwrap_err()),
            "#999"
        );
    }
}
