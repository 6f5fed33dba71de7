//! The workloads, one module each, and what they share: batch building, a seeded random
//! generator, the two rill engines.

pub mod append;
pub mod compaction;
pub mod fetch;
pub mod limits;
pub mod raft;
pub mod read;
pub mod recovery;
pub mod scale;

use crate::harness::{Bench, Workload};
use crate::report::WorkloadResult;
use anyhow::{Context, Result};
use rill::{BatchBuilder, DriverChoice};

/// Runs one workload.
pub fn run(workload: Workload, bench: &mut Bench) -> Result<WorkloadResult> {
    match workload {
        Workload::Limits => limits::run(bench),
        Workload::Append => append::run(bench),
        Workload::Fetch => fetch::run(bench),
        Workload::Read => read::run(bench),
        Workload::Recovery => recovery::run(bench),
        Workload::Scale => scale::run(bench),
        Workload::Compaction => compaction::run(bench),
        Workload::Raft => raft::run(bench),
    }
}

/// rill's two executors: the engine names used in every table, and their drivers.
pub const RILL_ENGINES: [(&str, DriverChoice); 2] = [
    (URING, DriverChoice::Uring),
    (BASELINE, DriverChoice::Syscall),
];

/// rill on its io_uring executor.
pub const URING: &str = "rill io_uring";
/// rill on the epoll + syscalls baseline executor.
pub const BASELINE: &str = "rill epoll baseline";

/// One Kafka v2 batch of `records` records, each a `record_bytes` value (no key), as a
/// producer would send it. Timestamps are now: older ones would fall to the default
/// time-based retention (7 days) while the benchmark runs.
pub fn build_batch(records: usize, record_bytes: usize) -> Result<Vec<u8>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let value = vec![0x5a_u8; record_bytes];
    let mut builder = BatchBuilder::with_capacity(records * (record_bytes + 16) + 64);
    for i in 0..records {
        builder.append(now_ms + i as i64, None, Some(&value), &[])?;
    }
    Ok(builder.build()?)
}

/// A small seeded generator (splitmix64): reproducible random offsets without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// `bytes` per second in MB/s (10^6).
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds.max(1e-9) / 1e6
}

const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// Whether the page cache can be dropped (root, writable `/proc/sys/vm/drop_caches`).
pub fn can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(DROP_CACHES)
        .is_ok()
}

/// Writes back dirty pages, then drops the page cache, dentries and inodes.
pub fn drop_caches() -> Result<()> {
    rustix::fs::sync();
    std::fs::write(DROP_CACHES, "3").context("dropping the page cache")
}

/// How a child process names a driver on its command line.
pub fn driver_arg(driver: DriverChoice) -> &'static str {
    if driver == DriverChoice::Syscall {
        "syscall"
    } else {
        "uring"
    }
}

/// The driver a child was given by [`driver_arg`].
pub fn parse_driver_arg(name: &str) -> Result<DriverChoice> {
    match name {
        "uring" => Ok(DriverChoice::Uring),
        "syscall" => Ok(DriverChoice::Syscall),
        other => anyhow::bail!("unknown driver {other:?}"),
    }
}

/// Runs this executable as a child with `env` set to `spec`, and returns the first line it
/// prints. With `kill`, the child is killed once it printed it (a crash the workload made);
/// otherwise it is left to finish, and must succeed. Fails with the child's stderr if it
/// printed nothing or failed.
pub fn run_child(env: &str, spec: &str, kill: bool) -> Result<String> {
    use std::io::{BufRead, Read};
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = std::process::Command::new(exe)
        .env(env, spec)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the child {spec:?}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no child stdout"))?;
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if kill {
        let _ = child.kill();
    } else {
        std::io::copy(&mut reader, &mut std::io::sink())?;
    }
    let status = child.wait()?;
    if line.is_empty() || (!kill && !status.success()) {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        anyhow::bail!(
            "the child {spec:?} ({status}) failed (does this executable call \
             rill_bench::child_main_if_requested?): {line:?} {stderr}"
        );
    }
    Ok(line)
}

/// Runs the child part of a workload when this process was started as one (the recovery and
/// scale workloads start this same executable with an environment variable set); `None`
/// otherwise. Executables that run the harness call this first thing in `main`.
pub fn child_main_if_requested() -> Option<Result<()>> {
    recovery::child_main_if_requested().or_else(scale::child_main_if_requested)
}

/// CPU seconds per GiB of `bytes`.
pub fn cpu_per_gib(cpu_seconds: f64, bytes: u64) -> f64 {
    cpu_seconds / (bytes as f64 / f64::from(1u32 << 30)).max(1e-12)
}

/// Appends `count` copies of `batch` to `partition` `Written`, 16 in flight, then flushes;
/// returns the partition's offsets after the flush.
pub fn append_copies(
    partition: &rill::Partition,
    batch: &[u8],
    count: u64,
) -> Result<rill::Offsets> {
    let mut window = std::collections::VecDeque::new();
    for _ in 0..count {
        window.push_back(
            partition.append_with(bytes::BytesMut::from(batch), rill::Durability::Written),
        );
        if window.len() >= 16
            && let Some(oldest) = window.pop_front()
        {
            oldest.wait()?;
        }
    }
    for pending in window {
        pending.wait()?;
    }
    Ok(partition.flush().wait()?)
}

/// Opens a new rill log in `dir` on `driver` with `segment_bytes` segments and fills topic
/// `topic` (`partitions` partitions) with `bytes_per_partition` bytes each of `batch`,
/// appended `Written` with several in flight, then flushed.
pub fn fill_rill(
    dir: &std::path::Path,
    driver: DriverChoice,
    topic: &str,
    partitions: u32,
    bytes_per_partition: u64,
    batch: &[u8],
    segment_bytes: u64,
) -> Result<rill::Log> {
    let mut config = rill::Config::new(dir);
    config.driver = driver;
    config.log.segment_bytes = segment_bytes;
    config.log.max_batch_bytes = config.log.max_batch_bytes.min(segment_bytes as usize);
    let (log, _) = rill::Log::open(config)?;
    log.create_topic(topic, partitions)?;
    let batches = bytes_per_partition.div_ceil(batch.len() as u64);
    for partition in log.partitions(topic)? {
        append_copies(&partition, batch, batches)?;
    }
    Ok(log)
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn built_batches_validate_and_hold_their_records() {
        let batch = build_batch(10, 100).expect("batch");
        let header = rill::batch::check_stored(&batch, 0).expect("valid batch");
        assert_eq!(header.last_offset_delta, 9);
        assert!(batch.len() > 1000);
    }

    #[test]
    fn rng_is_seeded_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
