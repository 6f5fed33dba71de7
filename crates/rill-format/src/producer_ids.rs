//! The producer-id file's encoding (docs/FORMAT.md §9): the first producer id not yet handed
//! out by any run of the log. I/O-free; `rill`'s `producer_ids` module allocates ids in blocks
//! and writes the file (atomically: temp file, fdatasync, rename, directory fsync) before it
//! hands out an id of a new block, so an id is never handed out twice, across crashes too.
//!
//! ```text
//! 0   8  magic "RILLPIDS"
//! 8   2  version (1)
//! 10  8  next unallocated id (i64, >= 0)
//! 18  4  CRC-32C of bytes 0..18
//! ```

/// File name in the data directory.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// File name while it is written.
pub const PRODUCER_IDS_TEMP_FILE: &str = "producer-ids.tmp";
/// Size of the file.
pub const PRODUCER_IDS_BYTES: usize = 22;
const MAGIC: &[u8; 8] = b"RILLPIDS";
const VERSION: u16 = 1;

/// Why producer-id file bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdsError {
    /// Not exactly [`PRODUCER_IDS_BYTES`] long.
    #[error("producer-id file is {0} bytes, expected {PRODUCER_IDS_BYTES}")]
    WrongLength(usize),
    /// Wrong magic or version.
    #[error("not a producer-id file of this version")]
    BadHeader,
    /// The CRC does not match.
    #[error("producer-id file CRC mismatch")]
    CrcMismatch,
    /// A negative id.
    #[error("producer-id file holds a negative id")]
    OutOfRange,
}

/// Encodes the next unallocated id.
pub fn encode(next_id: i64) -> [u8; PRODUCER_IDS_BYTES] {
    let mut out = [0u8; PRODUCER_IDS_BYTES];
    out[0..8].copy_from_slice(MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_be_bytes());
    out[10..18].copy_from_slice(&next_id.to_be_bytes());
    let crc = crc32c::crc32c(&out[..18]);
    out[18..22].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Parses the file: the next unallocated id.
pub fn parse(buf: &[u8]) -> Result<i64, ProducerIdsError> {
    let Ok(buf) = <&[u8; PRODUCER_IDS_BYTES]>::try_from(buf) else {
        return Err(ProducerIdsError::WrongLength(buf.len()));
    };
    if &buf[0..8] != MAGIC || buf[8..10] != VERSION.to_be_bytes() {
        return Err(ProducerIdsError::BadHeader);
    }
    let crc = u32::from_be_bytes([buf[18], buf[19], buf[20], buf[21]]);
    if crc32c::crc32c(&buf[..18]) != crc {
        return Err(ProducerIdsError::CrcMismatch);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[10..18]);
    let id = i64::from_be_bytes(id);
    if id < 0 {
        return Err(ProducerIdsError::OutOfRange);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let bytes = encode(123_456);
        assert_eq!(parse(&bytes), Ok(123_456));
        assert_eq!(&bytes[..8], b"RILLPIDS");
        for at in 0..bytes.len() {
            let mut bad = bytes;
            bad[at] ^= 0x20;
            assert!(parse(&bad).is_err(), "flip at {at}");
        }
        assert!(parse(&bytes[..21]).is_err());
        assert_eq!(parse(&encode(-1)), Err(ProducerIdsError::OutOfRange));
    }
}
