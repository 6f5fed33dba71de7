//! Wall-clock time, for timestamps only: segment ages, time retention, the times recorded in
//! checkpoints. Intervals (when maintenance runs next, stall timeouts, waits) use the monotonic
//! clock, so a wall clock stepped back (NTP, a VM resumed) cannot stop retention or
//! checkpoints for as long as the step. The wall clock is replaceable ([`WallClock::from_fn`])
//! so that a test or a simulation can step it.

use std::fmt;
use std::sync::Arc;

/// Where the log reads the wall-clock time.
#[derive(Clone, Default)]
pub struct WallClock {
    custom: Option<Arc<dyn Fn() -> i64 + Send + Sync>>,
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.custom.is_some() {
            "WallClock(custom)"
        } else {
            "WallClock(system)"
        })
    }
}

impl WallClock {
    /// The system's clock (the default).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads milliseconds since the Unix epoch from `now_ms`.
    pub fn from_fn(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self {
            custom: Some(Arc::new(now_ms)),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.custom {
            Some(now_ms) => now_ms(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// [`WallClock::now_ms`] from the kernel's coarse clock where it is the system's (a few
    /// milliseconds of resolution, a few nanoseconds to read): what an append needs for its
    /// roll decisions.
    pub(crate) fn coarse_now_ms(&self) -> i64 {
        if let Some(now_ms) = &self.custom {
            return now_ms();
        }
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        now.tv_sec.saturating_mul(1000) + now.tv_nsec / 1_000_000
    }
}
