//! Statistics over repetitions, latency histograms, process CPU time.

use hdrhistogram::Histogram;
use rustix::time::{ClockId, clock_gettime};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The median and range of one metric over the repetitions of a case.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The middle sample (the upper middle for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// Every sample, in the order measured.
    pub samples: Vec<f64>,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none or one is not a number.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            median: sorted[sorted.len() / 2],
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples: samples.to_vec(),
        })
    }
}

/// Seconds of CPU used by the whole process so far: every thread, including the kernel's
/// io-wq workers acting for our rings (they are threads of this process).
pub fn process_cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Bytes the block device holding `dir` has written since boot (sectors written, from its
/// `stat` in sysfs), or `None` where that cannot be read. It counts every writer on the device:
/// the engine's own syncs and the kernel's writeback alike.
pub fn device_written_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::stat(dir).ok()?;
    let (major, minor) = (
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
    );
    let text = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    // Field 7 of the block layer's stat file: sectors written, in 512-byte units.
    let sectors: u64 = text.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors.saturating_mul(512))
}

/// Seconds of CPU used by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// A latency histogram in microseconds, 1 µs to 100 s at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

/// The latency percentiles the harness reports, in microseconds.
pub const PERCENTILES: [(&str, f64); 3] = [("p50_us", 50.0), ("p99_us", 99.0), ("p999_us", 99.9)];

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "constant bounds: the constructor fails only for invalid bounds"
        )]
        let histogram = Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds");
        Self { histogram }
    }

    /// Records one latency (clamped into the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(micros.clamp(1, 100_000_000));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail; a failure would only lose samples.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `percentile` (0..=100), in microseconds.
    pub fn percentile_us(&self, percentile: f64) -> f64 {
        self.histogram.value_at_quantile(percentile / 100.0) as f64
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_middle_and_range() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 5.0, 4.0]).expect("samples");
        assert!((s.median - 3.0).abs() < f64::EPSILON);
        assert!((s.min - 1.0).abs() < f64::EPSILON);
        assert!((s.max - 5.0).abs() < f64::EPSILON);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn latency_percentiles_follow_the_samples() {
        let mut latency = Latency::new();
        for micros in 1..=1000 {
            latency.record(Duration::from_micros(micros));
        }
        assert_eq!(latency.count(), 1000);
        let p50 = latency.percentile_us(50.0);
        let p99 = latency.percentile_us(99.0);
        assert!((495.0..=505.0).contains(&p50), "{p50}");
        assert!((985.0..=995.0).contains(&p99), "{p99}");
    }
}
