//! The durable watermark: a per-partition record of an offset below which every batch is known
//! durable, kept current at the cost of one small in-place write per durable round
//! (docs/FORMAT.md §5).
//!
//! The checkpoint's recovery point is written by rename, three syncs, so only now and then; on
//! its own it would let recovery mistake damage to recently acknowledged data for a torn tail.
//! The watermark closes that gap. Each durable round also rewrites one of two 512-byte slots
//! (alternating, each with a sequence number and CRC) with the offset that was durable *before*
//! the round, and syncs it with the round's data. It never leads the data, whatever order the
//! syncs complete in; a torn slot leaves the other, older one.

use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::LogError;
use std::path::Path;

/// File name of the watermark in a partition directory.
pub const WATERMARK_FILE: &str = "partition.watermark";
/// Bytes per slot (one sector, so a slot write is never split across sectors).
pub const SLOT_BYTES: usize = 512;
const MAGIC: &[u8; 8] = b"RILLWMRK";
const ENCODED_BYTES: usize = 28;

/// One slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Incremented by every write; the valid slot with the larger one is current.
    pub sequence: u64,
    /// Every batch below this offset was durable when the slot was written.
    pub durable_offset: i64,
}

impl Slot {
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

/// The current slot of watermark file bytes, if any slot is valid.
pub fn current(bytes: &[u8]) -> Option<Slot> {
    let a = Slot::parse(bytes);
    let b = bytes.get(SLOT_BYTES..).and_then(Slot::parse);
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.sequence > a.sequence { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// An open watermark file.
#[derive(Debug)]
pub(crate) struct Watermark {
    pub file: FileId,
    /// The last slot written (or read at open).
    pub last: Slot,
}

/// Reads the current slot of the partition in `dir`, if the file exists and a slot is valid.
pub fn read(disk: &dyn Disk, dir: &Path) -> Result<Option<Slot>, LogError> {
    Watermark::read(disk, dir, true)
}

impl Watermark {
    /// Reads the current slot. With `sync`, the file is synced first, so that what is read is
    /// on disk and not only in the page cache (after a failed fsync, cached pages can be clean
    /// without being durable); a caller that only needs a hint may skip it.
    pub(crate) fn read(disk: &dyn Disk, dir: &Path, sync: bool) -> Result<Option<Slot>, LogError> {
        let path = dir.join(WATERMARK_FILE);
        let file = match disk.open(&path, OpenMode::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io("open", path, e)),
        };
        // Each slot is read on its own: an unreadable sector costs one slot, not both. An
        // unreadable watermark only costs protection, never correctness.
        let mut slots = [[0u8; SLOT_BYTES]; 2];
        let synced = !sync || disk.fdatasync(file).is_ok();
        for (i, slot) in slots.iter_mut().enumerate() {
            if !synced || disk::read_exact_at(disk, file, (i * SLOT_BYTES) as u64, slot).is_err() {
                slot.fill(0);
            }
        }
        disk.close(file);
        Ok(current(&slots.concat()))
    }

    /// Opens (creating durably if needed) the watermark file and sets it to `durable_offset` in
    /// both slots, so no older, higher value can survive (used at open, after recovery, and
    /// before a truncation cuts data).
    pub fn reset(
        disk: &dyn Disk,
        dir: &Path,
        durable_offset: i64,
        sequence: u64,
    ) -> Result<Self, LogError> {
        let path = dir.join(WATERMARK_FILE);
        let file = disk
            .open(&path, OpenMode::Create)
            .map_err(|e| LogError::io("open", &path, e))?;
        let mut watermark = Self {
            file,
            last: Slot {
                sequence,
                durable_offset,
            },
        };
        let created = disk
            .file_len(file)
            .and_then(|len| if len == 0 { disk.sync_dir(dir) } else { Ok(()) });
        if let Err(e) = created.and_then(|()| watermark.write_both(disk, durable_offset)) {
            disk.close(file);
            return Err(LogError::io("write watermark", path, e));
        }
        Ok(watermark)
    }

    /// The watermark file as it is, when its current slot already holds `slot` (a clean open
    /// whose end has not moved): nothing is written. The next write goes to the other slot.
    pub fn resume(disk: &dyn Disk, dir: &Path, slot: Slot) -> Result<Self, LogError> {
        let path = dir.join(WATERMARK_FILE);
        let file = disk
            .open(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        Ok(Self { file, last: slot })
    }

    /// Writes `durable_offset` to one slot and syncs, then the other: a crash at any point
    /// leaves a valid slot holding at most the previous value or the new one.
    pub fn write_both(&mut self, disk: &dyn Disk, durable_offset: i64) -> std::io::Result<()> {
        for _ in 0..2 {
            let (position, slot) = self.next_slot(durable_offset);
            disk::write_all_at(disk, self.file, position, &[&slot.encode()])?;
            disk.fdatasync(self.file)?;
            self.last = slot;
        }
        Ok(())
    }

    /// The position and contents of the next slot to write.
    pub fn next_slot(&self, durable_offset: i64) -> (u64, Slot) {
        let sequence = self.last.sequence + 1;
        let position = (sequence % 2) * SLOT_BYTES as u64;
        (
            position,
            Slot {
                sequence,
                durable_offset,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins() {
        let a = Slot {
            sequence: 4,
            durable_offset: 10,
        }
        .encode();
        let b = Slot {
            sequence: 5,
            durable_offset: 20,
        }
        .encode();
        let mut file = [a, b].concat();
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
}
