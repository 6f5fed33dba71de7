//! Settings of a [`crate::Log`].

use crate::error::{Error, Result};
use rill_segment::partition::ReadLimit;
use rill_segment::{Durability, LogConfig};
use rill_send::SendConfig;
use rill_uring::{SyscallOptions, UringOptions};
use std::path::{Path, PathBuf};

/// Which I/O driver the shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring where the kernel offers it, else the syscall baseline (with a warning).
    #[default]
    Auto,
    /// io_uring, or fail to open.
    Uring,
    /// The epoll + syscalls baseline.
    Syscall,
}

/// Settings of a [`crate::Log`]. Start from [`Config::new`] and change what you need.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory holding one directory per partition (`<topic>-<index>`).
    pub data_dir: PathBuf,
    /// Shard threads; partitions are spread over them.
    pub shards: usize,
    /// The I/O driver.
    pub driver: DriverChoice,
    /// Per-partition log settings (segment size, indexes, retention, preallocation, ...).
    pub log: LogConfig,
    /// Durability of [`crate::Partition::append`] (per-call variants choose their own).
    pub default_durability: Durability,
    /// How far [`crate::Partition::read`] sees: written data, or only durable data.
    pub read_limit: ReadLimit,
    /// Requests queued per shard before producers wait (backpressure).
    pub queue_depth: usize,
    /// Bytes of batches queued per shard before producers wait.
    pub max_queued_bytes: usize,
    /// Bytes of batches one partition puts into one round (one write and sync cycle).
    pub max_round_bytes: usize,
    /// Largest read; larger `max_bytes` are clamped (a single batch larger than it is still
    /// returned whole).
    pub max_read_bytes: u64,
    /// How often shards apply retention and write due checkpoints.
    pub maintenance_interval_ms: u64,
    /// Descriptors the log keeps open for its files, across all partitions (at least 16).
    /// Segment, watermark and index files beyond it are closed, least recently used first,
    /// and reopened when used again, so a log of 100,000 segments opens under a descriptor
    /// limit of a few thousand. Sockets, pipes and rings come on top: the bound is also kept
    /// to half the process's `RLIMIT_NOFILE` at open, and running out anyway (`EMFILE`)
    /// closes half of the cached descriptors and tries again.
    pub max_open_files: usize,
    /// Bytes of sealed segments' indexes kept in memory, across all partitions: they are read
    /// from their files on first use (a lookup, retention by time) and the least recently used
    /// dropped beyond this, so memory does not grow with the data retained. The active
    /// segments' indexes come on top (at most `max_index_entries` each).
    pub index_cache_bytes: u64,
    /// Open partitions whose acknowledged data is damaged by truncating it (loses data;
    /// by default such a partition refuses to open).
    pub repair: bool,
    /// io_uring driver settings.
    pub uring: UringOptions,
    /// Syscall driver settings.
    pub syscall: SyscallOptions,
    /// The send path ([`crate::Partition::send`]): default strategy, pipes, stall timeout.
    /// It replaces the `send` field of [`Config::uring`] and [`Config::syscall`].
    pub send: SendConfig,
    /// Bounds of a compaction: the key map's memory, the I/O rate.
    pub cleaner: rill_segment::compaction::CleanerLimits,
    /// How often the cleaner thread looks for compacted partitions due for a cleaning (their
    /// dirty part at least `LogConfig::min_cleanable_dirty_permille` of their sealed bytes).
    pub cleaner_interval_ms: u64,
    /// The wall clock for timestamps (segment ages, time retention, checkpoint times); the
    /// system's by default. Intervals never use it (see [`crate::WallClock`]).
    pub wall_clock: crate::WallClock,
}

impl Config {
    /// Defaults for a log in `data_dir`: one shard per core (at most 4), io_uring where
    /// available, durable appends, reads up to the written offset.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            data_dir: data_dir.as_ref().to_path_buf(),
            shards: cores.clamp(1, 4),
            driver: DriverChoice::Auto,
            log: LogConfig::default(),
            default_durability: Durability::Durable,
            read_limit: ReadLimit::Written,
            queue_depth: 4096,
            max_queued_bytes: 64 << 20,
            max_round_bytes: 8 << 20,
            max_read_bytes: 16 << 20,
            maintenance_interval_ms: 1000,
            max_open_files: rill_segment::disk::DEFAULT_MAX_OPEN_FILES,
            index_cache_bytes: rill_segment::index::DEFAULT_INDEX_CACHE_BYTES,
            repair: false,
            uring: UringOptions::default(),
            syscall: SyscallOptions::default(),
            send: SendConfig::default(),
            wall_clock: crate::WallClock::system(),
            cleaner: rill_segment::compaction::CleanerLimits::default(),
            cleaner_interval_ms: 15_000,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let fail = |what: &str| Err(Error::Config(what.to_string()));
        if self.shards == 0 || self.shards > 1024 {
            return fail("shards must be in 1..=1024");
        }
        if self.queue_depth == 0 {
            return fail("queue_depth must be at least 1");
        }
        if self.max_round_bytes == 0 || self.max_read_bytes == 0 {
            return fail("max_round_bytes and max_read_bytes must be positive");
        }
        if self.maintenance_interval_ms == 0 {
            return fail("maintenance_interval_ms must be positive");
        }
        if self.cleaner_interval_ms == 0 || self.cleaner.key_map_bytes == 0 {
            return fail("cleaner_interval_ms and cleaner.key_map_bytes must be positive");
        }
        if self.max_open_files < 16 {
            return fail("max_open_files must be at least 16");
        }
        self.send.validate().map_err(Error::Config)?;
        self.log.validate().map_err(Error::from)
    }
}
