//! Recovery: open a log after an unclean stop with a given amount of data to replay; seconds
//! to open and GB/s scanned.
//!
//! The unclean stop is real: a child process (this same executable, started with
//! [`CHILD_ENV`] set) fills a partition, flushes it, reports, and is killed with SIGKILL. Its
//! log keeps no durable watermark and writes no checkpoint after the one at creation, so the
//! recovery point stays at offset 0 and the next open scans (reads, CRC-checks and indexes)
//! every batch. The "cold" case drops the page cache first (needs root), so the scan reads
//! the disk; the "warm" case scans what the child left in the page cache.
//!
//! The cold case has a third engine, [`SAME_FILE_READ`]: a child fills and is killed the same
//! way, then the segment file is read with 1 MiB `pread`s from a dropped page cache, with
//! read-ahead advised 8 MiB ahead (the faster of the `limits` workload's two reads). It is the
//! read limit of the file recovery replays, in the state it replays it (just written, the disk
//! still busy with it), interleaved with the opens; `limits` measures a file written and
//! synced before its read.

use super::{
    BASELINE, RILL_ENGINES, URING, append_copies, build_batch, can_drop_caches, driver_arg,
    drop_caches, limits, parse_driver_arg, run_child,
};
use crate::harness::{Bench, Engine, Sample};
use crate::report::WorkloadResult;
use anyhow::{Context, Result, anyhow, bail, ensure};
use rill::{Config, DriverChoice, Log};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The engine that reads the replayed file with plain `pread`s, in the cold case.
pub const SAME_FILE_READ: &str = "sequential read, same file";

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

/// Fills and kills a child as [`recovery_run`] does, then reads the segment file it left
/// from a dropped page cache with 1 MiB `pread`s and advised read-ahead (the `limits`
/// workload's sequential read).
fn same_file_read(bench: &Bench, bytes: u64) -> Result<Sample> {
    let dir = bench.scratch_dir("recovery-read")?;
    fill_and_kill(dir.path(), DriverChoice::Syscall, bytes)?;
    let segment = largest_segment_file(dir.path())?;
    let mut sample = limits::sequential_read(&segment, limits::ReadAhead::Advised)?;
    let mb_per_s = sample.get("mb_per_s").copied().unwrap_or(0.0);
    let file_bytes = std::fs::metadata(&segment)?.len();
    sample.insert("gb_per_s", mb_per_s / 1e3);
    sample.insert("open_s", file_bytes as f64 / (mb_per_s.max(1e-9) * 1e6));
    sample.insert("mib_scanned", file_bytes as f64 / f64::from(1u32 << 20));
    Ok(sample)
}

/// The largest `.log` file in the partition directories under `dir`: the one segment the
/// child filled (its preallocated length included).
fn largest_segment_file(dir: &Path) -> Result<std::path::PathBuf> {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    for partition in std::fs::read_dir(dir)? {
        let partition = partition?.path();
        if !partition.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&partition)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                let len = std::fs::metadata(&path)?.len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, path));
                }
            }
        }
    }
    best.map(|(_, path)| path)
        .ok_or_else(|| anyhow!("no segment file under {}", dir.display()))
}

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let bytes = bench.scale.recovery_bytes;
    let mut cases = Vec::new();
    let mut notes = vec![
        "the child fills one partition with 64 KiB batches, flushes, and is SIGKILLed; open_s is Log::open".into(),
        format!("{SAME_FILE_READ} (cold case): a child fills and is killed as for the opens, then its segment file is read with 1 MiB preads from a dropped page cache, 8 MiB advised ahead; open_s is the read's time"),
    ];
    let colds: &[bool] = if can_drop_caches() {
        &[false, true]
    } else {
        notes.push("cold case skipped: dropping the page cache needs root".into());
        &[false]
    };
    for &cold in colds {
        let bench_ref: &Bench = bench;
        let mut engines: Vec<Engine<'_>> = RILL_ENGINES
            .into_iter()
            .map(|(name, driver)| {
                Engine::new(name, format!("rill, {driver:?} driver"), move || {
                    recovery_run(bench_ref, driver, bytes, cold)
                })
            })
            .collect();
        let mut ratios = vec![(URING, BASELINE)];
        if cold {
            engines.push(Engine::new(
                SAME_FILE_READ,
                "the segment file a killed child left, read with 1 MiB preads from a dropped page cache, 8 MiB advised ahead",
                move || same_file_read(bench_ref, bytes),
            ));
            ratios.extend([(URING, SAME_FILE_READ), (BASELINE, SAME_FILE_READ)]);
        }
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
            &ratios,
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
