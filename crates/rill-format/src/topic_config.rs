//! The topic-configuration file's encoding (docs/FORMAT.md §7): a topic's partition count and
//! its settings that differ from the log's defaults, as numbered keys with 64-bit values.
//! I/O-free; `rill`'s `topic_store` reads and writes the files (atomically: temp file,
//! fdatasync, rename, directory fsync). What each key means is `rill`'s `TopicConfig`.
//!
//! ```text
//! 0   8  magic "RILLTOPC"
//! 8   2  version (1), big-endian
//! 10  4  partition count (1..=MAX_PARTITIONS), big-endian
//! 14  2  entry count n (0..=MAX_ENTRIES), big-endian
//! 16  10·n entries, keys strictly ascending: key u16, value i64, big-endian
//! 16+10n  4  CRC-32C of bytes 0..16+10n, big-endian
//! ```

/// Directory under the data directory that holds one file per topic.
pub const TOPIC_CONFIG_DIR: &str = "topic-configs";
/// Suffix of a topic's configuration file (`<topic>.cfg`).
pub const CONFIG_SUFFIX: &str = ".cfg";
/// Suffix of a topic's configuration file while it is being written (`<topic>.tmp`).
pub const TEMP_SUFFIX: &str = ".tmp";
/// Most partitions a topic may have (the engine's limit, here so the decoder can check it).
pub const MAX_PARTITIONS: u32 = 100_000;
/// Most entries a file holds: far above the keys defined, so a file is always small.
pub const MAX_ENTRIES: usize = 64;
/// Bytes before the entries.
const HEADER_BYTES: usize = 16;
/// Bytes of one entry.
const ENTRY_BYTES: usize = 10;
/// Bytes of the trailing CRC.
const CRC_BYTES: usize = 4;
/// Largest file: a reader refuses anything longer without reading it all.
pub const MAX_FILE_BYTES: usize = HEADER_BYTES + MAX_ENTRIES * ENTRY_BYTES + CRC_BYTES;
const MAGIC: &[u8; 8] = b"RILLTOPC";
const VERSION: u16 = 1;

/// The keys' numbers in the file (docs/FORMAT.md §7), never reused. What each means is
/// `rill`'s `TopicKey`; tools that read the file without `rill` use these.
pub mod key {
    /// `segment.bytes`.
    pub const SEGMENT_BYTES: u16 = 1;
    /// `segment.ms`.
    pub const SEGMENT_MS: u16 = 2;
    /// `index.interval.bytes`.
    pub const INDEX_INTERVAL_BYTES: u16 = 3;
    /// `max.message.bytes`.
    pub const MAX_MESSAGE_BYTES: u16 = 4;
    /// `retention.bytes`.
    pub const RETENTION_BYTES: u16 = 5;
    /// `retention.ms`.
    pub const RETENTION_MS: u16 = 6;
    /// `message.timestamp.type`.
    pub const TIMESTAMP_TYPE: u16 = 7;
    /// `message.timestamp.after.max.ms`.
    pub const TIMESTAMP_AFTER_MAX_MS: u16 = 8;
    /// `message.timestamp.before.max.ms`.
    pub const TIMESTAMP_BEFORE_MAX_MS: u16 = 9;
    /// `cleanup.policy` (0 delete, 1 compact, 2 both).
    pub const CLEANUP_POLICY: u16 = 10;
    /// `delete.retention.ms`.
    pub const DELETE_RETENTION_MS: u16 = 11;
    /// `min.cleanable.dirty.ratio`, in thousandths.
    pub const MIN_CLEANABLE_DIRTY_RATIO: u16 = 12;
}

/// A topic's stored configuration: its partition count and `(key, value)` overrides, keys
/// strictly ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicConfigRecord {
    /// Partitions of the topic.
    pub partitions: u32,
    /// Settings that differ from the log's defaults, by key number, ascending.
    pub entries: Vec<(u16, i64)>,
}

