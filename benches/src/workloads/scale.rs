//! Scale: what a log of many segments costs to open. A log of `partitions × segments` small
//! segments is built once per segment size; each run opens it in a fresh child process (this
//! same executable, started with [`CHILD_ENV`] set, its descriptor limit lowered to
//! [`CHILD_MAX_FDS`]) and reports the seconds `Log::open` took, the resident memory and the
//! descriptors held right after it, and the peak memory during it. A child process keeps the
//! readings free of what earlier workloads left in this one's heap.
//!
//! Two segment sizes with the same segment count show whether memory follows retained bytes.
//! The unclean case first runs a child that appends to one partition without a checkpoint and
//! is SIGKILLed, so every partition opens unclean and one of them replays.

use super::{
    BASELINE, RILL_ENGINES, URING, append_copies, build_batch, can_drop_caches, driver_arg,
    parse_driver_arg, run_child,
};
use crate::harness::{Bench, Engine, Sample};
use crate::report::WorkloadResult;
use anyhow::{Context, Result, anyhow, bail, ensure};
use rill::{Config, DriverChoice, Durability, Log};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Instant;

/// Set in a child's environment to `open:<driver>:<segment bytes>:<dir>` or
/// `dirty:<driver>:<segment bytes>:<replay bytes>:<dir>`.
pub const CHILD_ENV: &str = "RILL_BENCH_SCALE_CHILD";
/// The child's soft descriptor limit: the open must work under `ulimit -n 4096`.
pub const CHILD_MAX_FDS: u64 = 4096;
const TOPIC: &str = "scale";

/// The log settings of the built log and of every reopening.
fn config(dir: &Path, driver: DriverChoice, segment_bytes: u64) -> Config {
    let mut config = Config::new(dir);
    config.driver = driver;
    config.log.segment_bytes = segment_bytes;
    config.log.max_batch_bytes = segment_bytes as usize;
    // Only the unclean run's replay depends on this: its appends get no checkpoint.
    config.log.checkpoint_interval_ms = i64::MAX / 2;
    config.log.track_durable_watermark = false;
    config
}

/// A batch that fills most of a segment, so every append rolls one.
fn segment_batch(segment_bytes: u64) -> Result<Vec<u8>> {
    let record_bytes = 1000;
    let records = ((segment_bytes * 7 / 8) / (record_bytes as u64 + 16)).max(1) as usize;
    build_batch(records, record_bytes)
}

/// Builds the log: `segments` rolled segments in each of `partitions` partitions, appended
/// round-robin with a bounded window in flight. Returns the bytes written.
pub fn build(dir: &Path, partitions: u32, segments: u64, segment_bytes: u64) -> Result<u64> {
    let (log, _) = Log::open(config(dir, DriverChoice::Uring, segment_bytes))?;
    log.create_topic(TOPIC, partitions)?;
    let handles = log.partitions(TOPIC)?;
    let batch = segment_batch(segment_bytes)?;
    let mut window = VecDeque::new();
    for _ in 0..segments {
        for partition in &handles {
            let bytes = bytes::BytesMut::from(batch.as_slice());
            window.push_back(partition.append_with(bytes, Durability::Written));
            if window.len() >= 256
                && let Some(oldest) = window.pop_front()
            {
                oldest.wait()?;
            }
        }
    }
    for pending in window {
        pending.wait()?;
    }
    log.close()?;
    Ok(u64::from(partitions) * segments * batch.len() as u64)
}

/// In a child (when [`CHILD_ENV`] is set): runs what it names and returns its result.
pub fn child_main_if_requested() -> Option<Result<()>> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    Some(child(&spec))
}

fn child(spec: &str) -> Result<()> {
    let fields: Vec<&str> = spec.splitn(5, ':').collect();
    match fields.as_slice() {
        ["open", driver, segment_bytes, dir] => child_open(
            Path::new(dir),
            parse_driver_arg(driver)?,
            segment_bytes.parse()?,
        ),
        ["dirty", driver, segment_bytes, replay, dir] => child_dirty(
            Path::new(dir),
            parse_driver_arg(driver)?,
            segment_bytes.parse()?,
            replay.parse()?,
        ),
        _ => bail!(
            "{CHILD_ENV} must be open:<driver>:<segment bytes>:<dir> or dirty:..., not {spec:?}"
        ),
    }
}

