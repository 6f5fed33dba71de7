//! Compaction: how fast a cleaning rewrites a compacted partition (MB/s of sealed segments
//! cleaned), and what a cleaner running on the same partition costs its appends.
//!
//! The log: one compacted partition of `compaction_bytes` of 100-record batches of 100-byte
//! values over 10,000 keys (so most records are superseded), in segments of an eighth of it
//! (at most 8 MiB).
//! * **cleaning**: one `Partition::compact_now` over all of it, on each executor (the cleaning
//!   runs on the calling thread; the executor only installs it);
//! * **appends while cleaning**: written appends of the same batches for `run_seconds`, on a
//!   freshly filled log, with and without a thread calling `compact_now` in a loop on the
//!   same partition; the ratio is what the cleaner costs the appender.

use super::{BASELINE, RILL_ENGINES, URING, append_copies, mb_per_s};
use crate::harness::{Bench, Engine, Sample};
use crate::report::WorkloadResult;
use anyhow::{Result, ensure};
use rill::{BatchBuilder, CleanupPolicy, Config, DriverChoice, Durability, Log, TopicConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEYS: u64 = 10_000;
const BATCH_RECORDS: u64 = 100;
const VALUE_BYTES: usize = 100;
/// Segments: an eighth of the log, at most 8 MiB, so every scale seals several.
fn segment_bytes(log_bytes: u64) -> u64 {
    (log_bytes / 8).clamp(64 << 10, 8 << 20)
}

/// Batches of keyed records, keys cycling through `KEYS`, starting at batch `first`.
fn keyed_batches(count: u64, first: u64) -> Result<Vec<Vec<u8>>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let value = vec![0x5a_u8; VALUE_BYTES];
    let mut batches = Vec::new();
    for b in first..first + count {
        let mut builder = BatchBuilder::with_capacity(BATCH_RECORDS as usize * 140);
        for r in 0..BATCH_RECORDS {
            let key = format!("key-{:05}", (b * BATCH_RECORDS + r) % KEYS);
            builder.append(now_ms, Some(key.as_bytes()), Some(&value), &[])?;
        }
        batches.push(builder.build()?);
    }
    Ok(batches)
}

/// A new compacted log in a scratch directory, filled with `bytes` of keyed batches.
fn filled(bench: &Bench, driver: DriverChoice, bytes: u64) -> Result<(tempfile::TempDir, Log)> {
    let dir = bench.scratch_dir("compaction")?;
    let mut config = Config::new(dir.path());
    config.driver = driver;
    config.shards = 1;
    config.log.segment_bytes = segment_bytes(bytes);
    config.log.max_batch_bytes = config
        .log
        .max_batch_bytes
        .min(segment_bytes(bytes) as usize);
    // Cleanings here are the workload's own.
    config.cleaner_interval_ms = 3_600_000;
    let (log, _) = Log::open(config)?;
    let topic = TopicConfig {
        cleanup_policy: Some(CleanupPolicy::Compact),
        ..TopicConfig::default()
    };
    log.create_topic_with("compacted", 1, &topic)?;
    let partition = log.partition("compacted", 0)?;
    let sample = keyed_batches(1, 0)?;
    let count = bytes.div_ceil(sample[0].len() as u64);
    // In chunks, so the batches built at once stay small.
    let mut done = 0;
    while done < count {
        let chunk = (count - done).min(256);
        for batch in keyed_batches(chunk, done)? {
            append_copies(&partition, &batch, 1)?;
        }
        done += chunk;
    }
    Ok((dir, log))
}

fn cleaning_run(bench: &Bench, driver: DriverChoice, bytes: u64) -> Result<Sample> {
    let (_dir, log) = filled(bench, driver, bytes)?;
    let partition = log.partition("compacted", 0)?;
    let start = Instant::now();
    let report = partition.compact_now()?;
    let seconds = start.elapsed().as_secs_f64();
    log.close()?;
    let Some(report) = report else {
        anyhow::bail!("nothing was dirty");
    };
    ensure!(report.records_removed > 0, "the cleaning removed nothing");
    Ok(Sample::from([
        ("cleaned_mb_per_s", mb_per_s(report.bytes_before, seconds)),
        ("seconds", seconds),
        (
            "mib_before",
            report.bytes_before as f64 / f64::from(1u32 << 20),
        ),
        (
            "mib_after",
            report.bytes_after as f64 / f64::from(1u32 << 20),
        ),
    ]))
}