/// Why topic-configuration bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicConfigError {
    /// Shorter than its header and CRC, or not as long as its entry count says.
    #[error("topic config is {len} bytes, expected {expected}")]
    WrongLength {
        /// Bytes given.
        len: usize,
        /// Bytes the header implies (or the least possible).
        expected: usize,
    },
    /// Does not start with the magic.
    #[error("bad topic config magic")]
    BadMagic,
    /// A version this code does not know.
    #[error("unsupported topic config version {0}")]
    UnsupportedVersion(u16),
    /// The CRC does not match.
    #[error("topic config CRC mismatch")]
    CrcMismatch,
    /// A partition count of 0 or above [`MAX_PARTITIONS`].
    #[error("topic config partition count {0} out of range")]
    Partitions(u32),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("topic config holds {0} entries, at most {MAX_ENTRIES} allowed")]
    TooManyEntries(usize),
    /// Keys not strictly ascending (a duplicate or out of order).
    #[error("topic config keys not strictly ascending at key {0}")]
    KeysOutOfOrder(u16),
}

impl TopicConfigRecord {
    /// The on-disk form. Fails if the record itself breaks the format's rules (the engine
    /// never writes such a record).
    pub fn encode(&self) -> Result<Vec<u8>, TopicConfigError> {
        self.check()?;
        let mut out = Vec::with_capacity(HEADER_BYTES + self.entries.len() * ENTRY_BYTES + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.partitions.to_be_bytes());
        // At most MAX_ENTRIES (checked above), so it fits.
        out.extend_from_slice(&(self.entries.len() as u16).to_be_bytes());
        for (key, value) in &self.entries {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(out)
    }

    /// Parses a whole file.
    pub fn parse(buf: &[u8]) -> Result<Self, TopicConfigError> {
        let least = HEADER_BYTES + CRC_BYTES;
        if buf.len() < least || buf.len() > MAX_FILE_BYTES {
            return Err(TopicConfigError::WrongLength {
                len: buf.len(),
                expected: least,
            });
        }
        if &buf[0..8] != MAGIC {
            return Err(TopicConfigError::BadMagic);
        }
        let count = usize::from(be_u16(buf, 14));
        let expected = HEADER_BYTES + count * ENTRY_BYTES + CRC_BYTES;
        if buf.len() != expected {
            return Err(TopicConfigError::WrongLength {
                len: buf.len(),
                expected,
            });
        }
        let body = expected - CRC_BYTES;
        let stored = u32::from_be_bytes([buf[body], buf[body + 1], buf[body + 2], buf[body + 3]]);
        if crc32c::crc32c(&buf[..body]) != stored {
            return Err(TopicConfigError::CrcMismatch);
        }
        let version = be_u16(buf, 8);
        if version != VERSION {
            return Err(TopicConfigError::UnsupportedVersion(version));
        }
        let partitions = u32::from_be_bytes([buf[10], buf[11], buf[12], buf[13]]);
        let entries = buf[HEADER_BYTES..body]
            .chunks_exact(ENTRY_BYTES)
            .map(|e| {
                let mut value = [0u8; 8];
                value.copy_from_slice(&e[2..10]);
                (u16::from_be_bytes([e[0], e[1]]), i64::from_be_bytes(value))
            })
            .collect();
        let record = Self {
            partitions,
            entries,
        };
        record.check()?;
        Ok(record)
    }

    fn check(&self) -> Result<(), TopicConfigError> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(TopicConfigError::Partitions(self.partitions));
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(TopicConfigError::TooManyEntries(self.entries.len()));
        }
        for pair in self.entries.windows(2) {
            if pair[0].0 >= pair[1].0 {
                return Err(TopicConfigError::KeysOutOfOrder(pair[1].0));
            }
        }
        Ok(())
    }
}