/// Lowers this process's descriptor limit to [`CHILD_MAX_FDS`].
fn limit_descriptors() -> Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    let soft = hard.map_or(CHILD_MAX_FDS, |h| h.min(CHILD_MAX_FDS));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: hard,
        },
    )
    .context("lowering the descriptor limit")
}

/// A `kB` field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/self/status"))
}

fn child_open(dir: &Path, driver: DriverChoice, segment_bytes: u64) -> Result<()> {
    limit_descriptors()?;
    let start = Instant::now();
    let (log, report) = Log::open(config(dir, driver, segment_bytes))?;
    let seconds = start.elapsed().as_secs_f64();
    let rss = status_kib("VmRSS")?;
    let peak = status_kib("VmHWM")?;
    let fds = std::fs::read_dir("/proc/self/fd")?.count();
    let segments: usize = report.partitions.iter().map(|p| p.report.segments).sum();
    let clean = report
        .partitions
        .iter()
        .filter(|p| p.report.clean_load)
        .count();
    let scanned: u64 = report
        .partitions
        .iter()
        .map(|p| p.report.bytes_scanned)
        .sum();
    println!("opened {seconds} {rss} {peak} {fds} {segments} {clean} {scanned}");
    log.close()?;
    Ok(())
}

fn child_dirty(dir: &Path, driver: DriverChoice, segment_bytes: u64, replay: u64) -> Result<()> {
    let (log, _) = Log::open(config(dir, driver, segment_bytes))?;
    let partition = log.partition(TOPIC, 0)?;
    let batch = segment_batch(segment_bytes)?;
    let offsets = append_copies(&partition, &batch, replay.div_ceil(batch.len() as u64))?;
    println!("filled {}", offsets.log_end);
    std::io::Write::flush(&mut std::io::stdout())?;
    // Wait for SIGKILL; the bound only matters if the parent died first.
    std::thread::sleep(std::time::Duration::from_mins(10));
    bail!("the parent never killed this scale child")
}

/// What one open reported.
struct Opened {
    seconds: f64,
    rss_kib: f64,
    peak_kib: f64,
    fds: f64,
    segments: f64,
    clean: f64,
    scanned: f64,
}

fn open_in_child(dir: &Path, driver: DriverChoice, segment_bytes: u64) -> Result<Opened> {
    let spec = format!(
        "open:{}:{segment_bytes}:{}",
        driver_arg(driver),
        dir.display()
    );
    let line = run_child(CHILD_ENV, &spec, false)?;
    let fields: Vec<f64> = line
        .trim()
        .strip_prefix("opened ")
        .ok_or_else(|| anyhow!("unexpected child output {line:?}"))?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [seconds, rss_kib, peak_kib, fds, segments, clean, scanned] = fields[..] else {
        bail!("unexpected child output {line:?}");
    };
    Ok(Opened {
        seconds,
        rss_kib,
        peak_kib,
        fds,
        segments,
        clean,
        scanned,
    })
}

/// One run: optionally dirty the log, optionally drop the page cache, open it in a child.
fn open_run(bench: &Bench, log: &BuiltLog, driver: DriverChoice, run: Run) -> Result<Sample> {
    if let Some(replay) = run.replay_bytes {
        let spec = format!(
            "dirty:{}:{}:{replay}:{}",
            driver_arg(driver),
            log.segment_bytes,
            log.dir.path().display()
        );
        run_child(CHILD_ENV, &spec, true)?;
    }
    if run.cold {
        super::drop_caches()?;
    }
    let opened = open_in_child(log.dir.path(), driver, log.segment_bytes)?;
    let partitions = f64::from(bench.scale.scale_partitions);
    ensure!(
        opened.segments >= log.segments as f64,
        "opened {} segments, built {}",
        opened.segments,
        log.segments
    );
    let expect_clean = if run.replay_bytes.is_some() {
        0.0
    } else {
        partitions
    };
    ensure!(
        (opened.clean - expect_clean).abs() < 0.5,
        "{} of {partitions} partitions loaded clean, expected {expect_clean}",
        opened.clean
    );
    let mib = f64::from(1u32 << 10);
    Ok(Sample::from([
        ("open_s", opened.seconds),
        ("rss_mib", opened.rss_kib / mib),
        ("peak_rss_mib", opened.peak_kib / mib),
        ("fds", opened.fds),
        ("segments", opened.segments),
        ("mib_scanned", opened.scanned / mib / mib),
    ]))
}

