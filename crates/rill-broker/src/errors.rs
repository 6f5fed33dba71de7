//! rill errors as Kafka error codes.

use crate::protocol::error_code as code;
use rill::batch::BatchError;

/// The Kafka error code of a failed partition operation. `invalid_record` says whether the
/// request version knows INVALID_RECORD (Produce v8+); older clients get CORRUPT_MESSAGE for
/// a batch that is well framed but wrong inside, as Kafka does.
pub fn kafka_code(e: &rill::Error, invalid_record: bool) -> i16 {
    match e {
        rill::Error::UnknownTopic(_) | rill::Error::UnknownPartition { .. } => {
            code::UNKNOWN_TOPIC_OR_PARTITION
        }
        rill::Error::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        rill::Error::InvalidBatch(b) => batch_code(b, invalid_record),
        rill::Error::PartitionFailed(_) | rill::Error::Io { .. } | rill::Error::Corrupt(_) => {
            code::KAFKA_STORAGE_ERROR
        }
        rill::Error::ShuttingDown => code::NOT_LEADER_OR_FOLLOWER,
        rill::Error::InvalidTopic { .. } => code::INVALID_TOPIC_EXCEPTION,
        rill::Error::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
        rill::Error::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        rill::Error::ProducerFenced { .. } => code::INVALID_PRODUCER_EPOCH,
        rill::Error::InvalidTopicConfig { .. } => code::INVALID_CONFIG,
        _ => code::UNKNOWN_SERVER_ERROR,
    }
}

/// The Kafka error code of a batch that did not validate.
pub fn batch_code(e: &BatchError, invalid_record: bool) -> i16 {
    match e {
        BatchError::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
        BatchError::CrcMismatch { .. }
        | BatchError::ShorterThanHeader { .. }
        | BatchError::InvalidLength { .. }
        | BatchError::LengthMismatch { .. } => code::CORRUPT_MESSAGE,
        // Kafka's InvalidTimestampException.
        BatchError::MaxTimestampMismatch { .. }
        | BatchError::TimestampAhead { .. }
        | BatchError::TimestampBehind { .. }
        | BatchError::LogAppendTimeFromProducer => code::INVALID_TIMESTAMP,
        _ if invalid_record => code::INVALID_RECORD,
        _ => code::CORRUPT_MESSAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_errors_clients_act_on() {
        let crc = rill::Error::InvalidBatch(BatchError::CrcMismatch {
            stored: 1,
            computed: 2,
        });
        assert_eq!(kafka_code(&crc, true), code::CORRUPT_MESSAGE);
        let large = rill::Error::InvalidBatch(BatchError::TooLarge {
            bytes: 10,
            max_bytes: 5,
        });
        assert_eq!(kafka_code(&large, false), code::MESSAGE_TOO_LARGE);
        let pinned = rill::Error::InvalidBatch(BatchError::MaxTimestampMismatch {
            declared: i64::MAX,
            computed: 0,
        });
        assert_eq!(kafka_code(&pinned, true), code::INVALID_TIMESTAMP);
        let empty = rill::Error::InvalidBatch(BatchError::EmptyBatch);
        assert_eq!(kafka_code(&empty, true), code::INVALID_RECORD);
        assert_eq!(kafka_code(&empty, false), code::CORRUPT_MESSAGE);
        assert_eq!(
            kafka_code(&rill::Error::UnknownTopic("t".into()), true),
            code::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
}