/// The file name of `topic`'s configuration.
pub fn file_name(topic: &str) -> String {
    format!("{topic}{CONFIG_SUFFIX}")
}

/// The file name of `topic`'s configuration while it is written.
pub fn temp_file_name(topic: &str) -> String {
    format!("{topic}{TEMP_SUFFIX}")
}

/// The topic a configuration file name belongs to (`None` for temp files and anything else).
pub fn topic_of(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(CONFIG_SUFFIX)
        .filter(|topic| !topic.is_empty())
}

fn be_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn sample() -> TopicConfigRecord {
        TopicConfigRecord {
            partitions: 3,
            entries: vec![(1, 1 << 20), (4, -1), (7, 86_400_000)],
        }
    }

    #[test]
    fn round_trips_byte_exact() {
        let bytes = sample().encode().unwrap();
        assert_eq!(bytes.len(), 16 + 3 * 10 + 4);
        assert_eq!(&bytes[..8], b"RILLTOPC");
        assert_eq!(&bytes[8..10], &[0, 1]);
        assert_eq!(&bytes[10..14], &[0, 0, 0, 3]);
        assert_eq!(&bytes[14..16], &[0, 3]);
        assert_eq!(&bytes[16..18], &[0, 1]);
        assert_eq!(&bytes[18..26], &(1i64 << 20).to_be_bytes());
        let crc = crc32c::crc32c(&bytes[..46]);
        assert_eq!(&bytes[46..], &crc.to_be_bytes());
        assert_eq!(TopicConfigRecord::parse(&bytes).unwrap(), sample());
        let empty = TopicConfigRecord {
            partitions: 1,
            entries: vec![],
        };
        assert_eq!(
            TopicConfigRecord::parse(&empty.encode().unwrap()).unwrap(),
            empty
        );
    }

    #[test]
    fn damage_is_refused() {
        let bytes = sample().encode().unwrap();
        for len in 0..bytes.len() {
            assert!(TopicConfigRecord::parse(&bytes[..len]).is_err(), "{len}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(TopicConfigRecord::parse(&bad).is_err(), "flip at {at}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TopicConfigRecord::parse(&longer).is_err());
    }

    #[test]
    fn rules_hold_on_both_sides() {
        let out_of_order = TopicConfigRecord {
            partitions: 1,
            entries: vec![(4, 0), (4, 1)],
        };
        assert_eq!(
            out_of_order.encode(),
            Err(TopicConfigError::KeysOutOfOrder(4))
        );
        let zero = TopicConfigRecord {
            partitions: 0,
            entries: vec![],
        };
        assert_eq!(zero.encode(), Err(TopicConfigError::Partitions(0)));
        let many = TopicConfigRecord {
            partitions: 1,
            entries: (0..=MAX_ENTRIES as u16).map(|k| (k, 0)).collect(),
        };
        assert!(matches!(
            many.encode(),
            Err(TopicConfigError::TooManyEntries(_))
        ));
        // A well-formed file whose keys repeat (written by hand or damaged in a way the CRC
        // missed) is refused too.
        let mut bytes = TopicConfigRecord {
            partitions: 1,
            entries: vec![(4, 0), (5, 1)],
        }
        .encode()
        .unwrap();
        bytes[26..28].copy_from_slice(&4u16.to_be_bytes());
        let body = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            TopicConfigRecord::parse(&bytes),
            Err(TopicConfigError::KeysOutOfOrder(4))
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name("orders"), "orders.cfg");
        assert_eq!(topic_of("orders.cfg"), Some("orders"));
        assert_eq!(topic_of("a.cfg.cfg"), Some("a.cfg"));
        assert_eq!(topic_of(&temp_file_name("orders")), None);
        assert_eq!(topic_of(".cfg"), None);
        // The longest topic name keeps both names within a file name's 255 bytes.
        let long = "x".repeat(249);
        assert!(file_name(&long).len() <= 255 && temp_file_name(&long).len() <= 255);
    }
}
