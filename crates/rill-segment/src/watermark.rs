//! The durable watermark file (docs/FORMAT.md §5): one slot rewritten in place per durable
//! round, both rewritten at open and before a truncation. The encoding (slots, layouts, which
//! slot is current) is `rill_format::watermark`.

use crate::disk::{self, Disk, FileId, OpenMode};
use crate::error::LogError;
use rill_format::watermark::{ENCODED_BYTES, SLOT_POSITIONS, newest};
pub use rill_format::watermark::{
    FILE_BYTES, SLOT_BYTES, Slot, WATERMARK_FILE, current, is_legacy,
};
use std::path::Path;

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
        let slots = SLOT_POSITIONS.iter().filter_map(|&at| {
            let mut encoded = [0u8; ENCODED_BYTES];
            let read = synced && disk::read_exact_at(disk, file, at, &mut encoded).is_ok();
            read.then(|| Slot::parse(&encoded)).flatten()
        });
        let found = newest(slots);
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
                last: Slot::new(sequence, durable_offset),
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
        (position, Slot::new(sequence, durable_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_sim::{CrashKind, FaultConfig, SimDisk};

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
                let legacy = [
                    &Slot::new(4, 10).encode()[..512],
                    &Slot::new(5, 20).encode()[..512],
                ]
                .concat();
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
