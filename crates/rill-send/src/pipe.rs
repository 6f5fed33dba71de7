//! Pipes for splice transfers: a bounded per-shard pool of pipes resized with `F_SETPIPE_SZ`.
//!
//! A pipe goes back to the pool only empty. A transfer that ends with bytes still in its pipe
//! (the peer went away between the two splices) closes the pipe instead: leftover bytes would
//! be sent at the head of the next transfer's data.

use rustix::pipe::{PipeFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// One pipe: both ends, non-blocking (a bug then shows as `EAGAIN`, never as a hung shard).
pub struct Pipe {
    /// The read end (spliced to the socket).
    pub read: OwnedFd,
    /// The write end (spliced into from the file).
    pub write: OwnedFd,
    /// Bytes the pipe holds (what the kernel granted, not what was asked).
    pub capacity: usize,
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("read", &self.read.as_raw_fd())
            .field("write", &self.write.as_raw_fd())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Pipe {
    /// A new pipe, resized to `bytes` where the system allows (else it keeps its size).
    pub fn new(bytes: usize) -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // EPERM beyond `pipe-max-size` or the user's `pipe-user-pages-soft`: keep the default.
        let capacity = match fcntl_setpipe_size(&write, bytes) {
            Ok(granted) => granted,
            Err(_) => fcntl_getpipe_size(&write)?,
        };
        Ok(Self {
            read,
            write,
            capacity,
        })
    }

    /// The largest chunk to splice in from file position `position` so that it fits the pipe:
    /// a pipe holds `capacity / 4096` page references, and an unaligned range touches one page
    /// more than its length suggests.
    pub fn chunk_at(&self, position: u64, remaining: u64) -> usize {
        const PAGE: u64 = 4096;
        let fits = (self.capacity as u64)
            .saturating_sub(position % PAGE)
            .max(1);
        remaining.min(fits).min(u64::from(u32::MAX)) as usize
    }
}

/// Counters of a pipe pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Pipes made.
    pub created: u64,
    /// Pipes handed out again after a clean transfer.
    pub reused: u64,
    /// Pipes closed because a failed transfer left bytes in them.
    pub closed_dirty: u64,
    /// Pipes the kernel would not enlarge (they kept a smaller size).
    pub not_enlarged: u64,
}

/// A bounded pool of pipes. Not shared: each shard (and each blocking sender thread) has its
/// own.
#[derive(Debug)]
pub struct PipePool {
    free: Vec<Pipe>,
    /// Pipes in existence (free or lent).
    live: usize,
    max: usize,
    pipe_bytes: usize,
    stats: PipeStats,
}

impl PipePool {
    /// A pool of at most `max` pipes of `pipe_bytes` each, made on demand.
    pub fn new(max: usize, pipe_bytes: usize) -> Self {
        Self {
            free: Vec::new(),
            live: 0,
            max: max.max(1),
            pipe_bytes,
            stats: PipeStats::default(),
        }
    }

    /// A clean pipe, or `None` when all `max` are lent out.
    pub fn take(&mut self) -> io::Result<Option<Pipe>> {
        if let Some(pipe) = self.free.pop() {
            self.stats.reused += 1;
            return Ok(Some(pipe));
        }
        if self.live >= self.max {
            return Ok(None);
        }
        let pipe = Pipe::new(self.pipe_bytes)?;
        if pipe.capacity < self.pipe_bytes {
            self.stats.not_enlarged += 1;
            if self.stats.not_enlarged == 1 {
                tracing::warn!(
                    asked = self.pipe_bytes,
                    granted = pipe.capacity,
                    "the kernel refused to enlarge a splice pipe (pipe-max-size or \
                     pipe-user-pages-soft); splice transfers will be slower"
                );
            }
        }
        self.live += 1;
        self.stats.created += 1;
        Ok(Some(pipe))
    }

    /// Returns a lent pipe; `leftover` is the bytes the transfer left in it. A pipe that is not
    /// empty is closed, never reused.
    pub fn give_back(&mut self, pipe: Pipe, leftover: u64) {
        if leftover == 0 {
            self.free.push(pipe);
        } else {
            self.stats.closed_dirty += 1;
            self.live -= 1;
            drop(pipe);
        }
    }

    /// Pipes lent out now.
    pub fn lent(&self) -> usize {
        self.live - self.free.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> PipeStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_bounded_and_never_reuses_a_dirty_pipe() {
        let mut pool = PipePool::new(2, 1 << 20);
        let a = pool.take().unwrap().unwrap();
        let b = pool.take().unwrap().unwrap();
        assert!(pool.take().unwrap().is_none(), "bounded at 2");
        assert!(a.capacity >= 64 << 10);
        let a_fd = a.read.as_raw_fd();
        pool.give_back(a, 0);
        pool.give_back(b, 17);
        assert_eq!(pool.stats().closed_dirty, 1);
        assert_eq!(pool.lent(), 0);
        let again = pool.take().unwrap().unwrap();
        assert_eq!(again.read.as_raw_fd(), a_fd, "the clean pipe is reused");
        // The dirty one was closed, so a new one can be made in its place.
        assert!(pool.take().unwrap().is_some());
        assert_eq!(pool.stats().created, 3);
    }

    #[test]
    fn chunks_fit_the_pipe_page_slots() {
        let pipe = Pipe {
            capacity: 1 << 20,
            ..Pipe::new(1 << 16).unwrap()
        };
        assert_eq!(pipe.chunk_at(0, 10 << 20), 1 << 20);
        assert_eq!(pipe.chunk_at(100, 10 << 20), (1 << 20) - 100);
        assert_eq!(pipe.chunk_at(4096 * 3 + 1, 5), 5);
    }
}
