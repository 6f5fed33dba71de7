//! Reads on the caller's thread when the bytes are in the page cache.
//!
//! Under the partition's lock (held for a lookup, no I/O but an index load of a sealed segment
//! not yet cached) the read is planned: the segment, its file (an `Arc<File>` that keeps the
//! descriptor open even if retention deletes the segment or the descriptor cache evicts it),
//! the index floor below the offset, the bytes readable and the read end, and the partition's
//! truncation count. Without the lock, the caller reads a window from the floor with
//! `preadv2(RWF_NOWAIT)`, which fails with `EAGAIN` rather than wait for the disk, walks the
//! batch headers in memory, checks every batch's CRC, and reads the truncation count again.
//!
//! Anything else goes to the shard, which answers as before (ring reads into registered
//! buffers): bytes not in the page cache, requests still queued ahead at the shard, a
//! truncation since the plan (it rewrites bytes in place), a header that disagrees with the
//! plan, an error other than an offset out of range, a failed partition. So a reader never sees bytes of another
//! file or beyond the visible end: the file is the segment's own, the window stops at the
//! segment's readable bytes when planned, and bytes below them change only by a truncation.

use crate::error::Result;
use crate::locate::locate_error;
use crate::read_batches::ReadBatches;
use crate::shared::PartitionShared;
use rill_segment::partition::{ReadLimit, ReadPlan, Walked, walk};
use rill_uring::ReadBuf;
use std::fs::File;
use std::io::IoSliceMut;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Window reads one direct read may make before it gives up to the shard.
const MAX_WINDOW_READS: usize = 4;
/// Bytes a window may hold beyond `max_bytes` and an index interval (a first batch larger
/// than `max_bytes`, whole); a larger one goes to the shard, so damaged lengths cannot make a
/// reader allocate a segment's worth.
const MAX_WINDOW_EXTRA_BYTES: u64 = 8 << 20;

/// What the lock gave.
struct Planned {
    plan: ReadPlan,
    file: Arc<File>,
    truncations: u64,
    index_interval_bytes: u64,
    offsets: rill_segment::Offsets,
}

/// Reads `offset` on the calling thread if it can be done without waiting for the disk;
/// `None` sends the read to the shard.
pub(crate) fn try_read(
    shared: &PartitionShared,
    offset: i64,
    max_bytes: u64,
    limit: ReadLimit,
) -> Option<Result<ReadBatches>> {
    if shared.ordered_behind.load(Ordering::SeqCst) != 0 {
        return None;
    }
    let planned = {
        let log = shared.log.lock();
        // A failed partition's reads keep their one path: the shard's (which serves its
        // durable data, or reports the shard's failure).
        if log.failure().is_some() {
            return None;
        }
        let offsets = log.offsets();
        match log.plan_read(offset, max_bytes, limit) {
            Ok(Some(plan)) => Planned {
                file: log.disk().shared_file(plan.file).ok()?,
                plan,
                truncations: shared.truncations.load(Ordering::SeqCst),
                index_interval_bytes: log.index_interval_bytes(),
                offsets,
            },
            Ok(None) => return Some(Ok(ReadBatches::new(None, offset, offsets))),
            Err(e @ rill_segment::LogError::OffsetOutOfRange { .. }) => {
                return Some(Err(locate_error(&log, e)));
            }
            Err(_) => return None,
        }
    };
    let (bytes, range) = read_window(&planned)?;
    // Bytes below the planned end change only by a truncation, which counts itself first.
    if shared.truncations.load(Ordering::SeqCst) != planned.truncations {
        return None;
    }
    if range.check(&shared.dir, &bytes).is_err() {
        // The shard reads again and reports the damage with its range.
        return None;
    }
    shared.direct_reads.fetch_add(1, Ordering::Relaxed);
    Some(Ok(ReadBatches::new(
        Some(ReadBuf::from_vec(bytes)),
        range.next_offset,
        planned.offsets,
    )))
}

/// Reads the window from the floor, growing it as the walk asks; returns the batches' bytes
/// and their range.
fn read_window(planned: &Planned) -> Option<(Vec<u8>, rill_segment::partition::BatchRange)> {
    let plan = &planned.plan;
    let mut window = Vec::new();
    let mut want = plan.first_window(planned.index_interval_bytes);
    let most = plan
        .max_bytes
        .saturating_add(planned.index_interval_bytes)
        .saturating_add(MAX_WINDOW_EXTRA_BYTES);
    for _ in 0..MAX_WINDOW_READS {
        if want > most {
            return None;
        }
        let have = window.len();
        window.resize(usize::try_from(want).ok()?, 0);
        read_cached(
            &planned.file,
            &mut window[have..],
            plan.floor_position + have as u64,
        )?;
        match walk(plan, &window) {
            Walked::Found { range, skip } => {
                let skip = usize::try_from(skip).ok()?;
                let len = usize::try_from(range.len).ok()?;
                window.truncate(skip + len);
                window.drain(..skip);
                return Some((window, range));
            }
            Walked::NeedMore { window_bytes } if window_bytes > want => want = window_bytes,
            Walked::NeedMore { .. } | Walked::Mismatch => return None,
        }
    }
    None
}

/// Fills `buf` from `file` at `pos` from the page cache only: `None` if any of it would wait
/// for the disk (`EAGAIN`), or on any error (the shard's read reports it).
fn read_cached(file: &File, mut buf: &mut [u8], mut pos: u64) -> Option<()> {
    // Bounded: each pass reads at least one byte or returns.
    while !buf.is_empty() {
        let n = rustix::io::preadv2(
            file,
            &mut [IoSliceMut::new(buf)],
            pos,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
        .ok()?;
        if n == 0 {
            return None;
        }
        buf = &mut buf[n..];
        pos += n as u64;
    }
    Some(())
}