/// A log built for this workload.
struct BuiltLog {
    dir: tempfile::TempDir,
    segment_bytes: u64,
    segments: u64,
    bytes: u64,
}

#[derive(Clone, Copy)]
struct Run {
    cold: bool,
    replay_bytes: Option<u64>,
}

pub fn run(bench: &mut Bench) -> Result<WorkloadResult> {
    let scale = bench.scale;
    let cold = can_drop_caches();
    let mut notes = vec![format!(
        "each open runs in a child process with its descriptor limit at {CHILD_MAX_FDS}; \
         rss_mib and fds are read right after Log::open, peak_rss_mib is the child's peak"
    )];
    if !cold {
        notes.push("cold cases skipped: dropping the page cache needs root".into());
    }
    let mut cases = Vec::new();
    for segment_bytes in scale.scale_segment_bytes {
        let segments = u64::from(scale.scale_partitions) * scale.scale_segments_per_partition;
        bench.status(format!(
            "scale: building {segments} segments of {} KiB",
            segment_bytes >> 10
        ));
        let dir = bench.scratch_dir("scale")?;
        let start = Instant::now();
        let bytes = build(
            dir.path(),
            scale.scale_partitions,
            scale.scale_segments_per_partition,
            segment_bytes,
        )?;
        notes.push(format!(
            "built {segments} segments of {} KiB ({} MiB) in {:.1} s",
            segment_bytes >> 10,
            bytes >> 20,
            start.elapsed().as_secs_f64()
        ));
        let log = BuiltLog {
            dir,
            segment_bytes,
            segments,
            bytes,
        };
        let mut runs = vec![(
            "clean open, warm",
            Run {
                cold: false,
                replay_bytes: None,
            },
        )];
        if cold {
            runs.push((
                "clean open, cold",
                Run {
                    cold: true,
                    replay_bytes: None,
                },
            ));
            if segment_bytes == scale.scale_segment_bytes[0] {
                let replay = Some(scale.scale_replay_bytes);
                runs.push((
                    "unclean open, cold",
                    Run {
                        cold: true,
                        replay_bytes: replay,
                    },
                ));
            }
        }
        for (label, run) in runs {
            let bench_ref: &Bench = bench;
            let log = &log;
            let engines = RILL_ENGINES
                .into_iter()
                .map(|(name, driver)| {
                    Engine::new(name, format!("rill, {driver:?} driver"), move || {
                        open_run(bench_ref, log, driver, run)
                    })
                })
                .collect();
            let replay = run.replay_bytes.map_or(String::new(), |r| {
                format!(", one partition replays {} MiB", r >> 20)
            });
            let params = BTreeMap::from([
                ("partitions", scale.scale_partitions.into()),
                ("segments", log.segments.into()),
                ("segment_bytes", segment_bytes.into()),
                ("retained_bytes", log.bytes.into()),
                ("cold", run.cold.into()),
                ("replay_bytes", run.replay_bytes.unwrap_or(0).into()),
            ]);
            cases.push(bench.run_case(
                &format!(
                    "{label}: {segments} segments of {} KiB ({} MiB){replay}",
                    segment_bytes >> 10,
                    log.bytes >> 20
                ),
                params,
                engines,
                &[(URING, BASELINE)],
                "open_s",
            ));
        }
    }
    Ok(WorkloadResult {
        name: "scale".into(),
        description: format!(
            "open a log of {} partitions × {} segments",
            scale.scale_partitions, scale.scale_segments_per_partition
        ),
        primary_metric: "open_s".into(),
        columns: [
            "open_s",
            "rss_mib",
            "peak_rss_mib",
            "fds",
            "segments",
            "mib_scanned",
        ]
        .map(String::from)
        .to_vec(),
        cases,
        notes,
    })
}