fn appends_run(bench: &Bench, bytes: u64, cleaning: bool) -> Result<Sample> {
    let (_dir, log) = filled(bench, DriverChoice::Uring, bytes)?;
    let partition = log.partition("compacted", 0)?;
    let batches = keyed_batches(64, 0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let cleanings = Arc::new(AtomicU64::new(0));
    let cleaner = cleaning.then(|| {
        let (partition, stop, cleanings) =
            (partition.clone(), Arc::clone(&stop), Arc::clone(&cleanings));
        std::thread::spawn(move || {
            // Until the appender stops; each pass is one cleaning (or none if nothing dirty).
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(_)) = partition.compact_now() {
                    cleanings.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::yield_now();
                }
            }
        })
    });
    let run_time = Duration::from_secs_f64(bench.scale.run_seconds);
    let start = Instant::now();
    let mut appended = 0u64;
    let mut window = std::collections::VecDeque::new();
    // Bounded by the run time.
    while start.elapsed() < run_time {
        let batch = &batches[(appended % batches.len() as u64) as usize];
        window.push_back(
            partition.append_with(bytes::BytesMut::from(&batch[..]), Durability::Written),
        );
        appended += 1;
        if window.len() >= 16
            && let Some(oldest) = window.pop_front()
        {
            oldest.wait()?;
        }
    }
    for pending in window {
        pending.wait()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(cleaner) = cleaner {
        let _ = cleaner.join();
    }
    log.close()?;
    let records = appended * BATCH_RECORDS;
    Ok(Sample::from([
        ("records_per_s", records as f64 / seconds),
        ("cleanings", cleanings.load(Ordering::Relaxed) as f64),
    ]))
}

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let bytes = bench.scale.compaction_bytes;
    let mut cases = Vec::new();
    let bench_ref: &Bench = bench;
    let engines = RILL_ENGINES
        .into_iter()
        .map(|(name, driver)| {
            Engine::new(name, format!("rill, {driver:?} driver"), move || {
                cleaning_run(bench_ref, driver, bytes)
            })
        })
        .collect();
    cases.push(bench.run_case(
        &format!(
            "clean {} MiB of 100 B records over 10,000 keys",
            bytes >> 20
        ),
        BTreeMap::from([("bytes", bytes.into()), ("keys", KEYS.into())]),
        engines,
        &[(URING, BASELINE)],
        "cleaned_mb_per_s",
    ));
    let (alone, with_cleaner) = ("appends alone", "appends while cleaning");
    let engines = vec![
        Engine::new(alone, "rill io_uring, no cleaning", move || {
            appends_run(bench_ref, bytes, false)
        }),
        Engine::new(
            with_cleaner,
            "rill io_uring, compact_now in a loop on the same partition",
            move || appends_run(bench_ref, bytes, true),
        ),
    ];
    cases.push(bench.run_case(
        "100-record written appends to a compacted partition",
        BTreeMap::from([("bytes", bytes.into()), ("records", BATCH_RECORDS.into())]),
        engines,
        &[(with_cleaner, alone)],
        "records_per_s",
    ));
    Ok(WorkloadResult {
        name: "compaction".into(),
        description: "a cleaning's rate, and its cost to appends on the same partition".into(),
        primary_metric: "cleaned_mb_per_s".into(),
        columns: [
            "cleaned_mb_per_s",
            "seconds",
            "mib_before",
            "mib_after",
            "records_per_s",
            "cleanings",
        ]
        .map(String::from)
        .to_vec(),
        cases,
        notes: vec![
            "100-record batches of 100 B values, 10,000 keys; segments of an eighth of the log (at most 8 MiB); cleaning on the calling thread"
                .into(),
        ],
    })
}
