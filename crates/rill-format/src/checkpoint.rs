//! The per-partition checkpoint's encoding: log start offset, recovery point, clean-shutdown
//! flag (docs/FORMAT.md §4). I/O-free; `rill_segment::checkpoint` reads and writes the file
//! (atomically: temp file, fdatasync, rename, directory fsync). A torn or missing checkpoint
//! means "scan", never "trust".

/// File name of the checkpoint in a partition directory.
pub const CHECKPOINT_FILE: &str = "partition.checkpoint";
/// File name of the checkpoint while it is being written.
pub const CHECKPOINT_TEMP_FILE: &str = "partition.checkpoint.tmp";
/// Size of the checkpoint file.
pub const CHECKPOINT_BYTES: usize = 32;
const MAGIC: &[u8; 8] = b"RILLCKPT";
const VERSION: u16 = 1;
const FLAG_CLEAN_SHUTDOWN: u16 = 1;

/// The checkpointed state of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// First offset of the log; segments entirely below it may be deleted.
    pub log_start_offset: i64,
    /// Every batch below this offset was durable when the checkpoint was written. Never leads
    /// the durable data.
    pub recovery_point: i64,
    /// Set only by a clean shutdown, after everything was flushed; cleared at open.
    pub clean_shutdown: bool,
}

/// Why checkpoint bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not exactly [`CHECKPOINT_BYTES`] long.
    #[error("checkpoint is {0} bytes, expected {CHECKPOINT_BYTES}")]
    WrongLength(usize),
    /// Does not start with the magic.
    #[error("bad checkpoint magic")]
    BadMagic,
    /// A version this code does not know.
    #[error("unsupported checkpoint version {0}")]
    UnsupportedVersion(u16),
    /// The CRC does not match.
    #[error("checkpoint CRC mismatch")]
    CrcMismatch,
    /// Unknown flag bits or negative offsets.
    #[error("checkpoint fields out of range")]
    OutOfRange,
}

impl Checkpoint {
    /// The on-disk form.
    pub fn encode(&self) -> [u8; CHECKPOINT_BYTES] {
        let mut out = [0u8; CHECKPOINT_BYTES];
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_be_bytes());
        let flags = if self.clean_shutdown {
            FLAG_CLEAN_SHUTDOWN
        } else {
            0
        };
        out[10..12].copy_from_slice(&flags.to_be_bytes());
        out[12..20].copy_from_slice(&self.log_start_offset.to_be_bytes());
        out[20..28].copy_from_slice(&self.recovery_point.to_be_bytes());
        let crc = crc32fast::hash(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses and checks checkpoint bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let Ok(b) = <&[u8; CHECKPOINT_BYTES]>::try_from(bytes) else {
            return Err(CheckpointError::WrongLength(bytes.len()));
        };
        if &b[0..8] != MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let stored = u32::from_be_bytes([b[28], b[29], b[30], b[31]]);
        if crc32fast::hash(&b[..28]) != stored {
            return Err(CheckpointError::CrcMismatch);
        }
        let version = u16::from_be_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(CheckpointError::UnsupportedVersion(version));
        }
        let flags = u16::from_be_bytes([b[10], b[11]]);
        let i64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(v)
        };
        let log_start_offset = i64_at(12);
        let recovery_point = i64_at(20);
        if flags & !FLAG_CLEAN_SHUTDOWN != 0 || log_start_offset < 0 || recovery_point < 0 {
            return Err(CheckpointError::OutOfRange);
        }
        Ok(Self {
            log_start_offset,
            recovery_point,
            clean_shutdown: flags & FLAG_CLEAN_SHUTDOWN != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_every_damage() {
        let c = Checkpoint {
            log_start_offset: 5,
            recovery_point: 1234,
            clean_shutdown: true,
        };
        let bytes = c.encode();
        assert_eq!(Checkpoint::parse(&bytes), Ok(c));
        assert_eq!(
            Checkpoint::parse(&bytes[..31]),
            Err(CheckpointError::WrongLength(31))
        );
        assert_eq!(
            Checkpoint::parse(&[0u8; 32]),
            Err(CheckpointError::BadMagic)
        );
        for i in 8..32 {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(
                Checkpoint::parse(&bad).is_err(),
                "flip in byte {i} went unnoticed"
            );
        }
    }
}
