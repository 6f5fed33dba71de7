//! The durable watermark: a per-partition record of an offset below which every batch is known
//! durable, kept current at the cost of one small in-place write per durable round
//! (docs/FORMAT.md §5).
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

use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::LogError;
use std::path::Path;

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

/// Where a valid slot may be: the two blocks, and the second slot of a legacy file (the current
/// layout keeps those bytes zero, so only a legacy file has a slot there).
const SLOT_POSITIONS: [u64; 3] = [0, SLOT_BYTES as u64, LEGACY_SECOND_SLOT];

/// The current slot of watermark file bytes (either layout), if any slot is valid: the valid
/// slot with the largest sequence.
pub fn current(bytes: &[u8]) -> Option<Slot> {
    SLOT_POSITIONS
        .iter()
        .filter_map(|&at| bytes.get(at as usize..).and_then(Slot::parse))
        .max_by_key(|slot| slot.sequence)
}

/// Whether a watermark file of `len` bytes is in the layout before slots had blocks of their
/// own, and must be rewritten before a slot is written in place.
pub fn is_legacy(len: u64) -> bool {
    len > 0 && len <= LEGACY_FILE_BYTES
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
        let synced = !sync || disk.fdatasync(file).is_ok();
        let mut found: Option<Slot> = None;
        for at in SLOT_POSITIONS {
            let mut encoded = [0u8; ENCODED_BYTES];
            if !synced || disk::read_exact_at(disk, file, at, &mut encoded).is_err() {
                continue;
            }
            if let Some(slot) = Slot::parse(&encoded)
                && found.is_none_or(|f| slot.sequence > f.sequence)
            {
                found = Some(slot);
            }
        }
        disk.close(file);
        Ok(found)
    }

    /// Opens (creating durably if needed) the watermark file and sets it to `durable_offset` in
    /// both slots, so no older, higher value can survive (used at open, after recovery, and
    /// before a truncation cuts data). A legacy file is rewritten in the current layout, block 1
    /// first: its two slots share block 0, which a torn write of block 0 could garble whole.
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
        let written = disk.file_len(file).and_then(|len| {
            if len == 0 {
                disk.sync_dir(dir)?;
            }
            // The next write goes to block `(sequence + 1) % 2`: for a legacy file, block 1.
            let sequence = if is_legacy(len) && sequence % 2 == 1 {
                sequence + 1
            } else {
                sequence
            };
            let mut watermark = Self {
                file,
                last: Slot {
                    sequence,
                    durable_offset,
                },
            };
            watermark.write_both(disk, durable_offset)?;
            Ok(watermark)
        });
        written.map_err(|e| {
            disk.close(file);
            LogError::io("write watermark", path, e)
        })
    }

    /// The watermark file as it is, when its current slot already holds `slot` (a clean open
    /// whose end has not moved): nothing is written. The next write goes to the other slot. A
    /// legacy file is rewritten instead ([`Watermark::reset`]).
    pub fn resume(disk: &dyn Disk, dir: &Path, slot: Slot) -> Result<Self, LogError> {
        let path = dir.join(WATERMARK_FILE);
        let file = disk
            .open(&path, OpenMode::Existing)
            .map_err(|e| LogError::io("open", &path, e))?;
        match disk.file_len(file) {
            Ok(len) if !is_legacy(len) => Ok(Self { file, last: slot }),
            Ok(_) => {
                disk.close(file);
                Self::reset(disk, dir, slot.durable_offset, slot.sequence)
            }
            Err(e) => {
                disk.close(file);
                Err(LogError::io("stat", path, e))
            }
        }
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

    /// The position and contents of the next slot to write (its block is written whole:
    /// [`Slot::encode`] is a block).
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
    use rill_sim::{CrashKind, FaultConfig, SimDisk};

    fn slot(sequence: u64, durable_offset: i64) -> [u8; SLOT_BYTES] {
        Slot {
            sequence,
            durable_offset,
        }
        .encode()
    }

    #[test]
    fn the_newest_valid_slot_wins() {
        let mut file = [slot(4, 10), slot(5, 20)].concat();
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
        let legacy = [&slot(4, 10)[..512], &slot(5, 20)[..512]].concat();
        assert!(is_legacy(legacy.len() as u64));
        assert_eq!(current(&legacy).unwrap().durable_offset, 20);
        assert!(!is_legacy(FILE_BYTES));
    }

    fn garbling_disk(seed: u64) -> SimDisk {
        let disk = SimDisk::new(seed);
        disk.set_faults(FaultConfig {
            sector_bytes: 4096,
            garble_torn_sectors: true,
            ..FaultConfig::default()
        });
        disk::create_dir_durably(&disk, Path::new("/p")).unwrap();
        disk
    }

    /// Issue #15 item 2: on 4 KiB-sector media a torn slot write garbles its whole sector; the
    /// other slot, in a block of its own, survives.
    #[test]
    fn a_torn_slot_write_leaves_the_other_slot() {
        let dir = Path::new("/p");
        for seed in 0..300 {
            let disk = garbling_disk(seed);
            let mut watermark = Watermark::reset(&disk, dir, 10, 0).unwrap();
            watermark.write_both(&disk, 20).unwrap();
            let (position, next) = watermark.next_slot(30);
            disk::write_all_at(&disk, watermark.file, position, &[&next.encode()]).unwrap();
            disk.crash(CrashKind::Power);
            let found = read(&disk, dir).unwrap().map(|s| s.durable_offset);
            assert!(
                matches!(found, Some(20 | 30)),
                "seed {seed}: the durable slot was lost ({found:?})"
            );
        }
    }

    /// A legacy file keeps both slots in block 0: its upgrade writes block 1 first, so a power
    /// cut at any step of it leaves a valid slot.
    #[test]
    fn a_legacy_file_upgrades_without_a_window_of_no_slot() {
        let dir = Path::new("/p");
        for seed in 0..100 {
            for cut_after in 0..5 {
                let disk = garbling_disk(seed);
                let path = dir.join(WATERMARK_FILE);
                let file = disk.open(&path, OpenMode::CreateNew).unwrap();
                let legacy = [&slot(4, 10)[..512], &slot(5, 20)[..512]].concat();
                disk::write_all_at(&disk, file, 0, &[&legacy]).unwrap();
                disk.fdatasync(file).unwrap();
                disk.sync_dir(dir).unwrap();
                disk.close(file);
                let current = read(&disk, dir).unwrap().unwrap();
                disk.power_cut_after(cut_after);
                if let Ok(upgraded) = Watermark::resume(&disk, dir, current) {
                    assert_eq!(disk.file_len(upgraded.file).unwrap(), FILE_BYTES);
                    assert_eq!(upgraded.last.durable_offset, 20);
                    assert!(upgraded.last.sequence > 5);
                    disk.close(upgraded.file);
                }
                disk.crash(CrashKind::Power);
                let found = read(&disk, dir).unwrap().map(|s| s.durable_offset);
                assert_eq!(found, Some(20), "seed {seed}, cut after {cut_after}");
            }
        }
    }
}
