//! Producer ids for idempotent producers (`Log::init_producer_id`), handed out in blocks: the
//! file `producer-ids` in the data directory (docs/FORMAT.md §9) records the first id no run
//! has handed out, and is written (atomically and durably) *before* any id of a new block is
//! handed out. So an id is never handed out twice, whatever crashes; a crash only skips the
//! rest of a block. Kafka's `ProducerIdManager` hands out blocks of 1000 the same way.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use rill_format::producer_ids::{
    self, PRODUCER_IDS_BYTES, PRODUCER_IDS_FILE, PRODUCER_IDS_TEMP_FILE,
};
use rill_segment::disk::{self, Disk};
use std::path::{Path, PathBuf};

/// Ids handed out per write of the file.
pub(crate) const BLOCK: i64 = 1000;

/// An idempotent producer's identity: use it in the batches' `producerId` and `producerEpoch`,
/// numbering its batches from sequence 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerId {
    /// The id, never handed out before by this log.
    pub id: i64,
    /// The epoch (0 for a new id).
    pub epoch: i16,
}

/// The allocator: the ids left in the current block.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    data_dir: PathBuf,
    /// `next..end` may be handed out; `end` is what the file records.
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Reads the file (missing: ids start at 0). A damaged file fails the open, unless
    /// `repair`, which starts past any id the log's partitions hold (`highest_seen`, asked
    /// only then: it looks at every partition).
    pub(crate) fn open(
        disk: &dyn Disk,
        data_dir: &Path,
        repair: bool,
        highest_seen: impl FnOnce() -> i64,
    ) -> Result<Self> {
        let path = data_dir.join(PRODUCER_IDS_FILE);
        let next = match read(disk, &path)? {
            None => 0,
            Some(Ok(next)) => next,
            Some(Err(detail)) if repair => {
                tracing::warn!(path = %path.display(), %detail, "damaged producer-id file: ids restart past the highest in the log (repair)");
                highest_seen().saturating_add(1).max(0)
            }
            Some(Err(detail)) => {
                return Err(Error::DamagedMetadata { path, detail });
            }
        };
        let _ = disk.remove_file(&data_dir.join(PRODUCER_IDS_TEMP_FILE));
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            block: Mutex::new((next, next)),
        })
    }

    /// Hands out the next id, writing the file first when a new block starts.
    pub(crate) fn next(&self, disk: &dyn Disk) -> Result<ProducerId> {
        let mut block = self.block.lock();
        let (next, end) = *block;
        if next == i64::MAX {
            return Err(Error::Config("producer ids are exhausted".into()));
        }
        if next >= end {
            let new_end = next.saturating_add(BLOCK);
            write(disk, &self.data_dir, new_end)?;
            block.1 = new_end;
        }
        block.0 = next + 1;
        Ok(ProducerId { id: next, epoch: 0 })
    }
}

fn read(disk: &dyn Disk, path: &Path) -> Result<Option<Result<i64, String>>> {
    let bytes = disk::read_small_file(disk, path, PRODUCER_IDS_BYTES)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(bytes.map(|b| producer_ids::parse(&b).map_err(|e| e.to_string())))
}

fn write(disk: &dyn Disk, data_dir: &Path, next: i64) -> Result<()> {
    let bytes = producer_ids::encode(next);
    disk::write_file_atomically(
        disk,
        data_dir,
        PRODUCER_IDS_FILE,
        PRODUCER_IDS_TEMP_FILE,
        &bytes,
    )
    .map_err(|(op, path, e)| Error::io(op, path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use rill_sim::{CrashKind, SimDisk};

    #[test]
    fn ids_are_never_handed_out_twice_across_power_cuts() {
        let data = Path::new("/data");
        let mut seen = std::collections::BTreeSet::new();
        let disk = SimDisk::new(3);
        disk::create_dir_durably(&disk, data).unwrap();
        for cut in [0u64, 1, 2, 3, 5, 8, 50] {
            let ids = ProducerIds::open(&disk, data, false, || -1).unwrap();
            disk.power_cut_after(cut);
            for _ in 0..(BLOCK as usize + 10) {
                match ids.next(&disk) {
                    Ok(p) => assert!(seen.insert(p.id), "id {} handed out twice", p.id),
                    Err(_) => break,
                }
            }
            disk.crash(CrashKind::Power);
        }
        assert!(seen.len() > BLOCK as usize);
    }
}
