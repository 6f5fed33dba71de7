//! Recovery: open a log after an unclean stop with a given amount of data to replay; seconds
//! to open and GB/s scanned.
//!
//! The unclean stop is real: a child process (this same executable, started with
//! [`CHILD_ENV`] set) fills a partition, flushes it, reports, and is killed with SIGKILL. Its
//! log keeps no durable watermark and writes no checkpoint after the one at creation, so the
//! recovery point stays at offset 0 and the next open scans (reads, CRC-checks and indexes)
//! every batch. The "cold" case drops the page cache first (needs root), so the scan reads
//! the disk; the "warm" case scans what the child left in the page cache.

use super::{
    BASELINE, RILL_ENGINES, URING, append_copies, build_batch, can_drop_caches, driver_arg,
    drop_caches, parse_driver_arg, run_child,
};
use crate::harness::{Bench, Engine, Sample};
use crate::report::WorkloadResult;
use anyhow::{Context, Result, anyhow, bail, ensure};
use rill::{Config, DriverChoice, Log};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Set in the child's environment to `fill:<driver>:<bytes>:<dir>`.
pub const CHILD_ENV: &str = "RILL_BENCH_RECOVERY_CHILD";

/// The log settings of the filled log and of its reopening.
fn config(dir: &Path, driver: DriverChoice, bytes: u64) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.shards = 1;
    // One segment holds everything, so the segment holding the recovery point is all of it.
    config.log.segment_bytes = (bytes + (64 << 20)).min(i32::MAX as u64);
    config.log.checkpoint_interval_ms = i64::MAX / 2;
    config.log.track_durable_watermark = false;
    config
}

/// In the child (when [`CHILD_ENV`] is set): fills the log, reports, and waits to be killed;
/// never returns then. Otherwise returns `None`. Executables that run the harness call this
/// first thing in `main`.
pub fn child_main_if_requested() -> Option<Result<()>> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    Some(child_fill(&spec))
}

fn child_fill(spec: &str) -> Result<()> {
    let mut fields = spec.splitn(4, ':');
    let (Some("fill"), Some(driver), Some(bytes), Some(dir)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        bail!("{CHILD_ENV} must be fill:<uring|syscall>:<bytes>:<dir>, not {spec:?}");
    };
    let driver = parse_driver_arg(driver)?;
    let bytes: u64 = bytes.parse().context("bytes")?;
    let (log, _) = Log::open(config(Path::new(dir), driver, bytes))?;
    log.create_topic("recovery", 1)?;
    let partition = log.partition("recovery", 0)?;
    // 64 KiB batches of 64 records of 1000 B.
    let batch = build_batch(64, 1000)?;
    let offsets = append_copies(&partition, &batch, bytes.div_ceil(batch.len() as u64))?;
    println!("filled {}", offsets.log_end);
    std::io::Write::flush(&mut std::io::stdout())?;
    // Wait for SIGKILL; the bound only matters if the parent died first.
    std::thread::sleep(std::time::Duration::from_mins(10));
    bail!("the parent never killed this recovery child")
}

/// Runs a child that fills `dir`, and kills it once it reports.
fn fill_and_kill(dir: &Path, driver: DriverChoice, bytes: u64) -> Result<i64> {
    let spec = format!("fill:{}:{bytes}:{}", driver_arg(driver), dir.display());
    let line = run_child(CHILD_ENV, &spec, true)?;
    line.trim()
        .strip_prefix("filled ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("the recovery child did not report a fill: {line:?}"))
}

fn recovery_run(bench: &Bench, driver: DriverChoice, bytes: u64, cold: bool) -> Result<Sample> {
    let dir = bench.scratch_dir("recovery")?;
    let end = fill_and_kill(dir.path(), driver, bytes)?;
    if cold {
        drop_caches()?;
    }
    let start = Instant::now();
    let (log, report) = Log::open(config(dir.path(), driver, bytes))?;
    let seconds = start.elapsed().as_secs_f64();
    let scanned: u64 = report
        .partitions
        .iter()
        .map(|p| p.report.bytes_scanned)
        .sum();
    let clean = report.partitions.iter().any(|p| p.report.clean_load);
    let recovered_end = log.partition("recovery", 0)?.offsets().log_end;
    log.close()?;
    ensure!(!clean, "the log loaded as cleanly closed after SIGKILL");
    ensure!(
        recovered_end == end,
        "recovered to offset {recovered_end}, the child flushed up to {end}"
    );
    ensure!(
        scanned * 10 >= bytes * 9,
        "recovery scanned only {scanned} of {bytes} bytes: the workload did not replay"
    );
    Ok(Sample::from([
        ("open_s", seconds),
        ("gb_per_s", scanned as f64 / seconds / 1e9),
        ("mib_scanned", scanned as f64 / f64::from(1u32 << 20)),
    ]))
}

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let bytes = bench.scale.recovery_bytes;
    let mut cases = Vec::new();
    let mut notes = vec![
        "the child fills one partition with 64 KiB batches, flushes, and is SIGKILLed; open_s is Log::open".into(),
    ];
    let colds: &[bool] = if can_drop_caches() {
        &[false, true]
    } else {
        notes.push("cold case skipped: dropping the page cache needs root".into());
        &[false]
    };
    for &cold in colds {
        let bench_ref: &Bench = bench;
        let engines = RILL_ENGINES
            .into_iter()
            .map(|(name, driver)| {
                Engine::new(name, format!("rill, {driver:?} driver"), move || {
                    recovery_run(bench_ref, driver, bytes, cold)
                })
            })
            .collect();
        let cache = if cold {
            "cold (page cache dropped)"
        } else {
            "warm (page cache)"
        };
        let params = BTreeMap::from([
            ("bytes", bytes.into()),
            ("cold", cold.into()),
            ("batch_bytes", (64u64 << 10).into()),
        ]);
        cases.push(bench.run_case(
            &format!("{} MiB to replay, {cache}", bytes >> 20),
            params,
            engines,
            &[(URING, BASELINE)],
            "gb_per_s",
        ));
    }
    Ok(WorkloadResult {
        name: "recovery".into(),
        description: "open after an unclean stop (SIGKILL) with everything to replay".into(),
        primary_metric: "gb_per_s".into(),
        columns: ["open_s", "gb_per_s", "mib_scanned"]
            .map(String::from)
            .to_vec(),
        cases,
        notes,
    })
}
