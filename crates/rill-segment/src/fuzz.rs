//! The recovery fuzz target's function (feature `fuzzing`): arbitrary bytes as a segment file,
//! opened by recovery on the simulated disk. The decoders' targets are `rill_format::fuzz`.

#![allow(
    clippy::missing_panics_doc,
    clippy::panic,
    reason = "fuzz targets panic exactly when a property fails"
)]

use crate::config::LogConfig;
use crate::disk::{Disk, OpenMode};
use crate::partition::{PartitionLog, ReadLimit};
use crate::recovery::OpenOptions;
use crate::segment;
use rill_sim::SimDisk;
use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

/// Recovery over arbitrary segment bytes: never panics, and a log that opens holds a valid
/// prefix of the file: whole batches from its start, contiguous offsets, consistent indexes.
/// Returns the bytes kept, or `None` if the log did not open.
pub fn recovery(data: &[u8]) -> Option<usize> {
    let dir = Path::new("/fuzz/t-0");
    let disk = Arc::new(SimDisk::new(0));
    disk.create_dir_all(dir).ok()?;
    let path = dir.join(segment::file_name(0, segment::FileKind::Log));
    let file = disk.open(&path, OpenMode::CreateNew).ok()?;
    disk.write_at(file, 0, &[IoSlice::new(data)]).ok()?;
    disk.fdatasync(file).ok()?;
    disk.close(file);
    // Segments a little larger than libFuzzer's inputs: preallocating the default 1 GiB (or
    // even 1 MiB) of simulated disk per run would be most of the run's time.
    let config = LogConfig {
        segment_bytes: 1 << 16,
        max_batch_bytes: 1 << 16,
        ..LogConfig::default()
    };
    let as_dyn: Arc<dyn Disk> = disk.clone();
    // No checkpoint: everything is above the recovery point, so damage is a torn tail.
    let (log, report) = PartitionLog::open(as_dyn, dir, config, OpenOptions::default()).ok()?;
    assert!(log.verify().is_ok(), "recovered log fails verification");
    let kept = log.size_bytes() as usize;
    assert!(kept <= data.len());
    assert_eq!(
        report.bytes_truncated + report.zero_tail_bytes,
        (data.len() - kept) as u64
    );
    let mut offset = log.offsets().log_start;
    let mut at = 0usize;
    // Bounded: every read returns at least one batch.
    while offset < log.offsets().log_end {
        let Ok(read) = log.read(offset, 1 << 20, ReadLimit::Written) else {
            panic!("recovered data is unreadable at offset {offset}");
        };
        assert_eq!(
            &read.bytes[..],
            &data[at..at + read.bytes.len()],
            "recovered bytes differ from the file's prefix"
        );
        at += read.bytes.len();
        offset = read.next_offset;
    }
    assert_eq!(at, kept);
    Some(kept)
}
