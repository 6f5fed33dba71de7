//! The durable watermark's encoding (docs/FORMAT.md §5), I/O-free: a per-partition record of an
//! offset below which every batch is known durable, kept current at the cost of one small
//! in-place write per durable round (`rill_segment::watermark` writes and reads the file).
//!
//! The checkpoint's recovery point is written by rename, three syncs, so only now and then; on
//! its own it would let recovery mistake damage to recently acknowledged data for a torn tail.
//! The watermark closes that gap. Each durable round also rewrites one of two slots (alternating,
//! each with a sequence number and CRC) with the offset that was durable *before* the round, and
//! syncs it with the round's data. It never leads the data, whatever order the syncs complete in.
//!
//! Each slot has a 4 KiB block of its own and is written as the whole block: on media with
//! 4 KiB physical sectors a power cut during a write can garble the whole sector being written,
//! and the other slot must not be in it. A file written before this layout (1024 bytes, slots at
//! 0 and 512) is still read; it is rewritten in the new layout at the next open, block 1 first.

/// File name of the watermark in a partition directory.
pub const WATERMARK_FILE: &str = "partition.watermark";
/// Bytes per slot: a 4 KiB block of its own, the largest physical sector in use, so a write
/// that garbles the sector it writes cannot reach the other slot.
pub const SLOT_BYTES: usize = 4096;
/// Bytes of the whole file: two slots.
pub const FILE_BYTES: u64 = 2 * SLOT_BYTES as u64;
/// The second slot's position in a file written before slots had blocks of their own.
pub const LEGACY_SECOND_SLOT: u64 = 512;
/// Bytes of a file written before slots had blocks of their own.
const LEGACY_FILE_BYTES: u64 = 1024;
const MAGIC: &[u8; 8] = b"RILLWMRK";
/// Bytes of a slot that carry data (the rest of its block is zero).
pub const ENCODED_BYTES: usize = 28;

/// One slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Incremented by every write; the valid slot with the larger one is current.
    pub sequence: u64,
    /// Every batch below this offset was durable when the slot was written.
    pub durable_offset: i64,
}

impl Slot {
    /// A slot holding `durable_offset`, written as the `sequence`th.
    pub fn new(sequence: u64, durable_offset: i64) -> Self {
        Self {
            sequence,
            durable_offset,
        }
    }

    /// The on-disk form: magic, sequence, offset, CRC-32 of the preceding bytes, zero padding.
    pub fn encode(&self) -> [u8; SLOT_BYTES] {
        let mut out = [0u8; SLOT_BYTES];
        out[0..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        out[16..24].copy_from_slice(&self.durable_offset.to_be_bytes());
        let crc = crc32fast::hash(&out[..24]);
        out[24..ENCODED_BYTES].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a slot; `None` if it is torn, zero, or otherwise invalid.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..ENCODED_BYTES)?;
        if &b[0..8] != MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes([b[24], b[25], b[26], b[27]]);
        if crc32fast::hash(&b[..24]) != crc {
            return None;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[8..16]);
        let sequence = u64::from_be_bytes(word);
        word.copy_from_slice(&b[16..24]);
        let durable_offset = i64::from_be_bytes(word);
        (durable_offset >= 0).then_some(Self {
            sequence,
            durable_offset,
        })
    }
}

/// Where a valid slot may be: the two blocks, and the second slot of a legacy file (the current
/// layout keeps those bytes zero, so only a legacy file has a slot there).
pub const SLOT_POSITIONS: [u64; 3] = [0, SLOT_BYTES as u64, LEGACY_SECOND_SLOT];

/// The current slot of watermark file bytes (either layout), if any slot is valid: the valid
/// slot with the largest sequence.
pub fn current(bytes: &[u8]) -> Option<Slot> {
    newest(
        SLOT_POSITIONS
            .iter()
            .filter_map(|&at| bytes.get(at as usize..).and_then(Slot::parse)),
    )
}

/// Of the valid slots found, the current one: the largest sequence.
pub fn newest(slots: impl IntoIterator<Item = Slot>) -> Option<Slot> {
    slots.into_iter().max_by_key(|slot| slot.sequence)
}

/// Whether a watermark file of `len` bytes is in the layout before slots had blocks of their
/// own, and must be rewritten before a slot is written in place.
pub fn is_legacy(len: u64) -> bool {
    len > 0 && len <= LEGACY_FILE_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins() {
        let mut file = [Slot::new(4, 10).encode(), Slot::new(5, 20).encode()].concat();
        assert_eq!(current(&file).unwrap().durable_offset, 20);
        file[SLOT_BYTES + 17] ^= 1;
        assert_eq!(
            current(&file).unwrap().durable_offset,
            10,
            "a torn newer slot falls back"
        );
        file[3] = 0;
        assert_eq!(current(&file), None);
        assert_eq!(current(&[]), None);
    }

    #[test]
    fn a_legacy_file_is_read() {
        let legacy = [
            &Slot::new(4, 10).encode()[..512],
            &Slot::new(5, 20).encode()[..512],
        ]
        .concat();
        assert!(is_legacy(legacy.len() as u64));
        assert_eq!(current(&legacy).unwrap().durable_offset, 20);
        assert!(!is_legacy(FILE_BYTES));
    }
}
