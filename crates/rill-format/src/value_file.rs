//! A small file holding one checked offset or id (docs/FORMAT.md §9 and §10): the producer-id
//! file and the cleaner's clean point. I/O-free.
//!
//! ```text
//! 0   8  magic (the file's own)
//! 8   2  version (1)
//! 10  8  value (i64, >= 0)
//! 18  4  CRC-32C of bytes 0..18
//! ```

/// Size of such a file.
pub const VALUE_FILE_BYTES: usize = 22;
const VERSION: u16 = 1;

/// Why value-file bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueFileError {
    /// Not exactly [`VALUE_FILE_BYTES`] long.
    #[error("file is {0} bytes, expected {VALUE_FILE_BYTES}")]
    WrongLength(usize),
    /// Wrong magic or version.
    #[error("wrong magic or version")]
    BadHeader,
    /// The CRC does not match.
    #[error("CRC mismatch")]
    CrcMismatch,
    /// A negative value.
    #[error("negative value")]
    OutOfRange,
}

/// Encodes `value` under `magic`.
pub fn encode(magic: &[u8; 8], value: i64) -> [u8; VALUE_FILE_BYTES] {
    let mut out = [0u8; VALUE_FILE_BYTES];
    out[0..8].copy_from_slice(magic);
    out[8..10].copy_from_slice(&VERSION.to_be_bytes());
    out[10..18].copy_from_slice(&value.to_be_bytes());
    let crc = crc32c::crc32c(&out[..18]);
    out[18..22].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Parses a file written by [`encode`] with `magic`.
pub fn parse(magic: &[u8; 8], buf: &[u8]) -> Result<i64, ValueFileError> {
    let Ok(buf) = <&[u8; VALUE_FILE_BYTES]>::try_from(buf) else {
        return Err(ValueFileError::WrongLength(buf.len()));
    };
    if &buf[0..8] != magic || buf[8..10] != VERSION.to_be_bytes() {
        return Err(ValueFileError::BadHeader);
    }
    let crc = u32::from_be_bytes([buf[18], buf[19], buf[20], buf[21]]);
    if crc32c::crc32c(&buf[..18]) != crc {
        return Err(ValueFileError::CrcMismatch);
    }
    let mut value = [0u8; 8];
    value.copy_from_slice(&buf[10..18]);
    let value = i64::from_be_bytes(value);
    if value < 0 {
        return Err(ValueFileError::OutOfRange);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let bytes = encode(b"RILLTEST", 123_456);
        assert_eq!(parse(b"RILLTEST", &bytes), Ok(123_456));
        assert_eq!(parse(b"RILLOTHR", &bytes), Err(ValueFileError::BadHeader));
        for at in 0..bytes.len() {
            let mut bad = bytes;
            bad[at] ^= 0x20;
            assert!(parse(b"RILLTEST", &bad).is_err(), "flip at {at}");
        }
        assert!(parse(b"RILLTEST", &bytes[..21]).is_err());
        assert_eq!(
            parse(b"RILLTEST", &encode(b"RILLTEST", -1)),
            Err(ValueFileError::OutOfRange)
        );
    }
}
