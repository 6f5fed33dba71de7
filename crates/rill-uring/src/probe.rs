//! Whether the file system under a directory completes buffered io_uring writes inline, in the
//! submitting `io_uring_enter`, instead of handing them to an io-wq worker.
//!
//! XFS and btrfs complete them inline on recent kernels; ext4 does not (it has no non-blocking
//! buffered write path, so every such write costs a worker's context switch). rill writes
//! appends on the caller's thread with `pwritev` on every file system (see the crate `rill`),
//! which is cheaper than a trip to the shard thread even where the ring would complete the write
//! inline; the probe tells an operator which case the log is in.

use io_uring::{IoUring, opcode, types};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Writes probed; all must complete inline for the answer to be yes.
const PROBES: usize = 4;

/// What the probe writes. Static, so no completion can outlive it whatever happens to the ring.
static PROBE_BYTES: [u8; 4096] = [0x5a; 4096];

/// Whether a 4 KiB buffered write to a new file in `dir` completes inline on io_uring: the
/// completion is already in the queue when the submitting call returns, without waiting.
/// The probe file is removed before returning.
pub fn buffered_writes_complete_inline(dir: &Path) -> io::Result<bool> {
    let path = dir.join(format!(".rill-write-probe-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let mut ring = IoUring::new(8)?;
    let mut inline = true;
    for i in 0..PROBES {
        let entry = opcode::Write::new(types::Fd(file.as_raw_fd()), PROBE_BYTES.as_ptr(), 4096)
            .offset((i * 4096) as u64)
            .build()
            .user_data(i as u64);
        // SAFETY: the write reads a static buffer, valid for the life of the process; the file
        // descriptor is closed only after the ring (declared after it, so dropped first).
        unsafe { ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("probe ring full"))?;
        ring.submit()?;
        inline &= ring.completion().next().is_some();
        if !inline {
            ring.submit_and_wait(1)?;
            // Drain the completion that arrived late.
            ring.completion().for_each(drop);
            break;
        }
    }
    Ok(inline)
}
