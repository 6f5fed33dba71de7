//! How bytes reach the socket, and the send path's settings.

use std::fmt;
use std::str::FromStr;

/// How a transfer moves file bytes to the socket. All put the same bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SendStrategy {
    /// `splice` file → pipe → socket: no copy through user space (on io_uring, the two splices
    /// of a chunk are linked in one submission).
    #[default]
    Splice,
    /// `sendfile(2)`, as Kafka does.
    Sendfile,
    /// `pread` into a buffer, then `send`: two copies, for comparison.
    Copy,
}

impl SendStrategy {
    /// Every strategy, for benchmarks and tests that compare them.
    pub const ALL: [Self; 3] = [Self::Splice, Self::Sendfile, Self::Copy];
}

impl fmt::Display for SendStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Splice => "splice",
            Self::Sendfile => "sendfile",
            Self::Copy => "copy",
        })
    }
}

impl FromStr for SendStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "splice" => Ok(Self::Splice),
            "sendfile" => Ok(Self::Sendfile),
            "copy" => Ok(Self::Copy),
            other => Err(format!(
                "unknown send strategy {other:?} (splice, sendfile, copy)"
            )),
        }
    }
}

/// Settings of a shard's send path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendConfig {
    /// The strategy of sends that do not choose one (see [`SendConfig::strategy_for`]).
    pub strategy: SendStrategy,
    /// Sends that do not choose a strategy and move fewer bytes than this (header and
    /// batches) are copied rather than spliced; 0 never. A splice costs a fixed amount (two
    /// trips through an io-wq worker on io_uring, pipe operations with system calls) that a
    /// small copy does not: one consumer's 1 MiB fetches of single batches of 1, 8 and 32 KB
    /// took 101-138, 114-120 and 102-146 µs a fetch spliced on io_uring, 74-85, 43-84 and
    /// 82-87 copied. Loopback favours copying at every size (the receiver copies from
    /// cache-hot memory), so it cannot place the upper end: 64 KiB keeps zero copy for the
    /// large ranges where its CPU saving per byte counts.
    pub copy_below_bytes: u64,
    /// Pipe size asked with `F_SETPIPE_SZ` (the kernel rounds it up to a power of two pages).
    /// 64 KiB pipes were measured far slower than 1 MiB ones on this machine.
    pub pipe_bytes: usize,
    /// Pipes per shard (splice transfers beyond this wait for one). Unprivileged users share
    /// `pipe-user-pages-soft` (64 MiB by default) across all their pipes; beyond it new pipes
    /// get one page.
    pub max_pipes: usize,
    /// Bytes per `sendfile` or read + send step.
    pub chunk_bytes: usize,
    /// Transfers in progress per shard; more sends wait in the shard's queue.
    pub max_transfers: usize,
    /// A transfer that makes no progress for this long fails with [`crate::SendError::Stalled`]
    /// (a peer that stopped reading or vanished).
    pub stall_timeout_ms: u64,
    /// Threads per shard running transfers to sockets in blocking mode with system calls.
    pub blocking_threads: usize,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            strategy: SendStrategy::Splice,
            copy_below_bytes: 64 << 10,
            pipe_bytes: 1 << 20,
            max_pipes: 8,
            chunk_bytes: 1 << 20,
            max_transfers: 64,
            stall_timeout_ms: 30_000,
            blocking_threads: 2,
        }
    }
}

impl SendConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.pipe_bytes < 4096 || self.pipe_bytes > 1 << 30 {
            return Err("send pipe_bytes must be in 4 KiB..=1 GiB".into());
        }
        if self.max_pipes == 0 || self.max_transfers == 0 || self.blocking_threads == 0 {
            return Err(
                "send max_pipes, max_transfers and blocking_threads must be positive".into(),
            );
        }
        if self.chunk_bytes < 4096 || self.chunk_bytes > 1 << 30 {
            return Err("send chunk_bytes must be in 4 KiB..=1 GiB".into());
        }
        if self.stall_timeout_ms == 0 {
            return Err("send stall_timeout_ms must be positive".into());
        }
        Ok(())
    }

    /// The strategy of a send of `bytes` (header and batches) that did not choose one: the
    /// configured strategy, except that a splice of fewer than `copy_below_bytes` copies.
    pub fn strategy_for(&self, bytes: u64) -> SendStrategy {
        if self.strategy == SendStrategy::Splice && bytes < self.copy_below_bytes {
            SendStrategy::Copy
        } else {
            self.strategy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_splices_become_copies() {
        let config = SendConfig::default();
        let below = config.copy_below_bytes;
        assert_eq!(config.strategy_for(below - 1), SendStrategy::Copy);
        assert_eq!(config.strategy_for(below), SendStrategy::Splice);
        let sendfile = SendConfig {
            strategy: SendStrategy::Sendfile,
            ..config
        };
        assert_eq!(sendfile.strategy_for(1), SendStrategy::Sendfile);
        let never = SendConfig {
            copy_below_bytes: 0,
            ..config
        };
        assert_eq!(never.strategy_for(0), SendStrategy::Splice);
    }
}
