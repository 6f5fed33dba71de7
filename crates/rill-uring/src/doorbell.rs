//! Waking a sleeping shard: an eventfd that is written only when the shard sleeps.
//!
//! Protocol (both sides `SeqCst`, so at least one sees the other): the shard sets `sleeping`,
//! then checks its queue once more, and only then waits on the eventfd. A producer pushes its
//! request, then swaps `sleeping` to false and writes the eventfd only if it was set, so a busy
//! shard costs producers no system call and a sleeping one gets exactly one wake-up.

use crate::error::DriverError;
use rustix::event::{EventfdFlags, eventfd};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A shard's wake-up eventfd with its sleeping flag. Shared by the shard and its producers.
pub struct Doorbell {
    fd: OwnedFd,
    sleeping: AtomicBool,
    rings: AtomicU64,
}

impl fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Doorbell")
            .field("fd", &self.fd.as_raw_fd())
            .field("sleeping", &self.sleeping.load(Ordering::Relaxed))
            .field("rings", &self.rings.load(Ordering::Relaxed))
            .finish()
    }
}

impl Doorbell {
    /// A new, non-blocking eventfd.
    pub fn new() -> Result<Self, DriverError> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| DriverError::setup("eventfd", e))?;
        Ok(Self {
            fd,
            sleeping: AtomicBool::new(false),
            rings: AtomicU64::new(0),
        })
    }

    /// Called by a producer after it queued work: wakes the shard if it sleeps.
    pub fn ring(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.rings.fetch_add(1, Ordering::Relaxed);
            // An eventfd write fails only if the counter would overflow (it then is non-zero,
            // so the shard wakes anyway) or the fd is bad (impossible: we own it).
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// Called by the shard before its last check for work and its wait.
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// Called by the shard when it did not sleep or woke up.
    pub fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Resets the eventfd's counter after a wake-up (non-blocking).
    pub fn consume(&self) {
        let mut buf = [0u8; 8];
        // EAGAIN means nothing was pending: fine.
        let _ = rustix::io::read(&self.fd, &mut buf);
    }

    /// How many times a producer had to wake the shard with a system call.
    pub fn wakeups(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }

    /// Waits until the eventfd is readable or `timeout` passes, with `poll(2)`; then consumes it.
    pub fn wait(&self, timeout: std::time::Duration) -> std::io::Result<()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        self.consume();
        Ok(())
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Doorbell {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ring_writes_only_when_sleeping() {
        let bell = Doorbell::new().unwrap();
        bell.ring();
        assert_eq!(bell.wakeups(), 0, "an awake shard costs producers nothing");
        bell.prepare_sleep();
        bell.ring();
        bell.ring();
        assert_eq!(bell.wakeups(), 1, "one wake-up per sleep");
        // The eventfd is readable: the wait returns at once.
        bell.wait(Duration::from_secs(30)).unwrap();
        bell.end_sleep();
    }
}
