//! Topic names and partition directory names (`<topic>-<index>`, as in Kafka).

use crate::error::{Error, Result};

/// Longest topic name (Kafka's limit, which keeps `<topic>-<index>` a valid file name).
pub const MAX_TOPIC_NAME_BYTES: usize = 249;
/// Most partitions in one topic.
pub const MAX_PARTITIONS: u32 = 100_000;
/// Suffix of a partition directory being deleted.
pub(crate) const DELETE_SUFFIX: &str = ".delete";

/// Checks a topic name: 1 to 249 bytes of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_TOPIC_NAME_BYTES {
        "longer than 249 bytes"
    } else if name == "." || name == ".." {
        "'.' and '..' are not topic names"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "only ASCII letters, digits, '.', '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTopic {
        name: name.to_string(),
        reason: reason.to_string(),
    })
}

pub(crate) fn validate_partitions(name: &str, partitions: u32) -> Result<()> {
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(Error::InvalidTopic {
            name: name.to_string(),
            reason: format!("partition count must be in 1..={MAX_PARTITIONS}, got {partitions}"),
        });
    }
    Ok(())
}

/// The directory name of a partition.
pub(crate) fn dir_name(topic: &str, index: u32) -> String {
    format!("{topic}-{index}")
}

/// Parses `<topic>-<index>`; `None` for anything else.
pub(crate) fn parse_dir_name(name: &str) -> Option<(&str, u32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: u32 = index.parse().ok()?;
    if index >= MAX_PARTITIONS || validate_name(topic).is_err() || dir_name(topic, index) != name {
        return None;
    }
    Some((topic, index))
}

/// Which shard owns a partition: the topic's hash spreads topics, the index spreads a topic's
/// partitions round-robin.
pub(crate) fn shard_of(topic: &str, index: u32, shards: usize) -> usize {
    // FNV-1a: stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ((hash % shards as u64 + u64::from(index)) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("orders.v1_2-x").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dir_names_round_trip() {
        assert_eq!(parse_dir_name("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(parse_dir_name(&dir_name("a.b", 0)), Some(("a.b", 0)));
        for bad in [
            "topic",
            "topic-",
            "-1",
            "t-01",
            "t-1.delete",
            "t-x",
            "t-99999999999",
        ] {
            assert_eq!(parse_dir_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn partitions_of_a_topic_spread_over_shards() {
        let shards: std::collections::BTreeSet<usize> =
            (0..4).map(|i| shard_of("t", i, 4)).collect();
        assert_eq!(shards.len(), 4);
        assert_eq!(shard_of("t", 0, 1), 0);
    }
}
